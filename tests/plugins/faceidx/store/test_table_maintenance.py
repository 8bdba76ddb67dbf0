"""Compaction, vacuum, purge, the change data feed and reads of FaceTable; the table CLI."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from faceidx.maintenance.tasks import interval_days
from faceidx.store.location import IndexLocation
from faceidx.store.table import FaceTable
from tests.plugins.faceidx.store.table_builders import DIM, VERSION, Image, later, write_landing


@pytest.fixture
def location(tmp_path: Path) -> IndexLocation:
    return IndexLocation(output_uri=str(tmp_path / "out"))


def _filled(location: IndexLocation, batches: int = 4) -> FaceTable:
    table = FaceTable.open(location)
    for number in range(batches):
        write_landing(location, [Image(f"img-{number}.jpg", at=later(number))])
        table.ingest()
    return table


def _rows_on_disk(location: IndexLocation, key: str) -> int:
    files = [str(p) for p in Path(location.table_uri).rglob("*.parquet")]
    if not files:
        return 0
    sql = "SELECT count(*) FROM read_parquet($files, union_by_name = true) WHERE image_key = $key"
    return int(duckdb.sql(sql, params={"files": files, "key": key}).fetchall()[0][0])


def test_compaction_rewrites_one_day_into_one_file_and_keeps_every_row(location):
    table = _filled(location)
    write_landing(location, [Image("next-day.jpg", at=later(60 * 24))])
    table.ingest()
    rows = sorted(table.read(columns=["face_id"]).column("face_id").to_pylist())
    report = table.compact("2026-11-20")
    assert (report.files_before, report.files_after) == (4, 1)
    assert report.bytes_after > 0
    assert len(table.file_uris()) == 2  # the next day's file is untouched
    assert sorted(table.read(columns=["face_id"]).column("face_id").to_pylist()) == rows
    again = table.compact("2026-11-20")
    assert again.version_after == again.version_before  # nothing left to compact: no commit


def test_vacuum_keeps_recent_versions_and_purge_history_removes_every_trace(location):
    table = _filled(location)
    table.compact()
    assert table.vacuum() == []  # the replaced files are younger than a week
    assert _rows_on_disk(location, "img-1.jpg") > 0
    assert table.delete("image_key = 'img-1.jpg'") == 2
    assert table.read(filter="image_key = 'img-1.jpg'").num_rows == 0
    assert _rows_on_disk(location, "img-1.jpg") > 0  # old versions and the change feed still hold it
    removed = table.purge_history()
    assert any("_change_data" in name for name in removed)
    assert _rows_on_disk(location, "img-1.jpg") == 0
    assert table.read(columns=["face_id"]).num_rows == 6


def test_changes_since_returns_the_change_feed_of_later_commits(location):
    table = _filled(location, batches=2)
    start = table.version()
    assert table.changes_since(start).num_rows == 0
    table.delete("image_key = 'img-0.jpg'")
    changes = table.changes_since(start)
    assert sorted(changes.column("_change_type").to_pylist()) == ["delete", "delete"]
    assert set(changes.column("image_key").to_pylist()) == {"img-0.jpg"}


def test_read_filters_and_types(location):
    table = _filled(location, batches=2)
    write_landing(location, [Image("other.jpg", version="v2", dim=4)])
    table.ingest()
    mixed = table.read(columns=["model_version", "embedding"])
    assert mixed.schema.field("embedding").type == pa.list_(pa.float32())  # two dimensions: a plain list
    one = table.read(model_version=VERSION, columns=["face_id", "embedding"], filter="face_index = 1")
    assert one.num_rows == 2
    assert one.schema.field("embedding").type == pa.list_(pa.float32(), DIM)
    assert table.model_versions() == {VERSION: 4, "v2": 2}
    assert table.dimension("v2") == 4


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        ("2026-11-20T10:00:00+00:00", "2026-11-20T11:00:00+00:00", ["2026-11-20"]),
        ("2026-11-20T23:00:00+00:00", "2026-11-21T00:00:00+00:00", ["2026-11-20"]),
        ("2026-11-20T10:00:00+00:00", "2026-11-20T10:00:00+00:00", ["2026-11-20"]),  # a manual run
        (
            "2026-11-20T22:00:00+00:00",
            "2026-11-22T01:00:00+00:00",
            ["2026-11-20", "2026-11-21", "2026-11-22"],
        ),
        ("2026-11-20T23:30:00-02:00", "2026-11-21T00:30:00-02:00", ["2026-11-21"]),  # UTC days
    ],
)
def test_interval_days(start, end, days):
    from datetime import datetime

    assert interval_days(datetime.fromisoformat(start), datetime.fromisoformat(end)) == days
    assert interval_days(None, None) == []


def test_table_cli_ingest_show_compact_vacuum(location, capsys):
    from faceidx.cli import main

    for number in range(3):
        write_landing(location, [Image(f"img-{number}.jpg", at=later(number))])
    write_landing(location, [Image("img-0.jpg", job="again", at=later(9))])
    assert main(["--output-uri", location.output_uri, "table", "ingest", "--max-files", "2"]) == 0
    out = capsys.readouterr().out
    assert "duplicates dropped" in out
    assert FaceTable.open(location).read(columns=["face_id"]).num_rows == 6
    assert main(["--output-uri", location.output_uri, "table", "compact", "--date", "2026-11-20"]) == 0
    assert "files_after" in capsys.readouterr().out
    assert main(["--output-uri", location.output_uri, "table", "vacuum", "--retention-hours", "0"]) == 0
    assert "file(s) removed" in capsys.readouterr().out
    assert main(["--output-uri", location.output_uri, "table", "show", "--json"]) == 0
    assert '"faces": {"' + VERSION + '": 6}' in capsys.readouterr().out


def test_the_ingest_step_forgets_tombstones_with_a_receipt(tmp_path):
    from faceidx.maintenance.tasks import ingest_task, sync_vectors_task

    location = IndexLocation(output_uri=str(tmp_path / "out"), vectors_uri=str(tmp_path / "vectors"))
    write_landing(location, [Image("keep.jpg"), Image("gone.jpg")])
    ingest_task(location, max_files=10)
    sync_vectors_task(location)
    write_landing(location, [Image("gone.jpg", status="removed", at=later(30))])
    summary = ingest_task(location, max_files=10)
    assert [t["key"] for t in summary["tombstones"]] == ["gone.jpg"]
    assert summary["receipts"] == 1
    table = FaceTable.open(location)
    assert set(table.read(columns=["image_key"]).column("image_key").to_pylist()) == {"keep.jpg"}
    receipts = list(Path(location.receipts_uri).glob("*.json"))
    assert len(receipts) == 1
    assert _rows_on_disk(location, "gone.jpg") == 0  # the erasure purged the table's history
