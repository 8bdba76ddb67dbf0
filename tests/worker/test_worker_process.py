"""End to end: the worker as a real subprocess (``python run_detection_service.py``) against moto.

Assertions are on what moto holds afterwards (Parquet objects read back with pyarrow, messages left in
the queue) and on the worker's JSON log lines, never on internal calls.
"""

from __future__ import annotations

import os
import re
import signal
import time

import numpy as np
import pyarrow as pa
import pytest

from faceidx_worker.rows import SCHEMA, schema_for
from tests.support import worker_images as gen
from tests.support.worker_harness import (
    TEST_EVENT_BODY,
    WorkerProcess,
    eventbridge_body,
    queue_counts,
    read_output_table,
    run_worker,
    s3_event_body,
    s3_record,
    sns_wrap,
    worker_env,
)

pytestmark = [pytest.mark.assets, pytest.mark.slow]

PART_KEY = re.compile(r"^index/faces/dt=\d{4}-\d{2}-\d{2}/part-[0-9a-f-]{36}\.parquet$")


def _env(world, pack, **extra):
    return worker_env(
        moto_url=world.url,
        queue_url=world.queue_url,
        output_uri=f"s3://{world.output_bucket}/index",
        model_dir=pack,
        extra={k: str(v) for k, v in extra.items()},
    )


def _rows_by_key(table):
    rows = {}
    for row in table.to_pylist():
        rows.setdefault(row["image_key"], []).append(row)
    return rows


def test_every_event_shape_is_indexed_written_and_deleted(world, small_pack, assets_dir, expected_faces):
    images = assets_dir / "images"
    put = {}
    for name in [
        "t1.jpg",
        "obama.jpg",
        "no_face.png",
        "two_people.jpg",
        "lfw_Rob_Lowe_0001.jpg",
        "biden.jpg",
    ]:
        key = f"uploads/2026/{name}"
        put[name] = (key, world.put_image(key, (images / name).read_bytes()))
    odd_key = "uploads/with space/ünïcode + plus.jpg"  # URL-encoded in the event
    odd_meta = world.put_image(odd_key, (images / "obama2.jpg").read_bytes())
    rotated_key = "uploads/rotated.jpg"
    upright = gen.load_bgr(images / "obama.jpg")
    world.put_image(rotated_key, gen.exif_oriented_jpeg(upright, 6))

    record = {name: s3_record(world.input_bucket, key, **meta) for name, (key, meta) in put.items()}
    world.send(s3_event_body([record["t1.jpg"], record["obama.jpg"]]))  # two records, one message
    world.send(s3_event_body([record["no_face.png"]]))
    world.send(sns_wrap(s3_event_body([record["two_people.jpg"]])))
    key, meta = put["lfw_Rob_Lowe_0001.jpg"]
    world.send(eventbridge_body(world.input_bucket, key, **meta))
    world.send(s3_event_body([s3_record(world.input_bucket, put["biden.jpg"][0])]))  # no size: HEAD
    world.send(s3_event_body([s3_record(world.input_bucket, odd_key, **odd_meta)]))
    world.send(s3_event_body([s3_record(world.input_bucket, rotated_key)]))
    world.send(TEST_EVENT_BODY)
    world.send(sns_wrap(TEST_EVENT_BODY))

    run = run_worker(
        _env(
            world,
            small_pack,
            FACEIDX_DET_THRESH=0.6,
            FACEIDX_METRICS_ENABLED=1,
            FACEIDX_QUEUE_ROLE="primary",
            FACEIDX_DAG_RUN_ID="scheduled__2026-01-01",
            AWS_BATCH_JOB_ID="0f3c-job",
            AWS_BATCH_JOB_ARRAY_INDEX="3",
        )
    )
    assert run.returncode == 0, run.describe()
    assert all(line.get("event") != "NOT_JSON" for line in run.lines), run.describe()

    # every message is gone: indexed ones after their rows were written, test events without work
    assert queue_counts(world.sqs, world.queue_url) == (0, 0)
    table, keys = read_output_table(world.s3, world.output_bucket, "index/")
    assert keys
    assert all(PART_KEY.match(key) for key in keys), keys
    assert table.schema.equals(schema_for(128)), table.schema

    rows = _rows_by_key(table)
    assert len(rows) == 8
    for name, (key, meta) in put.items():
        found = rows[key]
        assert len(found) == max(1, expected_faces[name]["faces"]), (name, len(found))
        assert {r["face_count"] for r in found} == {expected_faces[name]["faces"]}
        assert all(r["status"] == "ok" and r["error"] is None for r in found)
        assert {r["image_etag"] for r in found} == {meta["etag"]}
    assert rows[odd_key][0]["face_count"] == 1

    no_face = rows[put["no_face.png"][0]][0]
    assert no_face["face_index"] is None
    assert no_face["embedding"] is None
    assert no_face["bbox"] is None

    t1 = rows[put["t1.jpg"][0]]
    assert sorted(r["face_index"] for r in t1) == list(range(6))
    for row in table.to_pylist():
        assert row["model_pack"] == "small_pack"
        assert re.fullmatch(r"small_pack-[0-9a-f]{12}", row["model_version"]), row["model_version"]
        assert row["job_id"] == "0f3c-job:3"
        if row["face_index"] is None:
            continue
        assert len(row["bbox"]) == 4
        assert len(row["landmarks"]) == 10
        x1, y1, x2, y2 = row["bbox"]
        assert 0 <= x1 < x2 <= row["image_width"] + 1
        assert 0 <= y1 < y2 <= row["image_height"] + 1
        assert len(row["embedding"]) == 128
        assert np.linalg.norm(row["embedding"]) == pytest.approx(1.0, abs=1e-4)
        assert 0.6 <= row["det_score"] <= 1

    # EXIF orientation: the rotated upload reports the upright size and the upright face box
    rotated = rows[rotated_key][0]
    straight = rows[put["obama.jpg"][0]][0]
    assert (rotated["image_width"], rotated["image_height"]) == (upright.shape[1], upright.shape[0])
    assert np.allclose(rotated["bbox"], straight["bbox"], atol=12)

    summary = run.summary
    assert summary["images"] == 8
    assert summary["faces"] == sum(r["face_count"] for r in (v[0] for v in rows.values()))
    assert summary["errors"] == 0
    assert summary["exit_reason"] == "idle"
    assert summary["job_id"] == "0f3c-job:3"
    assert summary["queue_role"] == "primary"
    assert summary["dag_run_id"] == "scheduled__2026-01-01"
    assert summary["messages_skipped"] == 2
    # the thread plan for this CPU-only machine is reported (worker_env sets FACEIDX_ORT_THREADS=1)
    cores = os.cpu_count() or 1
    assert summary["threads"] == {"inference": min(cores, 4), "decode": cores, "onnxruntime": 1}
    batches = run.events("batch")
    assert sum(b["images"] for b in batches) == 8
    assert sum(b["faces"] for b in batches) == summary["faces"]
    assert_emf_adds_up(run, summary, environment="primary", model_pack="small_pack")


