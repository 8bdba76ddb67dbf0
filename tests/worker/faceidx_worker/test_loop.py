"""The loop in-process with the real small model pack and moto: retries, heartbeats, multi-record messages."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from faceidx_worker.events import ImageRef
from faceidx_worker.fetch import LoadedImage, S3ImageLoader
from faceidx_worker.loop import WorkerLoop
from faceidx_worker.metrics import EmfMetrics
from faceidx_worker.model import InsightFaceModelPack
from faceidx_worker.queue import SqsWorkQueue
from faceidx_worker.settings import load_settings
from faceidx_worker.sink import ParquetSink
from tests.support.worker_harness import queue_counts, read_output_table, s3_event_body, s3_record

pytestmark = pytest.mark.assets


@pytest.fixture(scope="module")
def model(small_pack):
    pack = InsightFaceModelPack(small_pack, ort_threads=1)
    pack.load()
    return pack


def _loop(world, model, small_pack, load_image=None, **env):
    settings = load_settings(
        {
            "FACEIDX_QUEUE_URL": world.queue_url,
            "FACEIDX_OUTPUT_URI": f"s3://{world.output_bucket}/idx",
            "FACEIDX_MODEL_DIR": str(small_pack),
            "FACEIDX_MAX_IDLE_SECONDS": "1.5",
            "FACEIDX_RECEIVE_WAIT_SECONDS": "1",
            "FACEIDX_FLUSH_MAX_SECONDS": "0.5",
            "FACEIDX_DOWNLOAD_THREADS": "2",
            **{k: str(v) for k, v in env.items()},
        }
    )
    loader = S3ImageLoader(
        world.s3,
        max_image_bytes=settings.images.max_image_bytes,
        max_image_pixels=settings.images.max_image_pixels,
        decode_min_side=settings.images.decode_min_side,
    )
    return WorkerLoop(
        settings,
        work_queue=SqsWorkQueue(
            world.sqs, world.queue_url, wait_seconds=1, visibility_timeout=settings.visibility_timeout
        ),
        load_image=load_image or loader.load,
        model=model,
        sink=ParquetSink(settings.output, s3_client=world.s3, max_seconds=settings.flush_max_seconds),
        metrics=EmfMetrics(enabled=False, namespace="x", environment="local", model_pack="small_pack"),
    ), loader


def _run_within(loop, seconds):
    """``loop.run()``, failing (after a SIGTERM-like stop) instead of hanging when it outlives ``seconds``."""
    results = []
    runner = threading.Thread(target=lambda: results.append(loop.run()))
    runner.start()
    runner.join(seconds)
    if runner.is_alive():
        loop.request_stop("test_timeout")
        runner.join(60)
        pytest.fail(f"the loop was still running after {seconds}s")
    return results[0]


def test_transient_failures_go_back_to_the_queue_and_end_in_the_dlq(world, model, small_pack, assets_dir):
    data = (assets_dir / "images" / "obama.jpg").read_bytes()
    for key in ("good.jpg", "flaky.jpg", "alone.jpg"):
        world.put_image(key, data)
    world.send(
        s3_event_body([s3_record(world.input_bucket, "good.jpg"), s3_record(world.input_bucket, "flaky.jpg")])
    )
    world.send(s3_event_body([s3_record(world.input_bucket, "alone.jpg")]))

    def flaky(ref):
        if ref.key == "flaky.jpg":
            return LoadedImage(ref=ref, retryable="s3://.../flaky.jpg: GetObject failed: SlowDown")
        return loader.load(ref)

    loop, loader = _loop(world, model, small_pack, load_image=flaky, FACEIDX_RETRY_DELAY_SECONDS=0)
    result = loop.run()
    assert result.exit_code == 0
    assert result.exit_reason == "idle"
    # the two-image message was never deleted: re-delivered until the redrive policy moved it to the DLQ
    assert queue_counts(world.sqs, world.queue_url) == (0, 0)
    assert queue_counts(world.sqs, world.dlq_url)[0] == 1
    table, _ = read_output_table(world.s3, world.output_bucket, "idx/")
    keys = [row["image_key"] for row in table.to_pylist()]
    assert keys.count("alone.jpg") == 1
    assert "flaky.jpg" not in keys
    # nothing is lost: the whole message (both images) waits in the DLQ for a redrive
    (dead,) = world.sqs.receive_message(QueueUrl=world.dlq_url)["Messages"]
    assert "good.jpg" in dead["Body"]
    assert "flaky.jpg" in dead["Body"]
    assert result.summary["retried"] >= 3


def _queue_pair(world, name, max_receive_count=None):
    """``world`` with a fresh work queue (a redrive policy of ``max_receive_count`` to a fresh DLQ, or
    none); the production visibility timeout is the worker's own (``FACEIDX_VISIBILITY_TIMEOUT`` 300)."""
    dlq_url = world.sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    attributes = {"VisibilityTimeout": "1800"}
    if max_receive_count is not None:
        dlq_arn = world.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        policy = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
        attributes["RedrivePolicy"] = json.dumps(policy)
    queue_url = world.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return dataclasses.replace(world, queue_url=queue_url, dlq_url=dlq_url)


