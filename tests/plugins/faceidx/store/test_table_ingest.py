"""FaceTable.ingest on local paths: dedup, rejection, tombstones, crash safety; asserted on the table."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from faceidx.store.location import IndexLocation
from faceidx.store.table import FaceTable
from tests.plugins.faceidx.store.table_builders import (
    DIM,
    VERSION,
    Image,
    face_id,
    landing_table,
    later,
    write_bytes,
    write_landing,
)


@pytest.fixture
def location(tmp_path: Path) -> IndexLocation:
    return IndexLocation(output_uri=str(tmp_path / "out"))


def _landing(location: IndexLocation) -> list[Path]:
    return sorted(Path(location.landing_uri).rglob("*.parquet"))


def _faces(table: FaceTable) -> list[tuple[str, str, int | None, str]]:
    rows = table.read(columns=["image_key", "image_etag", "face_index", "status"]).to_pylist()
    return sorted((r["image_key"], r["image_etag"], r["face_index"], r["status"]) for r in rows)


def _face_ids(table: FaceTable) -> Counter[str]:
    return Counter(table.read(columns=["face_id"]).column("face_id").to_pylist())


def test_first_use_creates_the_partitioned_table_with_change_data_feed(location):
    table = FaceTable.open(location)
    assert table.version() == 0
    metadata = table.delta.metadata()
    assert metadata.partition_columns == ["model_version", "indexed_date"]
    assert metadata.configuration["delta.enableChangeDataFeed"] == "true"
    assert FaceTable.open(location).version() == 0  # opening again does not recreate it


def test_ingest_inserts_rows_deletes_landing_and_records_files_in_the_commit(location):
    first = write_landing(location, [Image("a.jpg"), Image("b.jpg", faces=0)])
    second = write_landing(location, [Image("c.jpg", status="error", at=later(1))])
    table = FaceTable.open(location)
    report = table.ingest()

    assert report.committed
    assert report.files_ingested == 2
    assert report.rows_inserted == 4
    assert _faces(table) == [
        ("a.jpg", "e1", 0, "ok"),
        ("a.jpg", "e1", 1, "ok"),
        ("b.jpg", "e1", None, "ok"),
        ("c.jpg", "e1", None, "error"),
    ]
    assert _landing(location) == []
    commit = table.delta.history(1)[0]
    recorded = json.loads(commit["faceidx.landing_files"])
    assert sorted(recorded) == sorted(uri.removeprefix(location.landing_uri + "/") for uri in (first, second))
    days = {values["indexed_date"] for values in table.delta.partitions()}
    assert days == {"2026-11-20"}
    read = table.read(model_version=VERSION)
    assert read.schema.field("embedding").type == pa.list_(pa.float32(), DIM)
    assert table.model_versions() == {VERSION: 2}


def test_rerun_is_a_noop(location):
    write_landing(location, [Image("a.jpg")])
    table = FaceTable.open(location)
    table.ingest()
    version = table.version()
    report = table.ingest()
    assert report.noop
    assert report.files_listed == 0
    assert not report.committed
    assert table.version() == version


def test_duplicates_within_the_batch_and_against_the_table_are_dropped(location):
    write_landing(location, [Image("a.jpg", job="job:1"), Image("b.jpg")])
    write_landing(location, [Image("a.jpg", job="job:2", at=later(5))])  # re-delivery in the same batch
    table = FaceTable.open(location)
    report = table.ingest()
    assert report.rows_inserted == 4
    assert report.duplicates_dropped == 2

    write_landing(location, [Image("a.jpg", job="job:3", at=later(60 * 24))])  # next day, again
    version = table.version()
    report = table.ingest()
    assert report.duplicates_dropped == 2
    assert report.rows_inserted == 0
    assert not report.committed
    assert table.version() == version
    assert set(_face_ids(table).values()) == {1}
    assert len(_face_ids(table)) == 4
    assert _landing(location) == []


def test_an_error_outcome_is_replaced_by_a_later_success(location):
    write_landing(location, [Image("a.jpg", status="error")])
    table = FaceTable.open(location)
    table.ingest()
    write_landing(location, [Image("a.jpg", faces=3, at=later(60 * 24))])  # retried, next day
    report = table.ingest()
    assert report.outcomes_upgraded == 1
    assert report.rows_deleted == 1
    assert report.rows_inserted == 3
    assert _faces(table) == [("a.jpg", "e1", i, "ok") for i in range(3)]

    # a later error for the same image never replaces the success
    write_landing(location, [Image("a.jpg", status="error", at=later(60 * 48))])
    table.ingest()
    assert _faces(table) == [("a.jpg", "e1", i, "ok") for i in range(3)]


def test_an_error_replaced_by_ok_without_faces_in_the_same_partition(location):
    write_landing(location, [Image("a.jpg", status="error")])
    table = FaceTable.open(location)
    table.ingest()
    write_landing(location, [Image("a.jpg", faces=0, at=later(5))])
    report = table.ingest()
    assert report.rows_replaced == 1
    assert _faces(table) == [("a.jpg", "e1", None, "ok")]


def test_same_image_in_batch_prefers_ok_over_a_later_error(location):
    write_landing(location, [Image("a.jpg", faces=1)])
    write_landing(location, [Image("a.jpg", status="error", at=later(10), job="job:9")])
    table = FaceTable.open(location)
    table.ingest()
    assert _faces(table) == [("a.jpg", "e1", 0, "ok")]


def test_a_new_etag_is_a_new_outcome(location):
    write_landing(location, [Image("a.jpg", etag="e1", faces=1)])
    write_landing(location, [Image("a.jpg", etag="e2", faces=1, at=later(3))])
    table = FaceTable.open(location)
    table.ingest()
    assert _faces(table) == [("a.jpg", "e1", 0, "ok"), ("a.jpg", "e2", 0, "ok")]


def test_tombstones_are_reported_and_erase_older_rows_in_every_model_version(location):
    write_landing(location, [Image("a.jpg"), Image("b.jpg")])
    write_landing(location, [Image("a.jpg", version="other-v2", dim=4)])
    table = FaceTable.open(location)
    table.ingest()
    erased_ids = sorted(
        face_id("photos", "a.jpg", "e1", version, index)
        for version in (VERSION, "other-v2")
        for index in (0, 1)
    )
    write_landing(location, [Image("a.jpg", status="removed", at=later(30))])
    write_landing(location, [Image("a.jpg", etag="e9", faces=1, at=later(40))])  # uploaded again after
    report = table.ingest()

    assert [(t["bucket"], t["key"]) for t in report.tombstones] == [("photos", "a.jpg")]
    assert sorted(report.tombstones[0]["face_ids"]) == erased_ids
    assert report.rows_deleted == 4
    assert _faces(table) == [("a.jpg", "e9", 0, "ok"), ("b.jpg", "e1", 0, "ok"), ("b.jpg", "e1", 1, "ok")]
    assert "removed" not in table.read(columns=["status"]).column("status").to_pylist()


def test_a_tombstone_in_the_batch_erases_earlier_rows_of_the_batch(location):
    write_landing(location, [Image("a.jpg"), Image("a.jpg", status="removed", at=later(1))])
    table = FaceTable.open(location)
    report = table.ingest()
    assert report.erased_in_batch == 2
    assert _faces(table) == []
    assert report.tombstones[0]["key"] == "a.jpg"


def test_wrong_dimension_rows_and_non_landing_files_are_set_aside(location):
    table = FaceTable.open(location)
    write_landing(location, [Image("a.jpg")])
    table.ingest()  # the table now knows VERSION has DIM values
    good_and_bad = pa.concat_tables(
        [
            landing_table([Image("b.jpg", faces=1)]).cast(
                landing_table([Image("b.jpg", faces=1, dim=3)]).schema.set(
                    12, pa.field("embedding", pa.list_(pa.float32()))
                )
            ),
            landing_table([Image("c.jpg", faces=1, dim=3)]).cast(
                landing_table([Image("c.jpg", faces=1, dim=3)]).schema.set(
                    12, pa.field("embedding", pa.list_(pa.float32()))
                )
            ),
        ]
    )
    mixed = f"{location.landing_uri}/dt=2026-11-20/part-mixed.parquet"
    buffer = pa.BufferOutputStream()
    pq.write_table(good_and_bad, buffer)
    write_bytes(location, mixed, buffer.getvalue().to_pybytes())
    junk = f"{location.landing_uri}/dt=2026-11-20/part-junk.parquet"
    write_bytes(location, junk, b"not parquet at all")
    foreign = f"{location.landing_uri}/dt=2026-11-20/part-foreign.parquet"
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.table({"x": [1]}), buffer)
    write_bytes(location, foreign, buffer.getvalue().to_pybytes())
    write_landing(location, [Image("d.jpg", faces=1)])  # a good file beside them is not blocked

    report = table.ingest()
    assert set(report.files_rejected) == {junk, foreign}
    assert "not a Parquet file" in report.files_rejected[junk]
    assert "missing required column" in report.files_rejected[foreign]
    assert report.rejected_rows == {f"embedding has 3 values; model version {VERSION} has {DIM}": 1}
    assert [key for key, *_ in _faces(table)] == ["a.jpg", "a.jpg", "b.jpg", "d.jpg"]
    assert _landing(location) == []

    rejected = Path(location.output_uri) / "faces-rejected" / "dt=2026-11-20"
    assert sorted(p.name for p in rejected.iterdir()) == [
        "part-foreign.parquet",
        "part-foreign.parquet.reason.json",
        "part-junk.parquet",
        "part-junk.parquet.reason.json",
        "part-mixed.parquet.rejected.parquet",
    ]
    set_aside = pq.read_table(rejected / "part-mixed.parquet.rejected.parquet")
    assert set_aside.column("image_key").to_pylist() == ["c.jpg"]
    assert "has 3 values" in set_aside.column("rejected_reason")[0].as_py()
    assert json.loads((rejected / "part-junk.parquet.reason.json").read_text())["landing_file"] == junk


def test_crash_before_the_commit_loses_nothing(location, monkeypatch):
    from deltalake.table import TableMerger

    write_landing(location, [Image("a.jpg"), Image("b.jpg")])
    table = FaceTable.open(location)

    def crash(self):
        raise RuntimeError("killed before the commit")

    with monkeypatch.context() as patch:
        patch.setattr(TableMerger, "execute", crash)
        with pytest.raises(RuntimeError, match="killed"):
            table.ingest()
    assert _faces(table) == []
    assert table.version() == 0
    assert len(_landing(location)) == 1  # still there

    report = table.ingest()
    assert report.rows_inserted == 4
    assert len(_face_ids(table)) == 4
    assert _landing(location) == []


def test_crash_after_the_commit_before_the_deletes_duplicates_nothing(location, monkeypatch):
    from faceidx.store.landing import LandingStore

    write_landing(location, [Image("a.jpg"), Image("b.jpg", status="removed", at=later(1))])
    table = FaceTable.open(location)

    def crash(self, uris):
        raise OSError("killed before the landing deletes")

    with monkeypatch.context() as patch:
        patch.setattr(LandingStore, "delete", crash)
        with pytest.raises(OSError, match="killed"):
            table.ingest()
    committed = table.version()
    assert committed == 1
    assert len(_face_ids(table)) == 2
    assert len(_landing(location)) == 1

    # meanwhile the image is erased and its row leaves the table: the rerun must not bring it back
    table.delete("image_key = 'a.jpg'")
    report = table.ingest()
    assert report.files_already_ingested == 1
    assert report.rows_inserted == 0
    assert not report.committed
    assert [t["key"] for t in report.tombstones] == ["b.jpg"]  # reported again for the forget
    assert _faces(table) == []
    assert _landing(location) == []


def test_files_of_the_workers_own_sink_are_ingested(location):
    import numpy as np

    from faceidx_worker.rows import DetectedFace, ImageOutcome, ModelStamp, outcome_rows
    from faceidx_worker.settings import OutputLocation
    from faceidx_worker.sink import ParquetSink

    stamp = ModelStamp(pack="test-pack", version=VERSION, dim=DIM)
    embedding = np.full(DIM, 1 / np.sqrt(DIM), dtype=np.float32)
    face = DetectedFace(
        bbox=np.array([1, 2, 30, 40], np.float32),
        landmarks=np.ones((5, 2), np.float32),
        det_score=0.9,
        embedding=embedding,
    )
    sink = ParquetSink(OutputLocation(bucket=None, prefix="", local_dir=Path(location.output_uri)))
    for key, faces in (("one.jpg", (face,)), ("none.jpg", ())):
        outcome = ImageOutcome("photos", key, "etag", 640, 480, faces=faces)
        sink.add(outcome_rows(outcome, model=stamp, job_id="local", indexed_at=later(0)), token=key)
    sink.flush()
    assert len(_landing(location)) == 1

    table = FaceTable.open(location)
    report = table.ingest()
    assert report.files_rejected == {}
    assert report.rejected_rows == {}
    assert _faces(table) == [("none.jpg", "etag", None, "ok"), ("one.jpg", "etag", 0, "ok")]
    assert table.dimension(VERSION) == DIM
