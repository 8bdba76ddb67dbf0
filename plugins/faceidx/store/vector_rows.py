"""The vector index's rows: face-table rows to index rows, and a change feed to its net effect.

Pure Arrow functions used by :mod:`faceidx.store.vectors` (sync) and :mod:`faceidx.store.vector_shards`
(which shard a change belongs to); no LanceDB here.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

VERSION_METADATA_KEY = b"faceidx.model_version"
MONTH_METADATA_KEY = b"faceidx.month"
# What the index keeps from the face table, besides the embedding.
FACE_COLUMNS = ("face_id", "image_bucket", "image_key", "face_index", "bbox", "quality_passed")
# The face table's date partition column: a shard holds one model version's faces of one month of it.
DATE_COLUMN = "indexed_date"
READ_COLUMNS = [*FACE_COLUMNS, "embedding", "status", DATE_COLUMN]
_DATE = re.compile(r"^(\d{4})-(\d{2})-\d{2}")


def face_rows(data: pa.Table) -> pa.Table:
    """Only the rows that are faces with an embedding (image-level and error rows carry none)."""
    import pyarrow.compute as pc

    mask = pc.and_(pc.is_valid(data["face_index"]), pc.is_valid(data["embedding"]))
    if "status" in data.column_names:
        mask = pc.and_(mask, pc.equal(pc.fill_null(data["status"], "ok"), "ok"))
    return data.filter(mask)


def latest_changes(changes: pa.Table) -> tuple[pa.Table, list[str]]:
    """Collapse a change feed to its net effect per face_id: (rows to upsert, face_ids to delete).

    The last change of each face_id (by ``_commit_version``, then feed order) decides: an insert or
    update post-image is upserted, a delete removes it; update pre-images are ignored.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if "_change_type" not in changes.column_names or changes.num_rows == 0:
        return changes.slice(0, 0), []
    relevant = changes.filter(
        pc.is_in(changes["_change_type"], pa.array(["insert", "update_postimage", "delete"]))
    )
    if relevant.num_rows == 0:
        return relevant, []
    order = np.lexsort(
        (np.arange(relevant.num_rows), relevant["_commit_version"].to_numpy(zero_copy_only=False))
    )
    face_ids = relevant["face_id"].to_pylist()
    last: dict[str, int] = {}
    for position in order:
        last[face_ids[position]] = int(position)
    keep = sorted(last.values())
    final = relevant.take(pa.array(keep, type=pa.int64()))
    deleted_mask = pc.equal(final["_change_type"], "delete")
    deletes = final.filter(deleted_mask)["face_id"].to_pylist()
    upserts = face_rows(final.filter(pc.invert(deleted_mask)))
    return upserts, deletes


def plain_arrow(data: Any) -> pa.Table:
    """Any Arrow table (deltalake 1.x hands out arro3 tables) as pyarrow, view types made plain
    (the change data feed reads strings as ``string_view``, which few compute kernels take)."""
    import pyarrow as pa

    table = data if isinstance(data, pa.Table) else pa.table(data)
    fields = []
    for item in table.schema:
        kind = item.type
        if pa.types.is_string_view(kind) or pa.types.is_large_string(kind):
            kind = pa.string()
        elif pa.types.is_binary_view(kind):
            kind = pa.binary()
        elif pa.types.is_list_view(kind) or pa.types.is_large_list(kind):
            kind = pa.list_(kind.value_type)
        fields.append(pa.field(item.name, kind, item.nullable))
    schema = pa.schema(fields, metadata=table.schema.metadata)
    return table if schema.equals(table.schema) else table.cast(schema)