def test_an_unreadable_message_reaches_the_dlq_in_the_run_that_received_it(
    world, model, small_pack, assets_dir, caplog
):
    """Issue 21: SQS's own receive count and redrive (maxReceiveCount 5) move a bad message to the DLQ
    while the worker that received it still runs: one GPU job, not one per receive."""
    five = _queue_pair(world, "redrive-five", max_receive_count=5)
    five.put_image("good.jpg", (assets_dir / "images" / "obama.jpg").read_bytes())
    bad_id = five.send("{this is not an S3 event")
    five.send(s3_event_body([s3_record(five.input_bucket, "good.jpg")]))
    loop, _ = _loop(five, model, small_pack)
    with caplog.at_level(logging.INFO, logger="faceidx_worker.intake"):
        result = _run_within(loop, 120)
    assert result.exit_code == 0
    assert result.exit_reason == "idle"
    assert queue_counts(five.sqs, five.queue_url) == (0, 0)  # nothing comes back for another job
    (dead,) = five.sqs.receive_message(QueueUrl=five.dlq_url)["Messages"]
    assert dead["MessageId"] == bad_id
    table, _ = read_output_table(five.s3, five.output_bucket, "idx/")
    assert [row["image_key"] for row in table.to_pylist()] == ["good.jpg"]
    assert result.summary["messages_malformed"] == 5  # its five receives, all in this run
    assert result.summary["messages_deleted"] == 1
    assert result.summary["messages_released"] == 0  # releasing it is not handing work back
    warnings = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and bad_id in r.getMessage()
    ]
    (warning,) = warnings
    assert "body is not JSON" in warning
    assert "dead-letter queue after maxReceiveCount (5)" in warning
    assert "To fix it" in warning


def test_without_a_redrive_policy_an_unreadable_message_is_left_hidden_after_a_few_receives(
    world, model, small_pack, caplog
):
    bare = _queue_pair(world, "no-redrive")
    bad_id = bare.send('{"hello": "world"}')
    loop, _ = _loop(bare, model, small_pack)
    with caplog.at_level(logging.INFO, logger="faceidx_worker.intake"):
        result = _run_within(loop, 60)
    assert result.exit_reason == "idle"  # it did not keep the worker alive
    assert queue_counts(bare.sqs, bare.queue_url) == (0, 1)  # hidden for the visibility timeout
    assert result.summary["messages_malformed"] == 3  # RECEIVES_WITHOUT_REDRIVE receives, no more
    hidden = [
        r.getMessage()
        for r in caplog.records
        if "left hidden for FACEIDX_VISIBILITY_TIMEOUT" in r.getMessage()
    ]
    (line,) = hidden
    assert bad_id in line
    assert "received 3 times" in line
    assert "no redrive policy" in line


def test_heartbeat_keeps_slow_work_invisible(world, model, small_pack, assets_dir):
    world.put_image("slow.jpg", (assets_dir / "images" / "obama.jpg").read_bytes())
    world.send(s3_event_body([s3_record(world.input_bucket, "slow.jpg")]))

    def slow(ref):
        time.sleep(3)  # three visibility timeouts
        return loader.load(ref)

    loop, loader = _loop(
        world, model, small_pack, load_image=slow, FACEIDX_VISIBILITY_TIMEOUT=1, FACEIDX_HEARTBEAT_SECONDS=0.3
    )
    result = loop.run()
    assert result.exit_code == 0
    table, _ = read_output_table(world.s3, world.output_bucket, "idx/")
    assert [row["image_key"] for row in table.to_pylist()] == ["slow.jpg"]  # never re-delivered meanwhile
    assert queue_counts(world.sqs, world.queue_url) == (0, 0)


