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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from faceidx.common.uris import split_s3_uri
from faceidx.store.intents import ErasureIntent, ErasureIntents, new_intent_id
from faceidx.store.location import IndexLocation

log = logging.getLogger(__name__)

TARGET_IMAGE = "image"
TARGET_FACE = "face"
TARGET_PERSON = "person"
TARGET_TYPES = (TARGET_IMAGE, TARGET_FACE, TARGET_PERSON)
TOMBSTONE_ACTOR = "s3:ObjectRemoved"
CAPTURE_COLUMNS = ["face_id", "model_version", "image_bucket", "image_key", "embedding", "crop_uri"]
VERIFY_K = 10
CENTROID_MATCH = 0.9999  # a centroid this close to an erased face still is that face
KILL_ENV = "FACEIDX_FAULT_KILL_AT"
STEPS = ("intent", "table", "vectors", "crops", "people", "history", "verify", "receipt")
MAX_INGEST_ROUNDS = 1000
INGEST_BATCH = 500

# person_id -> its face ids (None: no such person). Plugged in by faceidx.people when it exists.
PersonResolver = Callable[[IndexLocation, str], Sequence[str] | None]


class ForgetTargetNotFound(LookupError):
    """Nothing of the target is in the index: nothing was changed and no receipt was written."""


class ForgetUnavailable(LookupError):
    """The target type cannot be resolved yet (a person before identities are built)."""


class ForgetVerificationError(RuntimeError):
    """The erasure ran but the verification found traces; the receipt records them."""


@dataclass(frozen=True)
class ForgetTarget:
    """What to forget: ``image`` (``s3://bucket/key``, every ETag), ``face`` (a face_id) or ``person``."""

    kind: str
    value: str

    def __post_init__(self) -> None:
        if self.kind not in TARGET_TYPES:
            raise ValueError(f"target type {self.kind!r} is not one of {', '.join(TARGET_TYPES)}")
        if not self.value or not self.value.strip():
            raise ValueError(f"a {self.kind} target needs a value")
        if self.kind == TARGET_IMAGE:
            parts = split_s3_uri(self.value)
            if parts is None or not parts[1]:
                raise ValueError(f"an image target is s3://bucket/key, got {self.value!r}")

    @property
    def image(self) -> tuple[str, str]:
        parts = split_s3_uri(self.value)
        assert parts is not None
        return parts

    def describe(self) -> str:
        return f"{self.kind} {self.value}"


def sql_string(value: str) -> str:
    """A SQL string literal (delta-rs predicates)."""
    return "'" + value.replace("'", "''") + "'"


def in_list(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(sql_string(v) for v in sorted(set(values)))})"


def image_predicate(bucket: str, key: str, removed_before: datetime | None = None) -> str:
    predicate = f"image_bucket = {sql_string(bucket)} AND image_key = {sql_string(key)}"
    if removed_before is not None:
        moment = removed_before.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        predicate += f" AND indexed_at <= '{moment}'"
    return predicate