def assert_emf_adds_up(run, summary, *, environment, model_pack):
    """Issue 7: the EMF lines are valid and their values add up to the summary line."""
    emf = run.emf
    assert emf, "FACEIDX_METRICS_ENABLED=1 must print EMF lines"
    totals: dict[str, float] = {}
    by_reason: dict[str, float] = {}
    for line in emf:
        meta = line["_aws"]
        assert isinstance(meta["Timestamp"], int)
        assert meta["Timestamp"] > 1_600_000_000_000
        (directive,) = meta["CloudWatchMetrics"]
        assert directive["Namespace"] == "faceidx"
        for dimension_set in directive["Dimensions"]:
            assert dimension_set[:2] == ["environment", "model_pack"]
            for name in dimension_set:
                assert isinstance(line[name], str), name  # every dimension is a string member
        assert line["environment"] == environment
        assert line["model_pack"] == model_pack
        for metric in directive["Metrics"]:
            value = line[metric["Name"]]
            assert isinstance(value, int | float)
            assert metric["Unit"] in {"Count", "Seconds", "Count/Second"}
            if "reason" in line:
                by_reason[line["reason"]] = by_reason.get(line["reason"], 0) + value
            else:
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + value
    assert totals["ImagesIndexed"] == summary["images"]
    assert totals["FacesFound"] == summary["faces"]
    assert totals["ErrorRows"] == summary["errors"]
    assert by_reason == summary["error_reasons"]
    assert totals["ImagesPerSecond"] == summary["images_per_s"]
    assert totals["IdleSeconds"] == summary["idle_seconds"]
    assert totals["RowsWritten"] == summary["rows_written"]
    for stage in ("Download", "Decode", "Detect", "Embed", "Write"):
        assert totals[f"{stage}Seconds"] >= 0


