"""Erasure: forget an image, a face or a person everywhere the index keeps it, and prove it.

:func:`forget` runs these steps, in this order, and writes what each one did into a receipt:

1. **landing**: ingest the pending landing files first, so no row of the target waits there;
2. **capture**: read the target's rows (every ETag of an image, every model version) and keep their
   embeddings for the verification;
3. **table**: delete the rows from every partition of the face table;
4. **vectors**: delete the face ids from the vector table of every model version;
5. **crops**: delete the ``crop_uri`` objects; **people**: delete the face -> person mapping rows (and,
   for a person, the person's own rows) from the persons tables that exist;
6. **history**: purge old table versions and old Lance versions (vacuum with retention 0), so no
   snapshot still holds the rows;
7. **verify**: the table holds no row of the target, and a search with every captured embedding finds
   none of the forgotten face ids.

The receipt is written to ``<output>/receipts/forget/<UTC time>-<id>.json``. A target that does not
exist raises :class:`ForgetTargetNotFound` and changes nothing (beyond ingesting pending landing files,
which ingest would have done anyway); no receipt is written for it.

S3 ``ObjectRemoved`` events reach the table as tombstone rows; :func:`forget_tombstones` erases each
removed image's rows indexed at or before the event, with one receipt per image.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from faceidx.common.uris import split_s3_uri
from faceidx.store.location import IndexLocation

log = logging.getLogger(__name__)

TARGET_IMAGE = "image"
TARGET_FACE = "face"
TARGET_PERSON = "person"
TARGET_TYPES = (TARGET_IMAGE, TARGET_FACE, TARGET_PERSON)
TOMBSTONE_ACTOR = "s3:ObjectRemoved"
CAPTURE_COLUMNS = ["face_id", "model_version", "image_bucket", "image_key", "embedding", "crop_uri"]
VERIFY_K = 10
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
        rows += [("reason", self.reason), ("actor", self.actor)]
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


def receipt_uri(location: IndexLocation, receipt_id: str, moment: datetime) -> str:
    return f"{location.receipts_uri}/{moment.strftime('%Y%m%dT%H%M%S%fZ')}-{receipt_id}.json"


# -- the parts -------------------------------------------------------------------------------------
def _open_table(location: IndexLocation) -> Any:
    from faceidx.store.table import FaceTable

    return FaceTable.open(location)


def _open_index(location: IndexLocation) -> Any:
    from faceidx.store.vectors import VectorIndex

    return VectorIndex(location)


def ingest_pending(table: Any) -> tuple[int, list[Any]]:
    """Ingest every landing file (several rounds when there are many); ``(files, tombstones)``."""
    files, tombstones = 0, list[Any]()
    for _ in range(MAX_INGEST_ROUNDS):
        report = table.ingest(max_files=INGEST_BATCH)
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


def _delete_crops(location: IndexLocation, uris: Iterable[str]) -> list[str]:
    deleted = []
    client = None
    for uri in sorted(set(uris)):
        parts = split_s3_uri(uri) if uri.startswith("s3://") else None
        if parts is not None:
            client = client or location.s3_client()
            client.delete_object(Bucket=parts[0], Key=parts[1])
        else:
            path = Path(uri.removeprefix("file://"))
            if not path.exists():
                log.warning("crop %s is already gone", uri)
                continue
            path.unlink()
        deleted.append(uri)
    return deleted


def _people_tables(location: IndexLocation) -> dict[str, str]:
    return {
        "face_persons": location.face_persons_uri,
        "persons": location.persons_uri,
        "person_events": location.person_events_uri,
    }


def _delete_people_rows(
    location: IndexLocation, face_ids: Sequence[str], person_id: str | None
) -> dict[str, int]:
    """Delete mapping rows of the faces (and the person's own rows) from each persons table that
    exists, then vacuum it with retention 0. Returns table name -> rows deleted."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    deleted: dict[str, int] = {}
    for name, uri in _people_tables(location).items():
        try:
            delta = DeltaTable(uri, storage_options=location.storage_options() or None)
        except TableNotFoundError:
            continue
        columns = set(delta.schema().to_arrow().names)
        clauses = []
        if face_ids and "face_id" in columns:
            clauses.append(in_list("face_id", face_ids))
        if person_id and "person_id" in columns:
            clauses.append(f"person_id = {sql_string(person_id)}")
        if not clauses:
            continue
        metrics = delta.delete(" OR ".join(f"({c})" for c in clauses))
        deleted[name] = int(metrics.get("num_deleted_rows", 0) or 0)
        delta.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    return deleted


def _indexed_versions(index: Any) -> set[str]:
    versions = getattr(index, "versions", None)
    return set(versions()) if callable(versions) else set()


def _verify(table: Any, index: Any, predicate: str, captured: Mapping[str, tuple[list[str], Any]]) -> dict:
    """No row of the target in the table; no forgotten face among the nearest ``VERIFY_K`` of each
    captured embedding, in its own model version."""
    left = table.read(columns=["face_id"], filter=predicate).num_rows
    forgotten = {face_id for ids, _ in captured.values() for face_id in ids}
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
    return {
        "table_rows_left": int(left),
        "searches": searches,
        "k": VERIFY_K,
        "versions_without_vectors": not_indexed,
        "found_face_ids": sorted(found),
        "passed": left == 0 and not found,
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


# -- the erasure ------------------------------------------------------------------------------------
@dataclass
class _Erasure:
    """Erase one or more targets, then purge history once and verify and save every receipt."""

    location: IndexLocation
    table: Any
    index: Any
    _receipts: list[tuple[Receipt, str, Mapping[str, tuple[list[str], Any]]]] = field(default_factory=list)

    def erase(
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
    ) -> Receipt:
        """Delete the target's rows (``predicate``), vectors, crops and persons rows. ``rows``: the
        target's rows captured beforehand when the table no longer holds them (a tombstone's)."""
        receipt = Receipt(
            id=uuid.uuid4().hex[:12],
            target={"type": target.kind, "value": target.value},
            reason=reason,
            actor=actor,
            started_at=_now().isoformat(),
        )
        deleted_rows = already_deleted
        if rows is None:
            rows = _capture(self.table, predicate)
            if rows.num_rows == 0 and person_id is None:
                raise ForgetTargetNotFound(f"{target.describe()} is not in the index: nothing was forgotten")
            deleted_rows = self.table.delete(predicate) if rows.num_rows else 0
        captured = _embeddings_by_version(rows)
        face_ids = sorted({f for f in rows["face_id"].to_pylist() if f})
        vectors_deleted = self.index.delete(face_ids) if face_ids else 0
        crops = _delete_crops(self.location, [u for u in rows["crop_uri"].to_pylist() if u])
        people = _delete_people_rows(self.location, face_ids, person_id)
        images = zip(rows["image_bucket"].to_pylist(), rows["image_key"].to_pylist(), strict=True)
        receipt.removed = {
            "landing": {"files_ingested": landing_files},
            "table_rows": _count_by(rows["model_version"].to_pylist()),
            "table_rows_total": int(deleted_rows),
            "face_ids": face_ids,
            "images": sorted({f"s3://{bucket}/{key}" for bucket, key in images}),
            "vectors": {version: len(ids) for version, (ids, _) in sorted(captured.items())},
            "vectors_total": int(vectors_deleted or 0),
            "crops": crops,
            "people_rows": people,
            "history": {},
        }
        self._receipts.append((receipt, predicate, captured))
        return receipt

    def finish(self) -> list[Receipt]:
        """Purge history once for every erasure so far, then verify and save each receipt."""
        if not self._receipts:
            return []
        table_files = [str(f) for f in (self.table.purge_history() or [])]
        vectors = _purge_summary(self.index.purge_history())
        done = []
        for receipt, predicate, captured in self._receipts:
            receipt.removed["history"] = {"table_files": table_files, "vectors": vectors}
            receipt.verification = _verify(self.table, self.index, predicate, captured)
            finished = _now()
            receipt.finished_at = finished.isoformat()
            receipt.uri = receipt_uri(self.location, receipt.id, finished)
            self.location.write_json(receipt.uri, receipt.to_dict())
            log.info("forgot %s: receipt %s (verified: %s)", receipt.target, receipt.uri, receipt.verified)
            done.append(receipt)
        self._receipts = []
        return done


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
) -> Receipt:
    """Erase ``target`` from the table, the vector index, crops and persons tables; purge; verify.

    Raises :class:`ForgetTargetNotFound` (nothing changed, no receipt) when the target is not there,
    :class:`ForgetVerificationError` when traces remain (the receipt, written, records them)."""
    predicate, person_id = target_predicate(location, target, resolve_person)
    table = table or _open_table(location)
    index = index or _open_index(location)
    files, tombstones = ingest_pending(table)
    erasure = _Erasure(location, table, index)
    if tombstones:
        _erase_tombstones(erasure, tombstones)
    try:
        receipt = erasure.erase(
            target, predicate, reason=reason, actor=actor, landing_files=files, person_id=person_id
        )
    finally:
        erasure.finish()  # the tombstones' erasures are finished even when the target is not found
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
