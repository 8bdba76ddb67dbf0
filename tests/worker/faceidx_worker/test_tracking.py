"""Book-keeping: busy time and drained-queue flushes with a fake clock; the message ledger on moto."""

from __future__ import annotations

import queue

import pytest

from faceidx_worker.events import ImageRef
from faceidx_worker.intake import (
    DRAIN_SIGNAL_SECONDS,
    RECEIVES_WITHOUT_REDRIVE,
    SqsIntake,
    release_unreadable,
)
from faceidx_worker.queue import SqsWorkQueue
from faceidx_worker.runstate import BusyClock, ProgressWatchdog, RunControl, RunStats
from faceidx_worker.settings import load_settings
from faceidx_worker.tracking import MessageLedger, WorkItem
from tests.support.worker_harness import queue_counts


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_busy_time_runs_only_while_messages_are_in_flight():
    clock = FakeClock()
    busy = BusyClock(clock)
    in_flight = [0]
    busy.settle(lambda: in_flight[0])  # nothing started: nothing counted
    clock.now += 5  # idle before the first message
    in_flight[0] = 2
    busy.start()
    clock.now += 3
    busy.settle(lambda: in_flight[0])  # still in flight: the clock keeps running
    assert busy.seconds() == 3
    busy.start()  # more work arriving while busy does not restart the clock
    clock.now += 1
    in_flight[0] = 0
    busy.settle(lambda: in_flight[0])
    clock.now += 10  # idle again (the shutdown's long poll, the idle wait)
    assert busy.seconds() == 4
    in_flight[0] = 1
    busy.start()
    clock.now += 2
    assert busy.seconds() == 6  # a running stretch counts before it settles


def _intake(tmp_path, clock):
    settings = load_settings(
        {
            "FACEIDX_QUEUE_URL": "http://localhost/1/q",
            "FACEIDX_OUTPUT_URI": str(tmp_path),
            "FACEIDX_MODEL_DIR": str(tmp_path),
        }
    )
    return SqsIntake(
        settings,
        MessageLedger(None, RunStats(), retry_delay=0),  # never polled in these tests
        queue.Queue(),
        RunControl(clock),
    )


def test_a_long_poll_left_unanswered_after_a_short_batch_means_the_queue_is_drained(tmp_path):
    clock = FakeClock()
    intake = _intake(tmp_path, clock)
    assert not intake.queue_seems_drained()  # no poll has said anything yet
    intake.last_poll_count = 3  # the queue was running low
    intake.receive_started_at = clock.now
    clock.now += DRAIN_SIGNAL_SECONDS / 2
    assert not intake.queue_seems_drained()  # SQS may still be answering with messages
    clock.now += DRAIN_SIGNAL_SECONDS
    assert intake.queue_seems_drained()  # SQS answers at once when a message is visible
    intake.receive_started_at = None
    intake.queue_looked_empty = True
    assert intake.queue_seems_drained()  # the poll came back empty


def test_a_slow_poll_after_a_full_batch_is_not_taken_for_a_drained_queue(tmp_path):
    clock = FakeClock()
    intake = _intake(tmp_path, clock)
    intake.last_poll_count = intake.settings.receive_max_messages  # a deep queue, a busy endpoint
    intake.receive_started_at = clock.now
    clock.now += 10 * DRAIN_SIGNAL_SECONDS
    assert not intake.queue_seems_drained()


def test_the_watchdog_fires_for_the_lane_stuck_longest_and_only_past_the_bound():
    clock = FakeClock()
    watchdog = ProgressWatchdog(10, clock)
    assert watchdog.stalled() is None  # no lane computing: a quiet queue is never a stall
    watchdog.started("inference-0", 4)
    clock.now += 6
    watchdog.started("inference-1", 2)
    clock.now += 3
    assert watchdog.stalled() is None  # 9 s: a slow batch, not a stuck lane
    watchdog.finished("inference-1")  # the other lane keeps finishing batches ...
    watchdog.started("inference-1", 2)
    clock.now += 1
    assert watchdog.stalled() == ("inference-0", 10, 4)  # ... which does not hide the stuck one
    watchdog.finished("inference-0")
    assert watchdog.stalled() is None
    clock.now += 100
    assert ProgressWatchdog(0, clock).stalled() is None  # 0 = off


