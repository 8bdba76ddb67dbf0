"""Erasure: forget an image, a face or a person everywhere the index keeps it, and prove it.

:func:`forget` holds the index's writer lease (``faceidx.store.lease``) and runs these steps, in this
order, writing what each one did into a receipt:

0. **open intents**: finish any erasure a killed process left open, from its intent record;
1. **landing**: ingest the pending landing files first, so no row of the target waits there (rows
   of faces an earlier erasure captured are dropped, as `face_table`'s ingest drops them);
2. **capture**: read the target's rows (every ETag of an image, every model version) and keep their
   embeddings for the verification;
3. **intent**: write the capture as an open intent record (``faceidx.store.intents``) *before*
   deleting anything: from here on, any rerun finishes the erasure from that record;
4. **table**: delete the rows from every partition of the face table;
5. **vectors**: delete the face ids from the vector table of every model version;
6. **crops**: delete the ``crop_uri`` objects; **people**: delete the face -> person mapping rows (and,
   for a person, the person's own rows) and recompute the centroids of the persons that lost faces;
7. **history**: purge old table versions and old Lance versions (vacuum with retention 0), so no
   snapshot still holds the rows;
8. **verify**: no row of the target in the table, no forgotten face among the nearest of each captured
   embedding in its vector version, no face_persons row, no crop left, and no person centroid that
   still is an erased face;
9. **receipt**: written once, named after the intent, then the intent is marked finished.

The receipt is written to ``<output>/receipts/forget/<UTC time>-<intent id>.json``. A target that does
not exist raises :class:`ForgetTargetNotFound` and changes nothing (beyond ingesting pending landing
files, which ingest would have done anyway); no receipt is written for it. A target an earlier,
interrupted erasure already captured is finished from that erasure's intent, and its receipt returned.

Every step is idempotent, so a process killed at any of them (``FACEIDX_FAULT_KILL_AT=<step>`` kills it
there, for the tests) leaves an open intent that the next erasure or ``face_table`` ingest finishes.

S3 ``ObjectRemoved`` events reach the table as tombstone rows; :func:`forget_tombstones` erases each
removed image's rows indexed at or before the event, with one receipt per image.
"""

from __future__ import annotations

import logging
from typing import Any

from faceidx.erasure.receipts import Receipt, receipt_for
from faceidx.erasure.steps import (
    CAPTURE_COLUMNS,
    KILL_ENV,
    STEPS,
    Erasure,
    _open_index,
    _open_table,
    ingest_pending,
)
from faceidx.erasure.targets import (
    TARGET_FACE,
    TARGET_IMAGE,
    TARGET_PERSON,
    TARGET_TYPES,
    ForgetTarget,
    ForgetTargetNotFound,
    ForgetUnavailable,
    ForgetVerificationError,
    PersonResolver,
    image_predicate,
    target_predicate,
)
from faceidx.erasure.tombstones import TOMBSTONE_ACTOR, _erase_tombstones, forget_tombstones
from faceidx.store.intents import ErasureIntents
from faceidx.store.location import IndexLocation

log = logging.getLogger(__name__)

__all__ = [
    "CAPTURE_COLUMNS",
    "KILL_ENV",
    "STEPS",
    "TARGET_FACE",
    "TARGET_IMAGE",
    "TARGET_PERSON",
    "TARGET_TYPES",
    "TOMBSTONE_ACTOR",
    "ForgetTarget",
    "ForgetTargetNotFound",
    "ForgetUnavailable",
    "ForgetVerificationError",
    "Receipt",
    "finish_open_intents",
    "forget",
    "forget_tombstones",
    "image_predicate",
    "receipt_for",
]


def finish_open_intents(location: IndexLocation, table: Any = None, index: Any = None) -> list[Receipt]:
    """Finish every erasure a killed process left open, from its intent record (never by reading the
    table again); the caller holds the writer lease. Returns their receipts."""
    intents = ErasureIntents(location).open()
    if not intents:
        return []
    erasure = Erasure(location, table or _open_table(location), index or _open_index(location))
    for intent in intents:
        log.warning(
            "finishing the interrupted erasure %s of %s %s (opened %s, steps done: %s)",
            intent.id,
            intent.target.get("type"),
            intent.target.get("value"),
            intent.created_at,
            ", ".join(intent.steps_done) or "none",
        )
        intent.resumed = True
        erasure.apply(intent)
    return erasure.finish()


def forget(
    location: IndexLocation,
    target: ForgetTarget,
    *,
    reason: str,
    actor: str,
    resolve_person: PersonResolver | None = None,
    table: Any = None,
    index: Any = None,
    lease: Any = None,
    approver: str = "",
) -> Receipt:
    """Erase ``target`` from the table, the vector index, crops and persons tables; purge; verify.

    ``approver`` (the user who approved the erasure, when one had to) is kept in the intent and the
    receipt.

    Holds the writer lease (``lease``: one the caller already holds). Raises
    :class:`ForgetTargetNotFound` (nothing changed, no receipt) when the target is not there,
    :class:`ForgetVerificationError` when traces remain (the receipt, written, records them)."""
    from faceidx.store.lease import writer

    if lease is None:
        with writer(location, f"forget {target.describe()}") as held:
            return forget(
                location,
                target,
                reason=reason,
                actor=actor,
                resolve_person=resolve_person,
                table=table,
                index=index,
                lease=held,
                approver=approver,
            )
    table = table or _open_table(location)
    index = index or _open_index(location)
    resumed = {
        r.target["type"] + " " + r.target["value"]: r for r in finish_open_intents(location, table, index)
    }
    predicate, person_id = target_predicate(location, target, resolve_person)
    files, tombstones = ingest_pending(table, ErasureIntents(location).erased_face_ids())
    erasure = Erasure(location, table, index)
    if tombstones:
        _erase_tombstones(erasure, tombstones)
    lease.check()
    receipt: Receipt | None = None
    try:
        erasure.erase(
            target,
            predicate,
            reason=reason,
            actor=actor,
            landing_files=files,
            person_id=person_id,
            approver=approver,
        )
    except ForgetTargetNotFound:
        receipt = resumed.get(target.describe())
        if receipt is None:
            raise
        log.info("%s was already captured by an interrupted erasure, finished now", target.describe())
    finally:
        receipts = erasure.finish()  # the tombstones' erasures are finished even when the target is not found
    receipt = receipt or next(r for r in receipts if r.target == {"type": target.kind, "value": target.value})
    if not receipt.verified:
        raise ForgetVerificationError(
            f"forgetting {target.describe()} left traces ({receipt.verification}); the receipt "
            f"{receipt.uri} records them. Run the same forget again; if traces stay, stop writers and "
            "investigate the table and vector index."
        )
    return receipt
