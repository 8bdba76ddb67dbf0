"""Hand-overs of a real worker process on moto (issue 12): the maximum run time under a queue that never
goes idle, and the progress watchdog when an inference lane hangs.

Both end with nothing lost (every announced message is in a queue or has all its images in the index)
and nothing held: with a visibility timeout of 600 s, a message still in flight afterwards would be
one the worker kept instead of releasing.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.support.reliability_world import (
    PHOTO_FACES,
    announced_keys,
    create_world,
    duplicate_groups,
    unaccounted_messages,
)
from tests.support.worker_harness import REPO, WorkerProcess

pytestmark = [pytest.mark.assets, pytest.mark.slow]

HELD = 600  # FACEIDX_VISIBILITY_TIMEOUT: far longer than each test, so only a release makes a message visible
HANGING_WORKER = REPO / "tests" / "support" / "hanging_worker.py"
HANG_PHOTO = "lfw_Rob_Lowe_0001.jpg"  # 250 x 250: the only photo decoded to that size


def test_max_run_time_under_steady_inflow_hands_over_and_exits_0(moto, small_pack, photos):
    """Messages keep arriving faster than FACEIDX_MAX_IDLE_SECONDS could ever notice. At
    FACEIDX_MAX_RUN_SECONDS the worker stops receiving, writes and deletes what it finished, releases the
    rest and exits 0 (a job timeout would instead kill it and fail the job, without a retry)."""
    world = create_world(moto, "maxrun", visibility_timeout=HELD)
    names = sorted(photos)
    feeding = threading.Event()
    feeding.set()

    def feed() -> None:
        number = 0
        while feeding.is_set():
            name = names[number % len(names)]
            world.upload_and_announce(f"inflow/{number:04d}-{name}", photos[name])
            number += 1
            time.sleep(0.15)

    for number in range(6):  # a backlog before the worker starts
        world.upload_and_announce(f"backlog/{number}-{names[0]}", photos[names[0]])
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    env = world.env(
        small_pack, FACEIDX_VISIBILITY_TIMEOUT=HELD, FACEIDX_MAX_RUN_SECONDS=8, FACEIDX_MAX_IDLE_SECONDS=600
    )
    try:
        run = WorkerProcess(env).start().wait(timeout=120)
    finally:
        feeding.clear()
        feeder.join(10)
    assert run.returncode == 0, run.describe()
    summary = run.summary
    assert summary["exit_reason"] == "max_run_time"
    assert summary["exit_code"] == 0
    assert any("FACEIDX_MAX_RUN_SECONDS" in message for message in run.messages()), run.describe()
    rows = world.rows()
    assert rows, "nothing was indexed before the hand-over"
    assert not duplicate_groups(rows)
    assert not unaccounted_messages(world, rows), "lost work"
    visible, in_flight = world.counts()
    assert in_flight == 0, "messages the worker held stay hidden after it exited"
    assert visible == len(world.sent) - summary["messages_deleted"]
    indexed = {row["image_key"] for row in rows}
    queued = {key for m in world.messages() for _, key in announced_keys(m.body)}
    assert not indexed & queued  # written ones were deleted, the rest are waiting: never both


def test_a_hung_lane_stops_the_worker_releases_everything_and_exits_4(moto, small_pack, photos):
    """The one inference lane (the GPU plan) never returns from a detector call. The watchdog notices
    after FACEIDX_PROGRESS_TIMEOUT_SECONDS, stops extending visibility, releases every message the worker held
    and exits 4 although the lane's thread is still blocked, so the job fails and Batch may retry it."""
    world = create_world(moto, "hung", visibility_timeout=HELD)
    world.upload_and_announce("hang/" + HANG_PHOTO, photos[HANG_PHOTO])
    others = [name for name in sorted(photos) if name != HANG_PHOTO][:3]
    for name in others:
        world.upload_and_announce("ok/" + name, photos[name])
    assert all(name in PHOTO_FACES for name in others)
    env = world.env(
        small_pack,
        FACEIDX_VISIBILITY_TIMEOUT=HELD,
        FACEIDX_HEARTBEAT_SECONDS=0.5,
        FACEIDX_PROGRESS_TIMEOUT_SECONDS=5,
        FACEIDX_INFERENCE_THREADS=1,
        FACEIDX_MAX_IDLE_SECONDS=600,
        FACEIDX_TEST_HANG_SHAPE="250,250",
    )
    started = time.monotonic()
    run = WorkerProcess(env, script=HANGING_WORKER).start().wait(timeout=120)
    assert run.returncode == 4, run.describe()
    assert time.monotonic() - started < 90
    summary = run.summary
    assert summary["exit_reason"] == "stalled"
    assert summary["exit_code"] == 4
    errors = [line for line in run.events("log") if line.get("level") == "ERROR"]
    assert any(
        "FACEIDX_PROGRESS_TIMEOUT_SECONDS" in line["message"]
        and "Stopped extending visibility" in line["message"]
        for line in errors
    ), run.describe()
    rows = world.rows()
    assert "hang/" + HANG_PHOTO not in {row["image_key"] for row in rows}
    assert not unaccounted_messages(world, rows), "lost work"
    visible, in_flight = world.counts()
    assert in_flight == 0, "the stuck lane's messages are still held"
    queued = {key for m in world.messages() for _, key in announced_keys(m.body)}
    assert "hang/" + HANG_PHOTO in queued
    assert visible == len(world.sent) - summary["messages_deleted"]
