"""Book-keeping with a fake clock: busy time, and when a drained queue may be flushed."""

from __future__ import annotations

import queue
import threading

from faceidx_worker.intake import DRAIN_SIGNAL_SECONDS, SqsIntake
from faceidx_worker.settings import load_settings
from faceidx_worker.tracking import BusyClock, MessageTracker, ProgressWatchdog, RunStats


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
        work_queue=None,  # never polled in these tests
        tracker=MessageTracker(),
        downloads=queue.Queue(),
        stop=threading.Event(),
        sqs_lock=threading.Lock(),
        stats=RunStats(),
        clock=clock,
        idle_seconds_left=lambda: None,
        on_work=lambda: None,
        on_fatal=lambda exc: None,
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