def test_bad_inputs_become_error_rows_and_never_stop_the_loop(world, small_pack, assets_dir):
    images = assets_dir / "images"
    good = world.put_image("ok/obama.jpg", (images / "obama.jpg").read_bytes())
    corrupt = world.put_image("bad/corrupt.jpg", b"\xff\xd8\xff\xe0 this is not a jpeg" * 10)
    bomb = world.put_image("bad/bomb.png", gen.png_claiming_size(50000, 50000))
    big = world.put_image("bad/big.jpg", (images / "obama.jpg").read_bytes())
    world.s3.create_bucket(Bucket="someone-elses-bucket")
    world.s3.put_object(Bucket="someone-elses-bucket", Key="x.jpg", Body=(images / "obama.jpg").read_bytes())

    world.send(s3_event_body([s3_record(world.input_bucket, "ok/obama.jpg", **good)]))
    world.send(s3_event_body([s3_record(world.input_bucket, "bad/missing.jpg", size=1000, etag="abc")]))
    world.send(s3_event_body([s3_record(world.input_bucket, "bad/corrupt.jpg", **corrupt)]))
    world.send(s3_event_body([s3_record(world.input_bucket, "bad/bomb.png", **bomb)]))
    world.send(
        s3_event_body([s3_record(world.input_bucket, "bad/big.jpg", size=900_000_000, etag=big["etag"])])
    )
    world.send(s3_event_body([s3_record("someone-elses-bucket", "x.jpg", size=10, etag="e")]))
    malformed_id = world.send("{this is not json")
    wrong_shape_id = world.send('{"hello": "world"}')

    run = run_worker(
        _env(
            world,
            small_pack,
            FACEIDX_ALLOWED_BUCKETS=world.input_bucket,
            FACEIDX_VISIBILITY_TIMEOUT=30,
            FACEIDX_METRICS_ENABLED=1,
        )
    )
    assert run.returncode == 0, run.describe()
    table, _ = read_output_table(world.s3, world.output_bucket, "index/")
    rows = {row["image_key"]: row for row in table.to_pylist()}
    expected = {
        "ok/obama.jpg": None,
        "bad/missing.jpg": "not_found",
        "bad/corrupt.jpg": "decode_error",
        "bad/bomb.png": "too_many_pixels",
        "bad/big.jpg": "too_large",
        "x.jpg": "bucket_not_allowed",
    }
    assert set(rows) == set(expected)
    for key, reason in expected.items():
        row = rows[key]
        if reason is None:
            assert row["status"] == "ok"
            assert row["face_count"] == 1
            continue
        assert row["status"] == "error", row
        assert row["error"].startswith(f"{reason}: "), row["error"]
        assert row["face_count"] == 0
        assert row["face_index"] is None
        assert row["embedding"] is None
    assert (rows["bad/bomb.png"]["image_width"], rows["bad/bomb.png"]["image_height"]) == (50000, 50000)

    # everything is deleted; the two malformed bodies reached the DLQ during this run (issue 21)
    assert queue_counts(world.sqs, world.queue_url) == (0, 0)
    assert queue_counts(world.sqs, world.dlq_url)[0] == 2
    warnings = "\n".join(run.messages())
    assert malformed_id in warnings
    assert wrong_shape_id in warnings
    summary = run.summary
    assert summary["errors"] == 5
    assert summary["images"] == 6
    assert summary["messages_malformed"] == 2 * 3  # each received maxReceiveCount (3) times
    assert summary["error_reasons"] == {
        "not_found": 1,
        "decode_error": 1,
        "too_many_pixels": 1,
        "too_large": 1,
        "bucket_not_allowed": 1,
    }
    assert_emf_adds_up(run, summary, environment="local", model_pack="small_pack")


def test_sigterm_flushes_finished_work_releases_the_rest_and_exits_0(world, small_pack, assets_dir):
    data = (assets_dir / "images" / "lfw_Rob_Lowe_0001.jpg").read_bytes()
    total = 30
    for number in range(total):
        meta = world.put_image(f"burst/{number:03d}.jpg", data)
        world.send(s3_event_body([s3_record(world.input_bucket, f"burst/{number:03d}.jpg", **meta)]))
    worker = WorkerProcess(
        _env(
            world,
            small_pack,
            FACEIDX_IMAGE_BATCH=1,
            FACEIDX_PREFETCH_MESSAGES=10,
            FACEIDX_FLUSH_MAX_SECONDS=3600,  # nothing written before the signal: the flush is the shutdown's
            FACEIDX_MAX_IDLE_SECONDS=60,
            FACEIDX_RECEIVE_WAIT_SECONDS=1,
        )
    ).start()
    assert worker.wait_for(lambda lines: sum(1 for x in lines if x.get("event") == "batch") >= 3, 90)
    signalled = time.monotonic()
    worker.signal(signal.SIGTERM)
    run = worker.wait(timeout=60)
    assert time.monotonic() - signalled < 25
    assert run.returncode == 0, run.describe()
    summary = run.summary
    assert summary["exit_reason"] == "sigterm"
    assert 3 <= summary["images"] < total

    table, _ = read_output_table(world.s3, world.output_bucket, "index/")
    written = {row["image_key"] for row in table.to_pylist()}
    assert len(written) == summary["images"]  # what was finished is written
    visible, in_flight = queue_counts(world.sqs, world.queue_url)
    assert in_flight == 0  # nothing left hidden: the unfinished messages were released (visibility 0)
    assert visible == total - len(written)  # and the written ones were deleted
    assert summary["messages_released"] >= 1


