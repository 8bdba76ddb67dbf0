"""DuckDB over the face table's current snapshot: a view ``faces`` with ``embedding`` as ``FLOAT[D]``.

DuckDB's ``delta`` and ``httpfs`` extensions are downloads, so neither is used:

* a local table is read with ``read_parquet([...the snapshot's data files...], hive_partitioning)``:
  exactly the files of the current Delta version, the partition columns from their paths;
* a table on S3 is read through a pyarrow dataset of the same files (delta-rs lists them and
  pyarrow's S3 filesystem reads them), registered in DuckDB, which scans it with projection and
  filter pushdown.

Either way the view sees one snapshot: files a later commit adds or removes do not appear until
``connect`` is called again.
"""

from __future__ import annotations

from typing import Any

from faceidx.store.location import IndexLocation
from faceidx.store.schema import EMBEDDING, table_schema
from faceidx.store.table import FaceTable

VIEW = "faces"


def _duckdb_type(arrow_type: Any) -> str:
    import pyarrow as pa

    if pa.types.is_list(arrow_type):
        return _duckdb_type(arrow_type.value_type) + "[]"
    names = {
        pa.string(): "VARCHAR",
        pa.int16(): "SMALLINT",
        pa.int32(): "INTEGER",
        pa.int64(): "BIGINT",
        pa.float32(): "FLOAT",
        pa.float64(): "DOUBLE",
        pa.bool_(): "BOOLEAN",
        pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
    }
    return names[arrow_type]


def _select_list(dimension: int | None) -> str:
    columns = []
    for item in table_schema():
        if item.name == EMBEDDING and dimension is not None:
            columns.append(f"CAST({EMBEDDING} AS FLOAT[{dimension}]) AS {EMBEDDING}")
        else:
            columns.append(f'CAST("{item.name}" AS {_duckdb_type(item.type)}) AS "{item.name}"')
    return ", ".join(columns)


def single_dimension(table: FaceTable) -> int | None:
    """The embedding dimension when every model version of the table has the same one."""
    dimensions = {table.dimension(version) for version in table.model_versions()}
    dimensions.discard(None)
    return dimensions.pop() if len(dimensions) == 1 else None


def _partition_value(uri: str, column: str) -> str | None:
    from urllib.parse import unquote

    for part in uri.split("/"):
        if part.startswith(column + "="):
            return unquote(part.removeprefix(column + "="))
    return None


def connect(location: IndexLocation, *, model_version: str | None = None, database: str = ":memory:") -> Any:
    """A DuckDB connection with the view ``faces`` over the table's current snapshot.

    ``embedding`` is ``FLOAT[D]`` when the view holds one dimension: always with ``model_version``
    (the view then holds that version only), or when every version of the table has the same one.
    With versions of different dimensions and no ``model_version`` it is ``FLOAT[]``.
    """
    import duckdb
    import pyarrow as pa

    table = FaceTable.open(location)
    connection = duckdb.connect(database)
    dimension = table.dimension(model_version) if model_version else single_dimension(table)
    files = table.file_uris()
    if model_version is not None:
        files = [uri for uri in files if _partition_value(uri, "model_version") == model_version]
    if not files:
        empty = pa.Table.from_batches([], schema=table_schema())
        connection.register("faces_snapshot", empty)
        source = "faces_snapshot"
    elif not location.is_s3:
        listed = ", ".join("'" + uri.replace("'", "''") + "'" for uri in files)
        source = (
            f"read_parquet([{listed}], hive_partitioning = true, hive_types_autocast = false, "
            "union_by_name = true)"
        )
    else:
        dataset = table.delta.to_pyarrow_dataset()
        if model_version is not None:
            import pyarrow.dataset as ds

            dataset = dataset.filter(ds.field("model_version") == model_version)
        connection.register("faces_snapshot", dataset)
        source = "faces_snapshot"
    # the file list is quoted above; column names and types come from the table's schema
    view = f"CREATE OR REPLACE VIEW {VIEW} AS SELECT {_select_list(dimension)} FROM {source}"  # noqa: S608
    connection.execute(view)
    return connection