def _ledger(world, stats=None):
    work_queue = SqsWorkQueue(world.sqs, world.queue_url, wait_seconds=0, visibility_timeout=60)
    return MessageLedger(work_queue, stats or RunStats(), retry_delay=0), work_queue


def _received(world, work_queue, bodies):
    for body in bodies:
        world.send(body)
    got = []
    while len(got) < len(bodies):
        got.extend(work_queue.receive(0))
    return sorted(got, key=lambda m: m.body)


def test_the_ledger_deletes_a_message_only_when_every_image_is_written(world):
    ledger, work_queue = _ledger(world)
    two, one = _received(world, work_queue, ["a-two images", "b-one image"])
    held = ledger.admit([(two, 2), (one, 1)], [], refuse=False, now=0.0)
    first, second = (WorkItem(tracked=held[0], ref=ImageRef("in", k)) for k in ("1.jpg", "2.jpg"))
    only = WorkItem(tracked=held[1], ref=ImageRef("in", "3.jpg"))
    assert ledger.written([first, only]) == 1  # the one-image message is complete
    assert queue_counts(world.sqs, world.queue_url) == (0, 1)  # the two-image one is still held
    assert ledger.written([second]) == 1
    assert queue_counts(world.sqs, world.queue_url) == (0, 0)
    assert ledger.count() == 0


def test_the_ledger_deletes_no_work_releases_when_refusing_and_hands_back_once(world):
    stats = RunStats()
    ledger, work_queue = _ledger(world, stats)
    test_event, refused, flaky = _received(world, work_queue, ["a-test event", "b-stopping", "c-flaky"])
    assert ledger.admit([(refused, 1)], [test_event], refuse=True, now=0.0) == []
    assert queue_counts(world.sqs, world.queue_url) == (1, 1)  # deleted one, released one; flaky held
    (held,) = ledger.admit([(flaky, 2)], [], refuse=False, now=0.0)
    item = WorkItem(tracked=held, ref=ImageRef("in", "1.jpg"))
    assert ledger.hand_back(item) is True
    assert ledger.hand_back(WorkItem(tracked=held, ref=ImageRef("in", "2.jpg"))) is False  # once
    assert ledger.written([item]) == 0  # handed back: never deleted
    assert queue_counts(world.sqs, world.queue_url) == (2, 0)  # visible again after retry_delay 0
    assert (stats.messages_deleted, stats.messages_released) == (1, 1)


def test_release_all_hands_every_held_message_back_and_refuses_new_ones(world):
    ledger, work_queue = _ledger(world)
    first, second = _received(world, work_queue, ["a", "b"])
    ledger.admit([(first, 1)], [], refuse=False, now=0.0)
    assert ledger.release_all() == 1
    assert ledger.admit([(second, 1)], [], refuse=False, now=0.0) == []  # closed: released at once
    assert queue_counts(world.sqs, world.queue_url) == (2, 0)
    assert ledger.count() == 0


def test_the_heartbeat_extends_only_held_messages(world):
    ledger, work_queue = _ledger(world)
    (message,) = _received(world, work_queue, ["a"])
    ledger.admit([(message, 1)], [], refuse=False, now=0.0)
    work_queue.change_visibility([message], 0)  # about to reappear ...
    ledger.extend_held()  # ... but the heartbeat keeps it ours
    assert queue_counts(world.sqs, world.queue_url) == (0, 1)


@pytest.mark.parametrize(
    ("receive_count", "max_receive_count", "released"),
    [
        (1, 5, True),  # SQS moves it on the receive after the 5th: release every time up to then
        (5, 5, True),
        (6, 5, False),  # past maxReceiveCount SQS did not move it (no DLQ any more): leave it hidden
        (1, 1, True),
        (1, None, True),  # no redrive policy: a bounded number of receives
        (RECEIVES_WITHOUT_REDRIVE - 1, None, True),
        (RECEIVES_WITHOUT_REDRIVE, None, False),
    ],
)
def test_release_unreadable(receive_count, max_receive_count, released):
    assert release_unreadable(receive_count, max_receive_count) is released