def test_stop_request_releases_received_work(world, model, small_pack, assets_dir):
    world.put_image("a.jpg", (assets_dir / "images" / "obama.jpg").read_bytes())
    world.send(s3_event_body([s3_record(world.input_bucket, "a.jpg")]))

    def stuck(ref):
        loop.request_stop("sigterm")  # the signal lands while the image downloads
        time.sleep(0.5)
        return loader.load(ref)

    loop, loader = _loop(world, model, small_pack, load_image=stuck, FACEIDX_VISIBILITY_TIMEOUT=600)
    result = loop.run()
    assert result.exit_reason == "sigterm"
    assert result.exit_code == 0
    assert queue_counts(world.sqs, world.queue_url) == (1, 0)  # released at once, not hidden for 600 s
    assert read_output_table(world.s3, world.output_bucket, "idx/")[0] is None


def test_a_drained_queue_is_written_and_deleted_without_waiting_for_the_flush_timer(
    world, model, small_pack, assets_dir
):
    for number in range(3):
        world.put_image(f"d{number}.jpg", (assets_dir / "images" / "obama.jpg").read_bytes())
        world.send(s3_event_body([s3_record(world.input_bucket, f"d{number}.jpg")]))
    loop, _ = _loop(world, model, small_pack, FACEIDX_FLUSH_MAX_SECONDS=3600, FACEIDX_MAX_IDLE_SECONDS=600)
    runner = threading.Thread(target=loop.run)
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and queue_counts(world.sqs, world.queue_url) != (0, 0):
            time.sleep(0.2)
        assert queue_counts(world.sqs, world.queue_url) == (0, 0)
        assert runner.is_alive()  # deleted by the drain flush, not by the shutdown's
        table, _ = read_output_table(world.s3, world.output_bucket, "idx/")
        assert table.num_rows == 3
    finally:
        loop.request_stop("sigterm")
        runner.join(30)
    assert not runner.is_alive()


def test_parallel_lanes_index_every_image_once(world, model, small_pack, assets_dir):
    data = (assets_dir / "images" / "obama.jpg").read_bytes()
    keys = [f"lane{number}.jpg" for number in range(12)]
    for key in keys:
        world.put_image(key, data)
    for start in range(0, len(keys), 3):  # multi-record messages spread over the lanes
        world.send(s3_event_body([s3_record(world.input_bucket, key) for key in keys[start : start + 3]]))
    loop, _ = _loop(world, model, small_pack, FACEIDX_INFERENCE_THREADS=3, FACEIDX_IMAGE_BATCH=2)
    result = loop.run()
    assert result.exit_code == 0
    table, _ = read_output_table(world.s3, world.output_bucket, "idx/")
    rows = table.to_pylist()
    assert sorted(row["image_key"] for row in rows) == sorted(keys)  # one face each, none twice
    assert all(row["status"] == "ok" and row["face_count"] == 1 for row in rows)
    assert queue_counts(world.sqs, world.queue_url) == (0, 0)
    summary = result.summary
    assert summary["images"] == 12
    assert summary["messages_deleted"] == 4
    # the idle wait before the exit (FACEIDX_MAX_IDLE_SECONDS 1.5) and the last long poll are idle, not busy
    assert summary["idle_seconds"] >= 1.5
    busy = summary["run_seconds"] - summary["idle_seconds"]
    assert summary["images_per_s"] == pytest.approx(12 / busy, rel=0.01)


class _StopsWhileComputing:
    """The real model; the stop request lands while a lane is detecting."""

    def __init__(self, model):
        self._model = model
        self.loop = None

    def __getattr__(self, name):
        return getattr(self._model, name)

    def detect(self, pixels):
        self.loop.request_stop("sigterm")
        time.sleep(0.5)
        return self._model.detect(pixels)


def test_the_batch_in_hand_at_a_stop_is_written_not_released(world, model, small_pack, assets_dir):
    world.put_image("inhand.jpg", (assets_dir / "images" / "obama.jpg").read_bytes())
    world.send(s3_event_body([s3_record(world.input_bucket, "inhand.jpg")]))
    stopping = _StopsWhileComputing(model)
    loop, _ = _loop(world, stopping, small_pack, FACEIDX_VISIBILITY_TIMEOUT=600)
    stopping.loop = loop
    result = loop.run()
    assert result.exit_reason == "sigterm"
    assert result.exit_code == 0
    table, _ = read_output_table(world.s3, world.output_bucket, "idx/")
    assert [row["image_key"] for row in table.to_pylist()] == ["inhand.jpg"]
    assert queue_counts(world.sqs, world.queue_url) == (0, 0)  # written, so deleted
    assert result.summary["messages_deleted"] == 1