@dataclass
class Receipt:
    """What one erasure removed from where, and what the verification found. Saved as JSON."""

    id: str
    target: dict[str, str]
    reason: str
    actor: str
    started_at: str
    finished_at: str = ""
    approver: str = ""  # the user who approved it in the UI (face_forget's require_approval); "": none
    removed: dict[str, Any] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)
    uri: str = ""

    @property
    def verified(self) -> bool:
        return bool(self.verification.get("passed"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_rows(self) -> list[tuple[str, Any]]:
        """Rows for a task log's table: one per place something was removed from, then the check."""
        removed = self.removed
        rows: list[tuple[str, Any]] = [("target", f"{self.target['type']} {self.target['value']}")]
        rows += [("reason", self.reason), ("actor", self.actor), ("approver", self.approver or "-")]
        rows.append(("landing files ingested first", removed.get("landing", {}).get("files_ingested", 0)))
        for version, count in sorted(removed.get("table_rows", {}).items()):
            rows.append((f"table rows ({version})", count))
        for version, count in sorted(removed.get("vectors", {}).items()):
            rows.append((f"vectors ({version})", count))
        rows.append(("crops deleted", len(removed.get("crops", []))))
        for name, count in sorted(removed.get("people_rows", {}).items()):
            rows.append((f"{name} rows", count))
        history = removed.get("history", {})
        rows.append(("table files purged", len(history.get("table_files", []))))
        vectors = history.get("vectors", {})
        rows.append(("old vector versions purged", sum(vectors.get("versions_removed", {}).values())))
        rows.append(("vector tables rewritten", len(vectors.get("rewritten", []))))
        check = self.verification
        rows.append(("verify: table rows left", check.get("table_rows_left")))
        rows.append(("verify: searches run", check.get("searches")))
        rows.append(("verify: forgotten faces found", len(check.get("found_face_ids", []))))
        rows.append(("verified", "yes" if self.verified else "NO"))
        rows.append(("receipt", self.uri))
        return rows


def _now() -> datetime:
    return datetime.now(UTC)


# -- the parts -------------------------------------------------------------------------------------
def _open_table(location: IndexLocation) -> Any:
    from faceidx.store.table import FaceTable

    return FaceTable.open(location)


def _open_index(location: IndexLocation) -> Any:
    from faceidx.store.vectors import VectorIndex

    return VectorIndex(location)


def ingest_pending(table: Any, erased_face_ids: set[str] | None = None) -> tuple[int, list[Any]]:
    """Ingest every landing file (several rounds when there are many); ``(files, tombstones)``.

    ``erased_face_ids`` (every face an erasure captured) are dropped, as ``face_table``'s ingest drops
    them: a late or repeated delivery of an erased image must not come back through this ingest."""
    files, tombstones = 0, list[Any]()
    for _ in range(MAX_INGEST_ROUNDS):
        report = table.ingest(max_files=INGEST_BATCH, erased_face_ids=erased_face_ids)
        files += int(report.files_ingested)
        tombstones.extend(report.tombstones or ())
        if not report.more:
            break
    return files, tombstones


def default_person_resolver(location: IndexLocation, person_id: str) -> Sequence[str] | None:
    """The face ids of a person, from the persons tables (None: no such person)."""
    from faceidx.store.persons import face_ids_of_person

    found = face_ids_of_person(location, person_id)
    return None if found is None else list(found)


def _capture(table: Any, predicate: str) -> Any:
    return table.read(columns=list(CAPTURE_COLUMNS), filter=predicate)


def _count_by(values: Iterable[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return dict(sorted(counts.items()))


def _embeddings_by_version(rows: Any) -> dict[str, tuple[list[str], Any]]:
    import numpy as np

    grouped: dict[str, tuple[list[str], list[Any]]] = {}
    for face_id, version, embedding in zip(
        rows["face_id"].to_pylist(),
        rows["model_version"].to_pylist(),
        rows["embedding"].to_pylist(),
        strict=True,
    ):
        if embedding is None or face_id is None:
            continue
        ids, vectors = grouped.setdefault(str(version), ([], []))
        ids.append(face_id)
        vectors.append(embedding)
    return {v: (ids, np.asarray(vectors, dtype=np.float32)) for v, (ids, vectors) in grouped.items()}


def _fault(step: str) -> None:
    """Die here, as a SIGKILL would, when the tests ask for it (``FACEIDX_FAULT_KILL_AT=<step>``)."""
    import os
    import signal

    if os.environ.get(KILL_ENV) == step:
        log.warning("FACEIDX_FAULT_KILL_AT=%s: killing this process", step)
        os.kill(os.getpid(), signal.SIGKILL)


def _exists(location: IndexLocation, uri: str) -> bool:
    parts = split_s3_uri(uri) if uri.startswith("s3://") else None
    if parts is None:
        return Path(uri.removeprefix("file://")).exists()
    client = location.s3_client()
    try:
        client.head_object(Bucket=parts[0], Key=parts[1])
    except client.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def _delete_crops(location: IndexLocation, uris: Iterable[str]) -> list[str]:
    """Delete each crop; one already gone counts as deleted (a rerun after a kill)."""
    deleted = []
    client = None
    for uri in sorted(set(uris)):
        parts = split_s3_uri(uri) if uri.startswith("s3://") else None
        if parts is not None:
            client = client or location.s3_client()
            client.delete_object(Bucket=parts[0], Key=parts[1])
        else:
            Path(uri.removeprefix("file://")).unlink(missing_ok=True)
        deleted.append(uri)
    return deleted


def _delete_people_rows(
    location: IndexLocation, face_ids: Sequence[str], person_id: str | None
) -> dict[str, int]:
    """Through the persons tables' owner: the faces' mapping rows, and a forgotten person's own row.
    Returns table name -> rows deleted."""
    from faceidx.store.persons import PeopleStore

    people = PeopleStore(location)
    deleted: dict[str, int] = {}
    if face_ids:
        deleted["face_persons"] = people.delete("face_persons", in_list("face_id", face_ids))
    if person_id:
        deleted["persons"] = people.delete("persons", f"person_id = {sql_string(person_id)}")
    return {name: count for name, count in deleted.items() if count}


def _refresh_persons(location: IndexLocation, intent: ErasureIntent) -> dict[str, int]:
    """Persons that lost faces get centroids, counts and representatives from the faces they keep
    (a person left with none is removed), so no centroid goes on carrying an erased embedding."""
    if not intent.affected_persons:
        return {}
    from faceidx.people.identities import refresh_persons

    changed: dict[str, int] = {}
    for version in sorted(intent.embeddings or intent.table_rows):
        if version == "(unknown)":
            continue
        changed[version] = refresh_persons(location, version, intent.affected_persons)
    return changed


def _indexed_versions(index: Any) -> set[str]:
    versions = getattr(index, "versions", None)
    return set(versions()) if callable(versions) else set()


def _captured(intent: ErasureIntent) -> dict[str, tuple[list[str], Any]]:
    import numpy as np

    return {
        version: (list(faces), np.asarray(list(faces.values()), dtype=np.float32))
        for version, faces in intent.embeddings.items()
        if faces
    }


def _verify(location: IndexLocation, table: Any, index: Any, intent: ErasureIntent) -> dict:
    """No row of the target in the table; no forgotten face among the nearest ``VERIFY_K`` of each
    captured embedding, in its own model version; no face_persons row of the faces; no crop left; no
    person whose centroid or representative still is an erased face."""
    import numpy as np

    from faceidx.store.persons import PeopleStore

    captured = _captured(intent)
    left = table.read(columns=["face_id"], filter=intent.predicate).num_rows
    forgotten = set(intent.face_ids)
    indexed = _indexed_versions(index)
    found: set[str] = set()
    searches = 0
    not_indexed = []
    for version, (_, vectors) in sorted(captured.items()):
        if not len(vectors):
            continue
        if version not in indexed:
            not_indexed.append(version)  # no vector table for it: nothing there to find
            continue
        for matches in index.search(vectors, model_version=version, k=VERIFY_K):
            searches += 1
            found |= {m.face_id for m in matches} & forgotten
    people = PeopleStore(location)
    mapping_left = (
        people.read("face_persons", filter=in_list("face_id", intent.face_ids)).num_rows
        if intent.face_ids
        else 0
    )
    centroids_left: list[str] = []
    for version, (_, vectors) in sorted(captured.items()):
        persons = people.read("persons", version)
        for row in persons.select(["person_id", "centroids", "representative_face_id"]).to_pylist():
            if row["representative_face_id"] in forgotten:
                centroids_left.append(row["person_id"])
                continue
            if row["centroids"] and len(vectors):
                c = np.asarray(row["centroids"], dtype=np.float32)
                v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
                if float((c @ v.T).max()) >= CENTROID_MATCH:
                    centroids_left.append(row["person_id"])
    crops_left = [uri for uri in intent.crop_uris if _exists(location, uri)]
    return {
        "table_rows_left": int(left),
        "searches": searches,
        "k": VERIFY_K,
        "versions_without_vectors": not_indexed,
        "found_face_ids": sorted(found),
        "face_persons_rows_left": int(mapping_left),
        "persons_still_holding_erased_faces": sorted(set(centroids_left)),
        "crops_left": crops_left,
        "passed": left == 0 and not found and not mapping_left and not centroids_left and not crops_left,
    }


def _purge_summary(report: Any) -> dict[str, Any]:
    """The vector index's purge report as plain JSON."""
    if report is None:
        return {"purged": True}
    return {
        "purged": True,
        "versions_removed": dict(getattr(report, "versions_removed", {}) or {}),
        "rewritten": list(getattr(report, "rewritten", []) or []),
    }


def receipt_for(location: IndexLocation, intent: ErasureIntent) -> str:
    """The receipt of an intent: one name per intent, so a rerun never writes a second one."""
    return f"{location.receipts_uri}/{intent.compact_time}-{intent.id}.json"


# -- the erasure ------------------------------------------------------------------------------------
@dataclass
class _Erasure:
    """Capture targets as intents, apply them, then purge history once and verify and save every
    receipt. Every step works from the intent record, so a rerun can finish what a kill left."""

    location: IndexLocation
    table: Any
    index: Any
    _pending: list[ErasureIntent] = field(default_factory=list)

    @property
    def intents(self) -> ErasureIntents:
        return ErasureIntents(self.location)

    def capture(
        self,
        target: ForgetTarget,
        predicate: str,
        *,
        reason: str,
        actor: str,
        landing_files: int,
        person_id: str | None = None,
        rows: Any = None,
        already_deleted: int = 0,
        approver: str = "",
    ) -> ErasureIntent:
        """Read the target's rows (``rows``: captured beforehand when the table no longer holds them, a
        tombstone's) and write them as an open intent, before anything is deleted."""
        from faceidx.store.persons import persons_of_faces

        if rows is None:
            rows = _capture(self.table, predicate)
            if rows.num_rows == 0 and person_id is None:
                raise ForgetTargetNotFound(f"{target.describe()} is not in the index: nothing was forgotten")
        captured = _embeddings_by_version(rows)
        face_ids = sorted({f for f in rows["face_id"].to_pylist() if f})
        images = zip(rows["image_bucket"].to_pylist(), rows["image_key"].to_pylist(), strict=True)
        affected = (
            sorted(set(persons_of_faces(self.location, face_ids).values()) - {None}) if face_ids else []
        )
        if person_id:
            affected = sorted(set(affected) - {person_id})
        intent = ErasureIntent(
            id=new_intent_id(),
            created_at=_now().isoformat(),
            target={"type": target.kind, "value": target.value},
            reason=reason,
            actor=actor,
            approver=approver,
            predicate=predicate,
            person_id=person_id,
            face_ids=face_ids,
            crop_uris=sorted({u for u in rows["crop_uri"].to_pylist() if u}),
            images=sorted({f"s3://{b}/{k}" for b, k in images if b and k}),
            table_rows=_count_by(rows["model_version"].to_pylist()),
            embeddings={
                version: {f: [float(x) for x in v] for f, v in zip(ids, vectors, strict=True)}
                for version, (ids, vectors) in captured.items()
            },
            landing_files=landing_files,
            already_deleted=already_deleted,
            affected_persons=affected,
        )
        self.intents.save(intent)
        _fault("intent")
        return intent

    def apply(self, intent: ErasureIntent) -> ErasureIntent:
        """Delete what the intent names from the table, the vectors, the crops and the persons tables.
        Idempotent: a second run deletes nothing more and reports what is gone."""
        removed = intent.removed
        removed["table_rows_total"] = int(removed.get("table_rows_total", intent.already_deleted)) + int(
            self.table.delete(intent.predicate) or 0
        )
        self._step(intent, "table")
        vectors = int(self.index.delete(intent.face_ids) or 0) if intent.face_ids else 0
        removed["vectors_total"] = int(removed.get("vectors_total", 0)) + vectors
        self._step(intent, "vectors")
        removed["crops"] = _delete_crops(self.location, intent.crop_uris)
        self._step(intent, "crops")
        people = _delete_people_rows(self.location, intent.face_ids, intent.person_id)
        earlier = removed.get("people_rows", {})
        removed["people_rows"] = {k: int(earlier.get(k, 0)) + people.get(k, 0) for k in {*earlier, *people}}
        removed["persons_refreshed"] = _refresh_persons(self.location, intent)
        self._step(intent, "people")
        self._pending.append(intent)
        return intent

    def _step(self, intent: ErasureIntent, step: str) -> None:
        if step not in intent.steps_done:
            intent.steps_done.append(step)
        self.intents.save(intent)
        _fault(step)

    def erase(self, target: ForgetTarget, predicate: str, **kwargs: Any) -> ErasureIntent:
        return self.apply(self.capture(target, predicate, **kwargs))

    def finish(self) -> list[Receipt]:
        """Purge history once for every erasure so far, then verify and save each receipt."""
        if not self._pending:
            return []
        purged = self.table.purge_history() or []
        table_files = [str(f) for f in purged]
        vector_report = self.index.purge_history()
        vectors = _purge_summary(vector_report)
        # when the last purge finished (the stores say when theirs did; a stand-in may not)
        stamps = [str(getattr(r, "purged_at", "") or "") for r in (purged, vector_report)]
        purged_at = max([s for s in stamps if s] or [_now().isoformat()])
        from faceidx.store.persons import purge_persons_history

        purge_persons_history(self.location)
        for intent in self._pending:
            intent.removed["history"] = {
                "table_files": table_files,
                "vectors": vectors,
                "purged_at": purged_at,
            }
            self._step(intent, "history")
        done = []
        for intent in self._pending:
            verification = _verify(self.location, self.table, self.index, intent)
            _fault("verify")
            done.append(self._receipt(intent, verification))
        self._pending = []
        return done

    def _receipt(self, intent: ErasureIntent, verification: dict[str, Any]) -> Receipt:
        uri = receipt_for(self.location, intent)
        existing = self.location.read_json(uri)
        if existing is not None:  # written before a kill: never a second one
            receipt = Receipt(**{k: v for k, v in existing.items() if k in Receipt.__dataclass_fields__})
        else:
            receipt = receipt_of(intent, verification, uri)
            self.location.write_json(uri, receipt.to_dict())
        _fault("receipt")
        intent.state = "finished"
        intent.receipt_uri = uri
        intent.finished_at = receipt.finished_at
        intent.embeddings = {}  # kept only for the verification
        self.intents.save(intent)
        log.info("forgot %s: receipt %s (verified: %s)", receipt.target, receipt.uri, receipt.verified)
        return receipt


def receipt_of(intent: ErasureIntent, verification: dict[str, Any], uri: str) -> Receipt:
    removed = intent.removed
    return Receipt(
        id=intent.id,
        target=dict(intent.target),
        reason=intent.reason,
        actor=intent.actor,
        approver=intent.approver,
        started_at=intent.created_at,
        finished_at=_now().isoformat(),
        removed={
            "landing": {"files_ingested": intent.landing_files},
            "table_rows": dict(intent.table_rows),
            "table_rows_total": int(removed.get("table_rows_total", 0)),
            "face_ids": list(intent.face_ids),
            "images": list(intent.images),
            "vectors": {version: len(faces) for version, faces in sorted(intent.embeddings.items())},
            "vectors_total": int(removed.get("vectors_total", 0)),
            "crops": list(removed.get("crops", [])),
            "people_rows": dict(removed.get("people_rows", {})),
            "persons_refreshed": dict(removed.get("persons_refreshed", {})),
            "history": dict(removed.get("history", {})),
            "resumed": intent.resumed,
        },
        verification=verification,
        uri=uri,
    )


def finish_open_intents(location: IndexLocation, table: Any = None, index: Any = None) -> list[Receipt]:
    """Finish every erasure a killed process left open, from its intent record (never by reading the
    table again); the caller holds the writer lease. Returns their receipts."""
    intents = ErasureIntents(location).open()
    if not intents:
        return []
    erasure = _Erasure(location, table or _open_table(location), index or _open_index(location))
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


def target_predicate(
    location: IndexLocation, target: ForgetTarget, resolver: PersonResolver | None
) -> tuple[str, str | None]:
    """The face table predicate for the target, and the person id when the target is a person."""
    if target.kind == TARGET_IMAGE:
        return image_predicate(*target.image), None
    if target.kind == TARGET_FACE:
        return f"face_id = {sql_string(target.value)}", None
    face_ids = (resolver or default_person_resolver)(location, target.value)
    if face_ids is None:
        raise ForgetTargetNotFound(f"person {target.value} is not known: nothing was forgotten")
    if not face_ids:
        return "face_id IS NULL AND face_id IS NOT NULL", target.value  # matches nothing
    return in_list("face_id", face_ids), target.value


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
    erasure = _Erasure(location, table, index)
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


# -- ObjectRemoved tombstones ---------------------------------------------------------------------------
def tombstone_parts(item: Any) -> tuple[str, str, datetime, tuple[str, ...] | None]:
    """``(bucket, key, removed_at, face_ids)`` of a tombstone: the table's ``Tombstone`` (whose
    ``face_ids`` the ingest already deleted), a landing row (``image_bucket``, ``image_key``,
    ``indexed_at``) or a dict; ``face_ids`` is None when not given (the rows are still in the table)."""
    get = item.get if isinstance(item, Mapping) else lambda name: getattr(item, name, None)
    bucket = get("bucket") or get("image_bucket")
    key = get("key") or get("image_key")
    moment = get("removed_at") or get("indexed_at")
    if not bucket or not key or moment is None:
        raise ValueError(f"not a tombstone (it needs a bucket, a key and a time): {item!r}")
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    face_ids = get("face_ids")
    return str(bucket), str(key), moment, None if face_ids is None else tuple(face_ids)


def capture_from_history(location: IndexLocation, table: Any, face_ids: Sequence[str]) -> Any:
    """The rows of ``face_ids`` that an earlier commit deleted, read from the newest older table
    version that still holds them (before the purge removes them for good)."""
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder

    found = []
    missing = set(face_ids)
    version = int(table.version()) - 1
    while missing and version >= 0:
        try:
            old = DeltaTable(
                location.table_uri, version=version, storage_options=location.storage_options() or None
            )
            names = set(old.schema().to_arrow().names)
            columns = ", ".join(f'"{c}"' for c in CAPTURE_COLUMNS if c in names)
            sql = f"SELECT {columns} FROM faces WHERE {in_list('face_id', missing)}"  # noqa: S608 - quoted
            rows = pa.table(QueryBuilder().register("faces", old).execute(sql))
        except (OSError, ValueError) as error:  # a version whose files are already purged
            log.warning("table version %s cannot be read (%s): the search check covers less", version, error)
            break
        if rows.num_rows:
            if "crop_uri" not in rows.column_names:
                rows = rows.append_column("crop_uri", pa.nulls(rows.num_rows, pa.string()))
            rows = rows.select(CAPTURE_COLUMNS)
            found.append(rows.cast(pa.schema([pa.field(f.name, _plain(f.type)) for f in rows.schema])))
            missing -= set(rows["face_id"].to_pylist())
        version -= 1
    if not found:
        return None
    return pa.concat_tables(found, promote_options="permissive")


def _plain(kind: Any) -> Any:
    """string_view -> string (DataFusion answers with views), so captured rows concatenate."""
    import pyarrow as pa

    if pa.types.is_string_view(kind):
        return pa.string()
    if pa.types.is_list_view(kind) or pa.types.is_large_list(kind):
        return pa.list_(kind.value_type)
    return kind


def _erase_tombstones(erasure: _Erasure, tombstones: Iterable[Any]) -> int:
    latest: dict[tuple[str, str], tuple[datetime, set[str] | None]] = {}
    for item in tombstones:
        bucket, key, moment, face_ids = tombstone_parts(item)
        before, ids = latest.get((bucket, key), (moment, None))
        if face_ids is not None:
            ids = (ids or set()) | set(face_ids)
        latest[(bucket, key)] = (max(before, moment), ids)
    erased = 0
    for (bucket, key), (moment, erased_ids) in sorted(latest.items()):
        target = ForgetTarget(TARGET_IMAGE, f"s3://{bucket}/{key}")
        predicate = image_predicate(bucket, key, moment)
        reason = f"S3 ObjectRemoved at {moment.isoformat()}"
        if erased_ids:  # the ingest already deleted these rows from the table
            gone = sorted(erased_ids)
            rows = capture_from_history(erasure.location, erasure.table, gone)
            if rows is None:
                rows = _face_ids_only(gone)
            erasure.erase(
                target,
                predicate,
                reason=reason,
                actor=TOMBSTONE_ACTOR,
                landing_files=0,
                rows=rows,
                already_deleted=len(gone),
            )
            erased += 1
            continue
        try:
            erasure.erase(target, predicate, reason=reason, actor=TOMBSTONE_ACTOR, landing_files=0)
            erased += 1
        except ForgetTargetNotFound:
            log.info("ObjectRemoved s3://%s/%s: no row indexed at or before %s", bucket, key, moment)
    return erased


def _face_ids_only(face_ids: Sequence[str]) -> Any:
    """Rows that name the faces only (no embedding, no crop): what is known once history is gone."""
    import pyarrow as pa

    count = len(face_ids)
    return pa.table(
        {
            "face_id": pa.array(face_ids, pa.string()),
            "model_version": pa.array(["(unknown)"] * count, pa.string()),
            "image_bucket": pa.nulls(count, pa.string()),
            "image_key": pa.nulls(count, pa.string()),
            "embedding": pa.nulls(count, pa.list_(pa.float32())),
            "crop_uri": pa.nulls(count, pa.string()),
        }
    )


def forget_tombstones(
    location: IndexLocation,
    tombstones: Iterable[Any],
    *,
    table: Any = None,
    index: Any = None,
) -> list[Receipt]:
    """Forget the images of S3 ObjectRemoved tombstones (from ``FaceTable.ingest``), one receipt each.

    Called by the face table's ingest step right after its commit: the vectors, crops and persons rows
    of the faces the commit deleted go, history is purged, and each image is verified. Images that
    were never indexed are skipped (no receipt)."""
    items = list(tombstones)
    if not items:
        return []
    erasure = _Erasure(location, table or _open_table(location), index or _open_index(location))
    _erase_tombstones(erasure, items)
    receipts = erasure.finish()
    failed = [r for r in receipts if not r.verified]
    if failed:
        raise ForgetVerificationError(
            f"{len(failed)} ObjectRemoved erasure(s) left traces: "
            + ", ".join(f"{r.target['value']} ({r.uri})" for r in failed)
            + ". Rerun the ingest step; if traces stay, forget them with `faceidx forget --image`."
        )
    return receipts
