"""The face table's schema, derived from the landing schema (``faceidx_worker.rows.SCHEMA``).

The table holds the landing columns plus ``indexed_date`` (``YYYY-MM-DD``, the UTC date of
``indexed_at``; a partition column with ``model_version``). ``embedding`` is stored as
``list<float32>`` because Delta Lake has no fixed-size list; the writer enforces one dimension per
model version and readers get ``fixed_size_list<float32>[D]`` back (:func:`fixed_embeddings`).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

PARTITION_COLUMNS = ("model_version", "indexed_date")
EMBEDDING = "embedding"
EMBEDDING_TYPE = pa.list_(pa.float32())

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_REMOVED = "removed"
STATUSES = (STATUS_OK, STATUS_ERROR, STATUS_REMOVED)


def landing_schema() -> pa.Schema:
    """The landing files' schema: ``faceidx_worker.rows.SCHEMA``, the single source."""
    from faceidx_worker import rows

    schema: pa.Schema = rows.SCHEMA
    return schema


def table_schema() -> pa.Schema:
    """Landing columns (embedding as a variable list) plus the ``indexed_date`` partition column."""
    fields = []
    for landing in landing_schema():
        if landing.name == EMBEDDING:
            fields.append(pa.field(EMBEDDING, EMBEDDING_TYPE))
        else:
            fields.append(landing)
    fields.append(pa.field("indexed_date", pa.string(), nullable=False))
    return pa.schema(fields)


def face_column_defaults() -> dict[str, object]:
    """Columns newer than some workers, with the value their face rows meant (``rotation``: 0); an
    older landing file's face rows get it, its image-level rows stay null."""
    from faceidx_worker import rows

    return dict(rows.FACE_COLUMN_DEFAULTS)


def required_columns() -> list[str]:
    """Columns a landing file must have (the non-nullable ones); the others may be absent (null)."""
    return [landing.name for landing in landing_schema() if not landing.nullable]


def embedding_dimension(table: pa.Table) -> int | None:
    """The embedding length of the first non-null embedding, or None when there is none."""
    column = table.column(EMBEDDING) if EMBEDDING in table.column_names else None
    if column is None:
        return None
    if pa.types.is_fixed_size_list(column.type):
        return int(column.type.list_size)
    lengths = pc.drop_null(pc.list_value_length(column))
    return int(lengths[0].as_py()) if len(lengths) else None


def fixed_embeddings(table: pa.Table) -> pa.Table:
    """``embedding`` as ``fixed_size_list<float32>[D]`` when every embedding has one length D."""
    if EMBEDDING not in table.column_names:
        return table
    column = table.column(EMBEDDING)
    lengths = pc.unique(pc.drop_null(pc.list_value_length(column)))
    if len(lengths) != 1:
        return table  # no embedding, or several model versions of different dimensions
    dimension = int(lengths[0].as_py())
    fixed = column.cast(pa.list_(pa.float32(), dimension))
    position = table.column_names.index(EMBEDDING)
    return table.set_column(position, pa.field(EMBEDDING, fixed.type), fixed)
