"""The ``rotation`` column (the worker's rotation retry) in the face table: older landing files and
older tables still take new rows, asserted on the table's contents."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from faceidx.store.location import IndexLocation
from faceidx.store.schema import PARTITION_COLUMNS, table_schema
from faceidx.store.table import FaceTable
from tests.plugins.faceidx.store.table_builders import Image, landing_table, rows_of, write_bytes

DAY = "2026-11-20"


@pytest.fixture
def location(tmp_path: Path) -> IndexLocation:
    return IndexLocation(output_uri=str(tmp_path / "out"))


def _write(location: IndexLocation, table: pa.Table, name: str) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    write_bytes(location, f"{location.landing_uri}/dt={DAY}/{name}", buffer.getvalue())


def _rotations(table: FaceTable) -> list[tuple[str, int | None, int | None]]:
    rows = table.read(columns=["image_key", "face_index", "rotation"]).to_pylist()
    return sorted(
        ((r["image_key"], r["face_index"], r["rotation"]) for r in rows), key=lambda r: (r[0], r[1] or -1)
    )


def test_a_landing_file_without_the_column_ingests_with_rotation_0_on_its_faces(location):
    old = landing_table([Image("a.jpg", faces=2), Image("b.jpg", faces=0)]).drop_columns(["rotation"])
    _write(location, old, "part-old.parquet")

    table = FaceTable.open(location)
    report = table.ingest()

    assert report.files_rejected == {}
    assert report.rows_inserted == 3
    assert _rotations(table) == [("a.jpg", 0, 0), ("a.jpg", 1, 0), ("b.jpg", None, None)]


def test_the_rotation_a_worker_wrote_is_kept(location):
    rows = rows_of(Image("turned.jpg", faces=1)) + rows_of(Image("plain.jpg", faces=1))
    rows[0]["rotation"], rows[1]["rotation"] = 270, 0
    from faceidx_worker.rows import rows_to_table

    _write(location, rows_to_table(rows, len(rows[0]["embedding"])), "part-new.parquet")
    table = FaceTable.open(location)
    table.ingest()

    assert _rotations(table) == [("plain.jpg", 0, 0), ("turned.jpg", 0, 270)]


def test_a_table_created_before_the_column_gets_it_and_takes_new_rows(location):
    from deltalake import DeltaTable, write_deltalake

    older = pa.schema([field for field in table_schema() if field.name != "rotation"])
    DeltaTable.create(location.table_uri, older, partition_by=list(PARTITION_COLUMNS))
    first = landing_table([Image("old.jpg", faces=1)]).drop_columns(["rotation"])
    first = first.append_column("indexed_date", pa.array([DAY] * first.num_rows))
    first = first.set_column(
        first.schema.get_field_index("embedding"),
        "embedding",
        first.column("embedding").cast(pa.list_(pa.float32())),
    )
    write_deltalake(location.table_uri, first.cast(older), mode="append")

    reader = FaceTable.open_if_exists(location)
    assert reader is not None
    assert "rotation" not in reader.read().column_names  # a reader before the next ingest still reads

    rows = rows_of(Image("new.jpg", faces=1))
    rows[0]["rotation"] = 90
    from faceidx_worker.rows import rows_to_table

    _write(location, rows_to_table(rows, len(rows[0]["embedding"])), "part-new.parquet")
    table = FaceTable.open(location)
    assert "rotation" in pa.schema(table.delta.schema().to_arrow()).names
    report = table.ingest()

    assert report.files_rejected == {}
    assert _rotations(table) == [("new.jpg", 0, 90), ("old.jpg", 0, None)]
