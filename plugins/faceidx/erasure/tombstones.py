"""S3 ObjectRemoved tombstones: the images the ingest saw removed are erased, one receipt each."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from faceidx.erasure.receipts import Receipt
from faceidx.erasure.steps import CAPTURE_COLUMNS, Erasure, _open_index, _open_table
from faceidx.erasure.targets import (
    TARGET_IMAGE,
    ForgetTarget,
    ForgetTargetNotFound,
    ForgetVerificationError,
    image_predicate,
    in_list,
)
from faceidx.store.location import IndexLocation

log = logging.getLogger(__name__)

TOMBSTONE_ACTOR = "s3:ObjectRemoved"


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


def _erase_tombstones(erasure: Erasure, tombstones: Iterable[Any]) -> int:
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
    erasure = Erasure(location, table or _open_table(location), index or _open_index(location))
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
