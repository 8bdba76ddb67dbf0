"""The steps of an erasure, each idempotent and each recorded in the intent: capture and write the
intent, delete from the table, the vectors, the crops and the persons tables, purge history, verify,
write the receipt. ``FACEIDX_FAULT_KILL_AT=<step>`` kills the process right after a step (the tests)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceidx.common.uris import split_s3_uri
from faceidx.erasure.receipts import Receipt, _now, receipt_for, receipt_of
from faceidx.erasure.targets import ForgetTarget, ForgetTargetNotFound, in_list, sql_string
from faceidx.erasure.verify import _verify
from faceidx.store.intents import ErasureIntent, ErasureIntents, new_intent_id
from faceidx.store.location import IndexLocation

log = logging.getLogger(__name__)

CAPTURE_COLUMNS = ["face_id", "model_version", "image_bucket", "image_key", "embedding", "crop_uri"]
KILL_ENV = "FACEIDX_FAULT_KILL_AT"
STEPS = ("intent", "table", "vectors", "crops", "people", "history", "verify", "receipt")
MAX_INGEST_ROUNDS = 1000
INGEST_BATCH = 500


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


def _purge_summary(report: Any) -> dict[str, Any]:
    """The vector index's purge report as plain JSON."""
    if report is None:
        return {"purged": True}
    return {
        "purged": True,
        "versions_removed": dict(getattr(report, "versions_removed", {}) or {}),
        "rewritten": list(getattr(report, "rewritten", []) or []),
    }


# -- the erasure ------------------------------------------------------------------------------------
@dataclass
class Erasure:
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