def test_a_kms_denied_image_is_handed_back_until_the_dlq_and_never_written(
    world, model, small_pack, assets_dir
):
    """Issue 12 item 7: GetObject on an SSE-KMS object the job role may not decrypt answers AccessDenied
    (S3's real shape, from a botocore Stubber: moto does not enforce KMS). No error row is written: the
    message goes back to the queue and, after maxReceiveCount receives, to the dead-letter queue, for a
    redrive once the key policy is fixed. The other images are indexed."""
    data = (assets_dir / "images" / "obama.jpg").read_bytes()
    for key in ("plain.jpg", "kms-secret.jpg"):
        world.put_image(key, data)
    world.send(s3_event_body([s3_record(world.input_bucket, "plain.jpg", size=len(data))]))
    world.send(s3_event_body([s3_record(world.input_bucket, "kms-secret.jpg", size=len(data))]))
    denied_s3 = boto3.client(
        "s3",
        endpoint_url=world.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    stubber = Stubber(denied_s3)
    for _ in range(6):  # one per receive; the redrive policy allows 3
        stubber.add_client_error(
            "get_object",
            service_error_code="AccessDenied",
            service_message="User: arn:aws:sts::123456789012:assumed-role/faceidx-job/i-0 is not authorized "
            "to perform: kms:Decrypt on the resource associated with this ciphertext",
            http_status_code=403,
        )
    stubber.activate()
    denied = S3ImageLoader(
        denied_s3, max_image_bytes=10_000_000, max_image_pixels=100_000_000, decode_min_side=1280
    )

    def load(ref):
        return denied.load(ref) if ref.key.startswith("kms-") else loader.load(ref)

    loop, loader = _loop(world, model, small_pack, load_image=load, FACEIDX_RETRY_DELAY_SECONDS=0)
    result = loop.run()
    stubber.deactivate()
    assert result.exit_code == 0
    table, _ = read_output_table(world.s3, world.output_bucket, "idx/")
    assert [row["image_key"] for row in table.to_pylist()] == ["plain.jpg"]  # no error row for the denied one
    assert queue_counts(world.sqs, world.queue_url) == (0, 0)
    (dead,) = world.sqs.receive_message(QueueUrl=world.dlq_url)["Messages"]
    assert "kms-secret.jpg" in dead["Body"]
    assert result.summary["errors"] == 0
    assert result.summary["retried"] == 3


class _HangsOnOneImage:
    """The real model, except that detecting the image of ``shape`` blocks (a hung native call)."""

    def __init__(self, model, shape):
        self._model = model
        self.shape = shape
        self.hung = threading.Event()
        self.unblock = threading.Event()

    def __getattr__(self, name):
        return getattr(self._model, name)

    def detect(self, pixels):
        if pixels.shape == self.shape:
            self.hung.set()
            self.unblock.wait(120)
        return self._model.detect(pixels)


def test_a_hung_lane_releases_what_the_worker_holds_and_exits_4(world, model, small_pack, assets_dir, caplog):
    """Issue 12 item 11: one of two lanes hangs in its model call while the other keeps indexing. With
    a visibility of 600 s, the hung image's message comes back at once only because the watchdog
    stopped the worker and released it; the other images are written and deleted, and the exit code
    is non-zero so the job fails (AWS Batch may retry it)."""
    images = assets_dir / "images"
    world.put_image("hang.jpg", (images / "lfw_Rob_Lowe_0001.jpg").read_bytes())
    world.send(s3_event_body([s3_record(world.input_bucket, "hang.jpg")]))
    good = [f"good{number}.jpg" for number in range(4)]
    for key in good:
        world.put_image(key, (images / "obama.jpg").read_bytes())
        world.send(s3_event_body([s3_record(world.input_bucket, key)]))
    loop, loader = _loop(
        world,
        model,
        small_pack,
        FACEIDX_VISIBILITY_TIMEOUT=600,
        FACEIDX_HEARTBEAT_SECONDS=0.3,
        FACEIDX_PROGRESS_TIMEOUT_SECONDS=4,
        FACEIDX_INFERENCE_THREADS=2,
        FACEIDX_IMAGE_BATCH=1,
        FACEIDX_MAX_IDLE_SECONDS=600,
    )
    hanging = _HangsOnOneImage(
        model, loader.load(ImageRef(world.input_bucket, "hang.jpg")).image.pixels.shape
    )
    loop.model = hanging
    started = time.monotonic()
    try:
        result = _run_within(loop, 60)
    finally:
        hanging.unblock.set()
    assert hanging.hung.is_set()
    assert result.exit_code == 4
    assert result.exit_reason == "stalled"
    assert result.summary["exit_code"] == 4
    assert time.monotonic() - started < 60  # the watchdog's 4 s, the lanes' join, the release
    assert queue_counts(world.sqs, world.queue_url) == (1, 0)  # released at once, not held for 600 s
    (back,) = world.sqs.receive_message(QueueUrl=world.queue_url)["Messages"]
    assert "hang.jpg" in back["Body"]
    table, _ = read_output_table(world.s3, world.output_bucket, "idx/")
    assert sorted(row["image_key"] for row in table.to_pylist()) == good  # the other lane's work is kept
    (line,) = [
        r
        for r in caplog.records
        if r.levelname == "ERROR" and "FACEIDX_PROGRESS_TIMEOUT_SECONDS" in r.message
    ]
    assert "inference-" in line.message
    assert "Stopped extending visibility" in line.message


def test_max_run_time_hands_over_under_steady_inflow_and_exits_0(
    world, model, small_pack, assets_dir, caplog
):
    """Issue 12 item 3: a queue that never goes idle. At FACEIDX_MAX_RUN_SECONDS the worker stops receiving,
    writes and deletes what it finished, releases the rest at once (visibility 600 s otherwise) and exits
    0 before a job timeout could kill it. Nothing is lost: every message sent is either indexed and
    deleted or visible in the queue for the next worker."""
    caplog.set_level(logging.INFO, logger="faceidx_worker")
    data = (assets_dir / "images" / "obama.jpg").read_bytes()
    sent: list[str] = []
    feeding = threading.Event()
    feeding.set()

    def feed():
        number = 0
        while feeding.is_set():
            key = f"inflow/{number:04d}.jpg"
            world.put_image(key, data)
            world.send(s3_event_body([s3_record(world.input_bucket, key, size=len(data))]))
            sent.append(key)
            number += 1
            time.sleep(0.1)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    loop, _ = _loop(
        world,
        model,
        small_pack,
        FACEIDX_VISIBILITY_TIMEOUT=600,
        FACEIDX_MAX_RUN_SECONDS=6,
        FACEIDX_MAX_IDLE_SECONDS=600,
    )
    started = time.monotonic()
    try:
        result = _run_within(loop, 40)
    finally:
        feeding.clear()
        feeder.join(10)
    assert result.exit_code == 0
    assert result.exit_reason == "max_run_time"
    assert 6 <= time.monotonic() - started < 40
    table, _ = read_output_table(world.s3, world.output_bucket, "idx/")
    indexed = [row["image_key"] for row in table.to_pylist()]
    assert indexed, "it indexed nothing before the hand-over"
    assert len(indexed) == len(set(indexed))
    visible, in_flight = queue_counts(world.sqs, world.queue_url)
    assert in_flight == 0  # nothing it held stays hidden
    assert visible == len(sent) - len(indexed)  # the rest waits, none lost, none both written and queued
    assert result.summary["messages_deleted"] == len(indexed)
    assert any("FACEIDX_MAX_RUN_SECONDS" in r.message for r in caplog.records)


def test_an_object_removed_event_becomes_a_tombstone_row_and_its_message_is_deleted(
    world, model, small_pack, assets_dir
):
    world.put_image("kept.jpg", (assets_dir / "images" / "obama.jpg").read_bytes())
    removed = {**s3_record(world.input_bucket, "old photo.jpg"), "eventName": "ObjectRemoved:Delete"}
    world.send(s3_event_body([{**removed, "eventTime": "2026-03-04T05:06:07.890Z"}]))
    marker = {**s3_record(world.input_bucket, "gone.jpg"), "eventName": "ObjectRemoved:DeleteMarkerCreated"}
    world.send(
        s3_event_body(
            [{**marker, "eventTime": "2026-03-05T00:00:00Z"}, s3_record(world.input_bucket, "kept.jpg")]
        )
    )
    loop, _ = _loop(world, model, small_pack)
    result = _run_within(loop, 60)
    assert result.exit_code == 0
    assert result.summary["tombstones"] == 2
    assert queue_counts(world.sqs, world.queue_url) == (0, 0)
    table, _ = read_output_table(world.s3, world.output_bucket, "idx/")
    rows = {row["image_key"]: row for row in table.to_pylist()}
    assert set(rows) == {"old photo.jpg", "gone.jpg", "kept.jpg"}
    tombstone = rows["old photo.jpg"]
    assert (tombstone["status"], tombstone["face_count"], tombstone["image_etag"]) == ("removed", 0, None)
    assert tombstone["indexed_at"] == datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
    assert tombstone["embedding"] is None
    assert tombstone["model_version"] == model.version
    assert rows["gone.jpg"]["status"] == "removed"
    assert (rows["kept.jpg"]["status"], rows["kept.jpg"]["face_count"]) == ("ok", 1)


def test_the_crops_option_writes_each_face_s_aligned_crop_before_its_row(
    world, model, small_pack, assets_dir
):
    import cv2
    import numpy as np

    from faceidx_worker.crops import CropWriter

    world.put_image("friends.jpg", (assets_dir / "images" / "t1.jpg").read_bytes())
    world.send(s3_event_body([s3_record(world.input_bucket, "friends.jpg")]))
    loop, _ = _loop(world, model, small_pack, FACEIDX_CROPS_URI=f"s3://{world.output_bucket}/crops")
    assert loop.settings.crops_uri is not None
    loop.crops = CropWriter(loop.settings.crops_uri, s3_client=world.s3)
    assert _run_within(loop, 60).exit_code == 0
    table, _ = read_output_table(world.s3, world.output_bucket, "idx/")
    rows = table.to_pylist()
    assert len(rows) == 6
    for row in rows:
        assert row["crop_uri"] == f"s3://{world.output_bucket}/crops/{model.version}/{row['face_id']}.jpg"
        key = row["crop_uri"].removeprefix(f"s3://{world.output_bucket}/")
        body = world.s3.get_object(Bucket=world.output_bucket, Key=key)["Body"].read()
        crop = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert crop.shape == (112, 112, 3)


def test_without_the_crops_option_nothing_is_written_and_crop_uri_is_null(
    world, model, small_pack, assets_dir
):
    world.put_image("one.jpg", (assets_dir / "images" / "obama.jpg").read_bytes())
    world.send(s3_event_body([s3_record(world.input_bucket, "one.jpg")]))
    loop, _ = _loop(world, model, small_pack)
    assert _run_within(loop, 60).exit_code == 0
    table, keys = read_output_table(world.s3, world.output_bucket, "")
    assert [row["crop_uri"] for row in table.to_pylist()] == [None]
    assert all(key.endswith(".parquet") for key in keys)


def test_a_message_may_ask_for_another_pack_of_the_folder(world, model, small_pack, assets_dir, tmp_path):
    from faceidx_worker.packs import ModelPacks
    from tests.support.worker_harness import ODD_PACK, SMALL_PACK, make_model_pack

    folder = tmp_path / "packs"
    make_model_pack(folder / "small_pack", assets_dir, SMALL_PACK)
    make_model_pack(folder / "odd_pack", assets_dir, ODD_PACK)
    data = (assets_dir / "images" / "obama.jpg").read_bytes()
    for key in ("default.jpg", "odd.jpg", "nope.jpg"):
        world.put_image(key, data)
    world.send(s3_event_body([s3_record(world.input_bucket, "default.jpg")]))
    for key, pack in (("odd.jpg", "odd_pack"), ("nope.jpg", "no_such_pack")):
        body = json.loads(s3_event_body([s3_record(world.input_bucket, key)]))
        world.send(json.dumps({**body, "model_pack": pack}))
    loaded = []

    def make(name, path):
        loaded.append(name)
        return InsightFaceModelPack(path, name=name, ort_threads=1)

    loop, _ = _loop(world, model, small_pack)
    loop.packs = ModelPacks(model, folder, make)
    assert _run_within(loop, 90).exit_code == 0
    assert queue_counts(world.sqs, world.queue_url) == (0, 0)
    table, _ = read_output_table(world.s3, world.output_bucket, "idx/")
    rows = {row["image_key"]: row for row in table.to_pylist()}
    assert (rows["default.jpg"]["model_pack"], rows["default.jpg"]["model_version"]) == (
        "small_pack",
        model.version,
    )
    odd = rows["odd.jpg"]
    assert odd["model_pack"] == "odd_pack"
    assert odd["model_version"].startswith("odd_pack-")
    assert odd["model_version"] != model.version
    assert (odd["status"], odd["face_count"]) == ("ok", 1)
    nope = rows["nope.jpg"]
    assert nope["status"] == "error"
    assert nope["error"].startswith("unknown_model_pack: ")
    assert "no_such_pack" in nope["error"]
    assert loaded == ["odd_pack"]  # loaded once, on first use; the unknown one is never built
