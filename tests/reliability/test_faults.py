"""Fault injection: the worker as a real subprocess against moto, crashed, stopped and starved of AWS.

The promise under test: a crash, a spot reclaim or an AWS failure costs at most a redelivery. No image
is lost (every announced message is either still in a queue or has all its images in the index), and
duplicates collapse under the index's dedup rule. Faults are injected at the HTTP layer by
``tests/support/fault_proxy.py``, between the worker (``AWS_ENDPOINT_URL``) and moto.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.fault_proxy import FaultProxy, FaultRule
from tests.support.reliability_world import (
    PHOTO_FACES,
    ReliabilityWorld,
    announced_keys,
    create_world,
    duplicate_groups,
    rows_by_key,
    unaccounted_messages,
)
from tests.support.worker_harness import WorkerProcess, WorkerRun, run_worker

pytestmark = [pytest.mark.assets, pytest.mark.slow]

KILL_VISIBILITY = 4  # seconds: short, so the messages a killed worker held come back quickly


def announce(world: ReliabilityWorld, photos: dict[str, bytes], count: int, prefix: str) -> dict[str, int]:
    """Upload ``count`` photos under distinct keys, one S3 event each; returns key -> true face count."""
    names = sorted(photos)
    expected = {}
    for number in range(count):
        name = names[number % len(names)]
        key = f"{prefix}/{number:03d}-{name}"
        world.upload_and_announce(key, photos[name])
        expected[key] = PHOTO_FACES[name]
    return expected


def _keys(body: str) -> set[str]:
    return {key for _, key in announced_keys(body)}


def assert_index_complete(world: ReliabilityWorld, expected: dict[str, int]) -> list[dict[str, Any]]:
    """Every announced image is in the index with its true face count, once after dedup."""
    rows = world.rows()
    assert not unaccounted_messages(world, rows), "lost work"
    grouped = rows_by_key(rows)
    assert set(grouped) == set(expected), f"missing {sorted(set(expected) - set(grouped))}"
    for key, faces in expected.items():
        found = grouped[key]
        assert [r["status"] for r in found] == ["ok"] * max(1, faces), (key, found[0]["error"])
        assert {r["face_count"] for r in found} == {faces}, key
    return rows


def assert_duplicates_are_whole_reindexings(rows: list[dict[str, Any]]) -> set[str]:
    """A re-delivered image is indexed again in full: every face row of it appears the same number of times,
    with the same (bucket, key, etag, face_index), so the dedup rule collapses them. Returns the keys."""
    groups = duplicate_groups(rows)
    per_image: dict[str, Counter[int]] = {}
    for (bucket, key, etag, face_index), count in groups.items():
        assert bucket, key
        assert etag, key
        per_image.setdefault(key, Counter())[count] += 1
    all_counts = Counter((row["image_key"], row["face_index"]) for row in rows)
    for key in per_image:
        multiplicities = {n for (k, _), n in all_counts.items() if k == key}
        assert len(multiplicities) == 1, f"{key}: partially re-indexed {multiplicities}"
    return set(per_image)


# -- hard kill --------------------------------------------------------------------------------------
def test_sigkill_mid_batch_costs_only_a_redelivery(moto, proxy, small_pack, photos):
    """SIGKILL (no chance to clean up), then a second worker: after the visibility timeout every image
    is in the index. The proxy holds the first DeleteMessageBatch, so the kill lands at the worst moment:
    rows of the first batch are durable but their messages not deleted, and more messages are received
    and half-way through download and inference. The re-delivered images are indexed again in full and
    the duplicates collapse under the dedup rule."""
    world = create_world(moto, visibility_timeout=KILL_VISIBILITY)
    expected = announce(world, photos, 14, "kill")
    held = proxy.add("sqs", "DeleteMessageBatch", "hang")
    first = WorkerProcess(
        world.env(
            small_pack,
            proxy.url,
            FACEIDX_VISIBILITY_TIMEOUT=KILL_VISIBILITY,
            FACEIDX_IMAGE_BATCH=2,
            FACEIDX_FLUSH_MAX_SECONDS=0,
            FACEIDX_RECEIVE_MAX_MESSAGES=4,
            FACEIDX_PREFETCH_MESSAGES=6,
            FACEIDX_MAX_IDLE_SECONDS=120,
        )
    ).start()
    try:
        if held is not None:
            assert proxy.wait_for(held, timeout=90), "the worker never flushed:\n" + "\n".join(
                first.text_lines
            )
        else:
            assert first.wait_for(lambda lines: any(x.get("event") == "batch" for x in lines), 90)
        first.signal(signal.SIGKILL)
        killed = first.wait(timeout=30)
    finally:
        proxy.release()
        if first.process is not None and first.process.poll() is None:
            first.process.kill()
    assert killed.returncode == -signal.SIGKILL
    assert not killed.events("summary")  # it really died: no clean shutdown ran

    _, in_flight = world.counts()
    assert in_flight > 0, "the worker was killed holding no message: the test proves nothing"
    written_before = {row["image_key"] for row in world.rows()}
    assert written_before, "the held delete came after a flush: rows must be durable"
    queued_keys = {key for m in world.messages() for key in _keys(m.body)}
    assert written_before <= queued_keys, "written and deleted before the kill: nothing to redeliver"

    second = run_worker(
        world.env(
            small_pack,
            FACEIDX_VISIBILITY_TIMEOUT=KILL_VISIBILITY,
            FACEIDX_MAX_IDLE_SECONDS=KILL_VISIBILITY + 3,
        ),
        timeout=180,
    )
    assert second.returncode == 0, second.describe()
    assert world.counts() == (0, 0)
    assert not world.messages(dlq=True)
    rows = assert_index_complete(world, expected)
    duplicated = assert_duplicates_are_whole_reindexings(rows)
    assert duplicated == written_before  # each written-but-undeleted image was indexed again, only those


# -- spot-style stop (SIGTERM) ----------------------------------------------------------------------
def test_sigterm_flushes_releases_at_once_and_loses_nothing(moto, proxy, small_pack, photos):
    """SIGTERM mid-work: exit 0 within 25 s, finished images written and deleted, every other message
    visible again at once (the queue's visibility timeout is 10 minutes), and a second worker then
    indexes the rest: every image exactly once, no duplicate."""
    world = create_world(moto, visibility_timeout=600)
    expected = announce(world, photos, 16, "term")
    proxy.add("s3", "GetObject", "delay", times=None, seconds=0.3)  # slow downloads: work stays in flight
    worker = WorkerProcess(
        world.env(
            small_pack,
            proxy.url,
            FACEIDX_VISIBILITY_TIMEOUT=600,
            FACEIDX_IMAGE_BATCH=1,
            FACEIDX_DOWNLOAD_THREADS=2,
            FACEIDX_PREFETCH_MESSAGES=8,
            FACEIDX_RECEIVE_MAX_MESSAGES=4,
            FACEIDX_FLUSH_MAX_SECONDS=3600,  # nothing written before the signal: the flush is the shutdown's
            FACEIDX_MAX_IDLE_SECONDS=120,
        )
    ).start()
    assert worker.wait_for(lambda lines: sum(1 for x in lines if x.get("event") == "batch") >= 3, 90)
    signalled = time.monotonic()
    worker.signal(signal.SIGTERM)
    run = worker.wait(timeout=60)
    stopped_in = time.monotonic() - signalled
    assert run.returncode == 0, run.describe()
    assert stopped_in < 25, f"SIGTERM took {stopped_in:.1f}s: Batch sends SIGKILL about 30 s after it"
    assert run.summary["exit_reason"] == "sigterm"

    rows = world.rows()
    written = {row["image_key"] for row in rows}
    assert 3 <= len(written) < len(expected)
    assert not duplicate_groups(rows)
    visible, in_flight = world.counts()
    assert in_flight == 0, "unfinished messages must be released (visibility 0), not left for 10 minutes"
    assert visible == len(expected) - len(written)  # written ones were deleted, the rest released
    assert not unaccounted_messages(world, rows)

    second = run_worker(
        world.env(small_pack, FACEIDX_VISIBILITY_TIMEOUT=600, FACEIDX_MAX_IDLE_SECONDS=2), timeout=120
    )
    assert second.returncode == 0, second.describe()
    assert world.counts() == (0, 0)
    rows = assert_index_complete(world, expected)
    assert not duplicate_groups(rows)  # a clean stop hands work over without indexing anything twice


# -- transient AWS errors ---------------------------------------------------------------------------
TRANSIENT_FAULTS = [
    # (service, operation, fault, times): consumed in order, one call's retries take them one by one
    ("s3", "GetObject", "503", 1),
    ("s3", "GetObject", "throttle", 1),
    ("s3", "GetObject", "reset", 1),
    ("s3", "GetObject", "cut_body", 1),  # botocore has returned: the worker hands the message back
    ("sqs", "ReceiveMessage", "throttle", 1),
    ("sqs", "ReceiveMessage", "503", 1),
    ("sqs", "ReceiveMessage", "reset", 1),
    ("sqs", "DeleteMessageBatch", "503", 1),
    ("sqs", "DeleteMessageBatch", "throttle", 1),
    ("sqs", "DeleteMessageBatch", "reset", 1),
    ("sqs", "DeleteMessageBatch", "drop_response", 1),  # deleted, but the answer is lost: retried
    ("s3", "PutObject", "503", 1),
    ("s3", "PutObject", "throttle", 1),
    ("s3", "PutObject", "reset", 1),
    ("s3", "PutObject", "drop_response", 1),  # written, but the answer is lost: written again
]


def test_transient_aws_errors_are_retried_and_cost_nothing(moto, proxy, small_pack, photos):
    """5xx, throttling and connection resets on every call the worker depends on: botocore's retries
    absorb them, every image is indexed exactly once and every message deleted."""
    world = create_world(moto, visibility_timeout=60)
    expected = announce(world, photos, 10, "flaky")
    rules = [proxy.add(service, op, fault, times=times) for service, op, fault, times in TRANSIENT_FAULTS]
    # FACEIDX_MAX_IDLE_SECONDS above FACEIDX_RECEIVE_WAIT_SECONDS + 5 s, the longest a receive may run
    # before the worker reads it as a failing SQS rather than an empty queue (three ReceiveMessage faults
    # back off <= 7 s)
    run = run_worker(
        world.env(small_pack, proxy.url, FACEIDX_RETRY_DELAY_SECONDS=1, FACEIDX_MAX_IDLE_SECONDS=8),
        timeout=240,
    )
    assert run.returncode == 0, run.describe()
    for rule in rules:
        assert rule.hits == rule.times, f"{rule.operation} {rule.fault} was not injected"
    for operation in ("GetObject", "ReceiveMessage", "DeleteMessageBatch", "PutObject"):
        assert proxy.count(operation, "200") >= 1, f"{operation} never succeeded after its faults"
    assert world.counts() == (0, 0)
    rows = assert_index_complete(world, expected)
    assert not duplicate_groups(rows)
    summary = run.summary
    assert summary["exit_reason"] == "idle"
    assert summary["errors"] == 0
    assert summary["retried"] == 1  # only the half-downloaded image went back to the queue


# -- persistent AWS failures ------------------------------------------------------------------------
# Each case gets its own queue, buckets and proxy; the four workers run at the same time because each
# spends most of its life in botocore's backoff sleeps. AWS_MAX_ATTEMPTS=4 keeps those short (3.5 s on
# average); with the worker's default of 9 attempts a persistent failure takes about a minute.
MAX_ATTEMPTS = 4  # AWS_MAX_ATTEMPTS, a standard AWS SDK variable (see test_aws_max_attempts_...)


@dataclass
class PersistentCase:
    name: str
    service: str
    operation: str
    extra: dict[str, Any] = field(default_factory=dict)
    match: str | None = None
    after: int = 0
    messages: int = 3


PERSISTENT = {
    case.name: case
    for case in [
        # FACEIDX_MAX_IDLE_SECONDS above FACEIDX_RECEIVE_WAIT_SECONDS + 5: a receive running longer than
        # that is the worker's sign of a failing SQS (not an empty queue), as with the defaults (60 > 20 + 5)
        PersistentCase(
            "receive",
            "sqs",
            "ReceiveMessage",
            {"FACEIDX_RECEIVE_MAX_MESSAGES": 2, "FACEIDX_MAX_IDLE_SECONDS": 10},
            after=1,
            messages=6,
        ),
        PersistentCase("delete", "sqs", "DeleteMessageBatch"),
        PersistentCase("put", "s3", "PutObject"),
        PersistentCase(
            "get_one_image", "s3", "GetObject", {"FACEIDX_RETRY_DELAY_SECONDS": 600}, match="/bad-"
        ),
    ]
}


@dataclass
class PersistentOutcome:
    case: PersistentCase
    world: ReliabilityWorld
    run: WorkerRun
    rule: FaultRule
    attempts: int
    rows: list[dict[str, Any]]
    counts: tuple[int, int]
    queued_keys: set[str]
    expected: dict[str, int]
    lost: list[str]


@pytest.fixture(scope="module")
def persistent(moto_session, small_pack, photos) -> Iterator[dict[str, PersistentOutcome]]:
    """Run the four persistent-failure cases at once and snapshot what moto holds afterwards."""
    moto_session.reset()
    started: list[tuple[PersistentCase, ReliabilityWorld, FaultProxy, FaultRule, WorkerProcess]] = []
    expectations: dict[str, dict[str, int]] = {}
    try:
        for case in PERSISTENT.values():
            world = create_world(moto_session, case.name.replace("_", "-"), visibility_timeout=60)
            expected = announce(world, photos, case.messages, "ok")
            if case.match:
                key = "bad-" + sorted(photos)[0]
                world.upload_and_announce(key, photos[sorted(photos)[0]])
                expected[key] = -1  # never indexed while S3 fails
            expectations[case.name] = expected
            proxy = FaultProxy(moto_session.url).start()
            rule = proxy.add(
                case.service, case.operation, "503", times=None, after=case.after, match=case.match
            )
            settings = {"AWS_MAX_ATTEMPTS": MAX_ATTEMPTS, "FACEIDX_MAX_IDLE_SECONDS": 3, **case.extra}
            env = world.env(small_pack, proxy.url, **settings)
            started.append((case, world, proxy, rule, WorkerProcess(env).start()))
        outcomes = {}
        for case, world, proxy, rule, worker in started:
            run = worker.wait(timeout=240)
            rows = world.rows()
            outcomes[case.name] = PersistentOutcome(
                case=case,
                world=world,
                run=run,
                rule=rule,
                attempts=proxy.count(case.operation, "503"),
                rows=rows,
                counts=world.counts(),
                queued_keys={key for m in world.messages() for key in _keys(m.body)},
                expected=expectations[case.name],
                lost=unaccounted_messages(world, rows),
            )
        yield outcomes
    finally:
        for _, _, proxy, _, worker in started:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.kill()
            proxy.stop()


@pytest.mark.parametrize("name", ["receive", "delete", "put"])
def test_persistent_sqs_or_s3_failure_ends_the_worker_nonzero_without_losing_work(persistent, name):
    outcome = persistent[name]
    run = outcome.run
    assert run.returncode == 1, run.describe()
    assert run.summary["exit_reason"] == "error"
    assert outcome.attempts >= 2, "the failing call was never retried"
    assert not outcome.lost, f"deleted without being indexed: {outcome.lost}"
    assert any("persistent failure" in message for message in run.messages()), run.describe()
    indexed = {row["image_key"] for row in outcome.rows}
    if name == "receive":
        assert len(outcome.queued_keys) >= 4  # never received: still waiting for the next worker
    if name == "delete":
        assert indexed == set(outcome.expected)  # written ...
        assert outcome.queued_keys == set(outcome.expected)  # ... and never deleted: redelivered later
    if name == "put":
        assert not outcome.rows
        assert outcome.counts == (len(outcome.expected), 0)  # nothing deleted, all released at once


def test_persistent_s3_read_failure_hands_that_message_back_and_indexes_the_rest(persistent):
    """A GetObject that keeps failing is not an error row (the object may be fine a minute later): its
    message goes back to the queue for FACEIDX_RETRY_DELAY_SECONDS, the dead-letter queue after
    maxReceiveCount receives, and the worker carries on with the others."""
    outcome = persistent["get_one_image"]
    run = outcome.run
    assert run.returncode == 0, run.describe()
    assert run.summary["exit_reason"] == "idle"
    assert run.summary["retried"] == 1
    bad = {key for key, faces in outcome.expected.items() if faces < 0}
    good = set(outcome.expected) - bad
    assert {row["image_key"] for row in outcome.rows} == good
    assert outcome.queued_keys == bad  # not deleted: it comes back after the retry delay
    assert outcome.counts == (0, 1)
    assert not outcome.lost


def test_aws_max_attempts_from_the_environment_is_honoured(persistent):
    """Issue 4: "the standard AWS_* variables apply". AWS_MAX_ATTEMPTS is one: with it at 4, a failing
    PutObject is tried 4 times, not the worker's default 9 (8 retries: about a minute of backoff)."""
    outcome = persistent["put"]
    assert outcome.attempts == MAX_ATTEMPTS, (
        f"PutObject was tried {outcome.attempts} times with AWS_MAX_ATTEMPTS={MAX_ATTEMPTS}: "
        "worker/faceidx_worker/main.py build_clients() overrides the variable"
    )


# -- output write failure ---------------------------------------------------------------------------
def test_unwritable_local_output_deletes_nothing(world, small_pack, photos, tmp_path):
    """FACEIDX_OUTPUT_URI is a local directory that cannot be created (a file stands in its way)."""
    expected = announce(world, photos, 3, "local")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the output directory should be")
    env = world.env(small_pack)
    env["FACEIDX_OUTPUT_URI"] = str(blocker / "index")
    run = run_worker(env, timeout=120)
    assert run.returncode == 1, run.describe()
    assert run.summary["exit_reason"] == "error"
    assert world.counts() == (len(expected), 0)  # none deleted, all released for another worker
    assert blocker.is_file()
    assert any(str(blocker) in message for message in run.messages()), run.describe()


def test_output_bucket_refusing_writes_deletes_nothing(world, proxy, small_pack, photos):
    """PutObject answered AccessDenied (a job role without s3:PutObject): not retried, worker exits 1."""
    expected = announce(world, photos, 3, "denied")
    rule = proxy.add("s3", "PutObject", "access_denied", times=None)
    run = run_worker(world.env(small_pack, proxy.url), timeout=120)
    assert run.returncode == 1, run.describe()
    assert rule.hits >= 1
    assert not world.rows()
    assert world.counts() == (len(expected), 0)
    assert any("s3:PutObject" in message for message in run.messages()), run.describe()