def to_index_rows(data: pa.Table, dimension: int | None = None) -> pa.Table:
    """Face-table rows -> the index's columns, ``embedding`` as ``vector`` ``fixed_size_list[D]``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    embedding = data["embedding"].combine_chunks()
    if pa.types.is_fixed_size_list(embedding.type):
        size = embedding.type.list_size
        values = embedding.flatten()
    else:
        lengths = pc.list_value_length(embedding).to_numpy(zero_copy_only=False)
        size = int(lengths[0]) if len(lengths) else (dimension or 0)
        if len(lengths) and not (lengths == size).all():
            raise ValueError(
                f"embeddings of mixed lengths {sorted(set(lengths.tolist()))} in one model version"
            )
        values = embedding.flatten()
    if dimension is not None and data.num_rows and size != dimension:
        raise ValueError(f"embeddings have {size} dimensions, the index holds {dimension}")
    size = dimension or size
    vector = pa.FixedSizeListArray.from_arrays(pc.cast(values, pa.float32()), size)
    columns: dict[str, Any] = {}
    for name in FACE_COLUMNS:
        if name in data.column_names:
            columns[name] = data[name].combine_chunks()
        elif name == "quality_passed":
            columns[name] = pa.nulls(data.num_rows, pa.bool_())
        else:
            raise ValueError(f"the face table rows lack the column {name!r}")
    columns["vector"] = vector
    return pa.table(columns, schema=index_schema(size, ""))


def index_schema(dimension: int, model_version: str, month: str = "") -> pa.Schema:
    """The index table's schema; its metadata records the model version and, for a shard, its month."""
    import pyarrow as pa

    metadata = {VERSION_METADATA_KEY: model_version.encode()} if model_version else None
    if metadata is not None and month:
        metadata[MONTH_METADATA_KEY] = month.encode()
    return pa.schema(
        [
            pa.field("face_id", pa.string(), nullable=False),
            pa.field("image_bucket", pa.string()),
            pa.field("image_key", pa.string()),
            pa.field("face_index", pa.int32()),
            pa.field("bbox", pa.list_(pa.float32())),
            pa.field("quality_passed", pa.bool_()),
            pa.field("vector", pa.list_(pa.float32(), dimension)),
        ],
        metadata=metadata,
    )


class FaceSource(Protocol):
    """What :meth:`VectorIndex.sync` reads from the face table (``faceidx.store.table.FaceTable``).
    A source may also answer ``partitions()`` (``(model_version, indexed_date)`` pairs from its log);
    without it the shards' months are read from the rows."""

    def read(
        self, model_version: str | None = None, columns: list[str] | None = None, filter: str | None = None
    ) -> pa.Table: ...

    def version(self) -> int: ...

    def changes_since(self, version: int) -> pa.Table: ...


def month_of(indexed_date: str) -> str:
    """``2026-11-05`` -> ``2026-11``."""
    found = _DATE.match(indexed_date or "")
    if found is None:
        raise ValueError(f"{DATE_COLUMN} is YYYY-MM-DD, got {indexed_date!r}")
    return f"{found.group(1)}-{found.group(2)}"


def months_of(data: pa.Table) -> pa.Array:
    """The ``YYYY-MM`` of every row's ``indexed_date``."""
    import pyarrow.compute as pc

    if DATE_COLUMN not in data.column_names:
        raise ValueError(
            f"the face table rows lack {DATE_COLUMN!r}, the column the vector shards are keyed by"
        )
    return pc.utf8_slice_codeunits(data[DATE_COLUMN].combine_chunks().cast("string"), 0, 7)


def table_months(table: FaceSource, model_version: str | None) -> dict[str, list[str]]:
    """Model version -> the months of ``indexed_date`` the face table holds faces of: from the
    table's partition list when it has one (no data read), else from its rows."""
    lister = getattr(table, "partitions", None)
    found: dict[str, set[str]] = {}
    if callable(lister):
        for version, indexed_date in lister():
            if model_version is None or version == model_version:
                found.setdefault(str(version), set()).add(month_of(str(indexed_date)))
    else:
        data = plain_arrow(table.read(model_version=model_version, columns=["model_version", DATE_COLUMN]))
        if data.num_rows:
            for version, month in zip(
                data["model_version"].to_pylist(), months_of(data).to_pylist(), strict=True
            ):
                found.setdefault(str(version), set()).add(str(month))
    return {version: sorted(months) for version, months in found.items()}
