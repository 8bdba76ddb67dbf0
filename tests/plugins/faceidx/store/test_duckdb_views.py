"""The DuckDB view over the face table, and the SQL of docs/index-table.md run against a real table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from faceidx.store.athena import create_table_ddl
from faceidx.store.duckdb_views import connect
from faceidx.store.location import IndexLocation
from faceidx.store.schema import table_schema
from faceidx.store.table import FaceTable
from tests.plugins.faceidx.store.table_builders import DIM, VERSION, Image, face_id, later, write_landing

PAGE = Path(__file__).resolve().parents[4] / "docs" / "index-table.md"


def _blocks(engine: str) -> dict[str, str]:
    """``-- <engine>: <title>`` -> the SQL of each fenced sql block of the page."""
    found = {}
    for block in re.findall(r"```sql\n(.*?)```", PAGE.read_text(), flags=re.DOTALL):
        first, _, body = block.partition("\n")
        if first.startswith(f"-- {engine}: "):
            found[first.removeprefix(f"-- {engine}: ")] = body
    return found


@pytest.fixture
def location(tmp_path: Path) -> IndexLocation:
    location = IndexLocation(output_uri=str(tmp_path / "out"))
    write_landing(location, [Image("a.jpg", faces=3), Image("b.jpg", faces=1)])
    write_landing(
        location, [Image("c.jpg", status="error", at=later(1)), Image("d.jpg", faces=0, at=later(1))]
    )
    write_landing(location, [Image("a.jpg", faces=2, version="v2", dim=4, at=later(2))])
    FaceTable.open(location).ingest()
    return location


def test_the_view_is_the_snapshot_with_fixed_size_embeddings(tmp_path):
    location = IndexLocation(output_uri=str(tmp_path / "out"))
    assert connect(location).sql("SELECT count(*) FROM faces").fetchall() == [(0,)]  # empty table
    write_landing(location, [Image("a.jpg")])
    FaceTable.open(location).ingest()
    connection = connect(location)
    assert connection.sql("SELECT DISTINCT typeof(embedding) FROM faces").fetchall() == [(f"FLOAT[{DIM}]",)]
    types = dict(connection.sql("SELECT column_name, column_type FROM (DESCRIBE faces)").fetchall())
    assert list(types) == table_schema().names
    assert types["indexed_date"] == "VARCHAR"
    assert connection.sql("SELECT DISTINCT indexed_date, model_version FROM faces").fetchall() == [
        ("2026-11-20", VERSION)
    ]


def test_the_pages_duckdb_queries(location):
    queries = _blocks("duckdb")
    assert len(queries) == 4
    connection = connect(location)  # two dimensions: embedding stays FLOAT[]
    per_image = connection.execute(queries["faces per image"]).fetchall()
    assert per_image[:2] == [("photos", "a.jpg", 5), ("photos", "b.jpg", 1)]
    probe = face_id("photos", "a.jpg", "e1", VERSION, 0)
    one_version = connect(location, model_version=VERSION)  # embedding FLOAT[D]
    nearest = one_version.execute(
        queries["the 10 faces nearest to a face, in its model version"], {"face_id": probe}
    )
    rows = nearest.fetchall()
    assert rows[0][0] == probe
    assert rows[0][3] == pytest.approx(1.0)
    assert len(rows) == 4  # the faces of VERSION only
    assert connection.execute(queries["errors by reason"]).fetchall() == [("decode_error", 1)]
    assert connection.execute(queries["faces and images per model version"]).fetchall() == [
        (VERSION, 4, 4),
        ("v2", 2, 1),
    ]


def test_athena_ddl_and_queries_name_only_columns_of_the_table():
    location = IndexLocation(output_uri="s3://acme-index/prod")
    ddl = create_table_ddl(location)
    athena = _blocks("athena")
    assert athena.pop("register the table in the Glue catalog").strip().rstrip(";") == ddl
    assert "LOCATION 's3://acme-index/prod/table/faces/'" in ddl
    assert "'table_type' = 'DELTA'" in ddl
    assert set(athena) == set(_blocks("duckdb"))  # the same queries in both dialects
    columns = set(table_schema().names)
    for sql in athena.values():
        named = set(re.findall(r"\b(?:f\.)?([a-z_]+)\b", sql)) & {
            word for word in re.findall(r"[a-z_]+", sql) if "_" in word or word in columns
        }
        unknown = (
            {word for word in named if "_" in word}
            - columns
            - {
                "split_part",
                "zip_with",
                "model_version",
            }
        )
        assert unknown == set(), sql
    with pytest.raises(ValueError, match="S3"):
        create_table_ddl(IndexLocation(output_uri="/tmp/local"))
