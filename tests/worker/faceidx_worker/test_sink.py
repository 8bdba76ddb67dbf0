"""Parquet sink: bounded by size and time, partitioned by day, durable before tokens are returned."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow.parquet as pq
import pytest

from faceidx_worker.rows import DetectedFace, ErrorReason, ImageOutcome, ModelStamp, outcome_rows, schema_for
from faceidx_worker.settings import parse_output_uri
from faceidx_worker.sink import ParquetSink, SinkError
from tests.support.worker_harness import read_output_table

STAMP = ModelStamp("m", "m-000000000000", 128)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _rows(key, faces=2, day=datetime(2026, 3, 4, 23, 59, tzinfo=UTC), dim=512):
    outcome = ImageOutcome(
        bucket="in",
        key=key,
        etag="e",
        width=100,
        height=80,
        faces=tuple(
            DetectedFace(
                bbox=np.array([1, 2, 3, 4], np.float32),
                landmarks=np.arange(10, dtype=np.float32).reshape(5, 2),
                det_score=0.9,
                embedding=np.full(dim, 1 / np.sqrt(dim), np.float32),
            )
            for _ in range(faces)
        ),
    )
    return outcome_rows(
        outcome, model=ModelStamp("buffalo_l", "buffalo_l-0123456789ab", dim), job_id="local", indexed_at=day
    )


def test_time_bound(tmp_path):
    clock = Clock()
    sink = ParquetSink(parse_output_uri(str(tmp_path)), max_bytes=10**9, max_seconds=30, clock=clock)
    assert not sink.should_flush()
    sink.add(_rows("a"), "token-a")
    clock.now += 29
    assert not sink.should_flush()
    clock.now += 1
    assert sink.should_flush()


def test_size_bound(tmp_path):
    sink = ParquetSink(parse_output_uri(str(tmp_path)), max_bytes=5000, max_seconds=3600)
    sink.add(_rows("a", faces=1), "a")
    assert not sink.should_flush()
    sink.add(_rows("b", faces=2), "b")
    assert sink.should_flush()  # three 512-d embeddings are over 5000 bytes


def test_local_flush_writes_day_partitions_and_returns_tokens(tmp_path):
    sink = ParquetSink(parse_output_uri(str(tmp_path / "out")))
    sink.add(_rows("a", day=datetime(2026, 3, 4, 23, 59, tzinfo=UTC)), "a")
    sink.add(_rows("b", faces=0, day=datetime(2026, 3, 5, 0, 1, tzinfo=UTC)), "b")
    result = sink.flush()
    assert result.tokens == ["a", "b"]
    assert result.rows == 3
    days = sorted(p.parent.name for p in (tmp_path / "out" / "faces").glob("dt=*/part-*.parquet"))
    assert days == ["dt=2026-03-04", "dt=2026-03-05"]
    assert not list((tmp_path / "out").rglob(".*.tmp"))
    tables = [pq.read_table(p) for p in sorted((tmp_path / "out").rglob("*.parquet"))]
    assert all(t.schema.equals(schema_for(512)) for t in tables)
    first = tables[0].to_pylist()
    assert [r["face_index"] for r in first] == [0, 1]
    assert len(first[0]["embedding"]) == 512
    assert first[0]["landmarks"] == list(range(10))
    no_face = tables[1].to_pylist()[0]
    assert no_face["face_count"] == 0
    assert no_face["face_index"] is None
    assert no_face["bbox"] is None
    assert sink.pending_rows == 0
    assert sink.flush().tokens == []


def test_s3_flush(world):
    sink = ParquetSink(parse_output_uri(f"s3://{world.output_bucket}/pre/fix"), s3_client=world.s3)
    sink.add(_rows("a"), "a")
    assert sink.flush().files[0].startswith(f"s3://{world.output_bucket}/pre/fix/faces/dt=2026-03-04/part-")
    table, keys = read_output_table(world.s3, world.output_bucket, "pre/fix/faces/")
    assert table.num_rows == 2
    assert len(keys) == 1


def test_failed_write_keeps_rows_pending(world):
    sink = ParquetSink(parse_output_uri("s3://no-such-bucket-here/x"), s3_client=world.s3)
    sink.add(_rows("a"), "a")
    with pytest.raises(SinkError, match="no-such-bucket-here"):
        sink.flush()
    assert sink.pending_tokens == 1


def test_error_rows(tmp_path):
    outcome = ImageOutcome(
        bucket="in", key="k", etag=None, width=None, height=None, error_reason=ErrorReason.NOT_FOUND,
        error_detail="GetObject says NoSuchKey: gone",
    )  # fmt: skip
    rows = outcome_rows(outcome, model=STAMP, job_id="j", indexed_at=datetime.now(UTC))
    assert len(rows) == 1
    assert rows[0]["status"] == "error"
    assert rows[0]["face_count"] == 0
    assert rows[0]["face_index"] is None
    # the Parquet column keeps its "<reason>: <detail>" text; a detail's own colons stay in the detail
    assert rows[0]["error"] == "not_found: GetObject says NoSuchKey: gone"


def test_the_error_column_is_bounded():
    outcome = ImageOutcome(
        bucket="in", key="k", etag=None, width=None, height=None, error_reason=ErrorReason.DECODE_ERROR,
        error_detail="x" * 2000,
    )  # fmt: skip
    [row] = outcome_rows(outcome, model=STAMP, job_id="j", indexed_at=datetime.now(UTC))
    assert len(row["error"]) == 500
    assert row["error"].startswith("decode_error: xxx")


def test_ok_rows_have_no_error():
    outcome = ImageOutcome(bucket="in", key="k", etag=None, width=4, height=4)
    [row] = outcome_rows(outcome, model=STAMP, job_id="j", indexed_at=datetime.now(UTC))
    assert (row["status"], row["error"], outcome.ok) == ("ok", None, True)