def test_second_signal_exits_at_once(world, small_pack):
    worker = WorkerProcess(
        _env(world, small_pack, FACEIDX_RECEIVE_WAIT_SECONDS=20, FACEIDX_MAX_IDLE_SECONDS=300)
    ).start()
    assert worker.wait_for(lambda lines: any("worker started" in str(x.get("message")) for x in lines), 60)
    time.sleep(0.5)  # the receiver is now inside a 20 s long poll, which the first SIGTERM waits for
    worker.signal(signal.SIGTERM)
    time.sleep(0.5)
    signalled = time.monotonic()
    worker.signal(signal.SIGTERM)
    run = worker.wait(timeout=30)
    assert time.monotonic() - signalled < 5
    assert run.returncode == 128 + signal.SIGTERM
    assert any("second SIGTERM" in message for message in run.messages())


def test_persistent_output_failure_exits_nonzero_and_deletes_nothing(world, small_pack, assets_dir):
    data = (assets_dir / "images" / "obama.jpg").read_bytes()
    for number in range(3):
        meta = world.put_image(f"x/{number}.jpg", data)
        world.send(s3_event_body([s3_record(world.input_bucket, f"x/{number}.jpg", **meta)]))
    env = _env(world, small_pack)
    env["FACEIDX_OUTPUT_URI"] = "s3://no-such-output-bucket/index"
    run = run_worker(env)
    assert run.returncode == 1, run.describe()
    assert run.summary["exit_reason"] == "error"
    assert queue_counts(world.sqs, world.queue_url) == (3, 0)  # released for another worker, not deleted
    assert any("no-such-output-bucket" in message for message in run.messages())


def test_require_gpu_refuses_to_run_on_cpu(world, small_pack):
    run = run_worker(_env(world, small_pack, FACEIDX_REQUIRE_GPU=1), timeout=60)
    assert run.returncode == 3, run.describe()
    assert run.summary["exit_reason"] == "no_gpu"
    assert any("FACEIDX_REQUIRE_GPU" in message and "CPU" in message for message in run.messages())


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FACEIDX_QUEUE_URL", None),
        ("FACEIDX_DET_THRESH", "1.5"),
        ("FACEIDX_MAX_IDLE_SECONDS", "soon"),
        ("FACEIDX_MODEL_DIR", "/nope"),
    ],
)
def test_bad_configuration_exits_2_naming_the_variable(world, small_pack, variable, value):
    env = _env(world, small_pack)
    if value is None:
        env.pop(variable)
    else:
        env[variable] = value
    run = run_worker(env, timeout=60)
    assert run.returncode == 2, run.describe()
    assert any(variable in message for message in run.messages()), run.describe()


def test_a_queue_that_does_not_exist_exits_2(world, small_pack):
    env = _env(world, small_pack)
    env["FACEIDX_QUEUE_URL"] = world.queue_url.replace("faceidx-work", "faceidx-nope")
    run = run_worker(env, timeout=60)
    assert run.returncode == 2, run.describe()
    assert any("FACEIDX_QUEUE_URL" in message for message in run.messages())


def test_pyarrow_schema_types_are_the_contract():
    types = {field.name: field.type for field in SCHEMA}
    assert types["image_width"] == pa.int32()
    assert types["face_index"] == pa.int32()
    assert types["bbox"] == pa.list_(pa.float32())
    assert types["embedding"] == pa.list_(pa.float32())  # any dimension; a file has one
    assert schema_for(128).field("embedding").type == pa.list_(pa.float32(), 128)
    assert types["quality_reasons"] == pa.list_(pa.string())
    assert types["age"] == pa.int16()
    assert types["indexed_at"] == pa.timestamp("us", tz="UTC")
