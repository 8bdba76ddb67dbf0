"""The worker's in-flight SQS messages and run state: the one owner of delete, release and hand-back.

A message may announce several images. :class:`MessageLedger` deletes it only when the rows of *all*
its images are durably written; hands it back to SQS when one of its images hit a transient failure or
a denial; releases it (visibility 0) when the worker stops first. :class:`RunControl` is what the
threads share with the loop (stop, failure, activity).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from faceidx_worker.events import ImageRef
from faceidx_worker.queue import QueueMessage, SqsWorkQueue
from faceidx_worker.rows import ErrorReason


@dataclass
class RunStats:
    """Counters of one run, for the summary line (written by the receiver and the inference thread)."""

    images: int = 0
    faces: int = 0
    errors: int = 0
    batches: int = 0
    retried: int = 0
    messages_deleted: int = 0
    messages_released: int = 0
    messages_malformed: int = 0
    messages_skipped: int = 0
    tombstones: int = 0  # ObjectRemoved events recorded as removed rows
    rows_written: int = 0
    files_written: int = 0
    errors_by_reason: Counter[ErrorReason] = field(default_factory=Counter)


class BusyClock:
    """Wall time with work in flight: from the first received message until none is left.

    The receiver calls :meth:`start` after it tracks a message; the loop calls :meth:`settle` with the
    tracked count after every step. Both hold the clock's lock, so a message tracked while the loop
    reads a count of 0 restarts the clock right after it stops. Idle time is the run's rest.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._total = 0.0

    def start(self) -> None:
        with self._lock:
            if self._since is None:
                self._since = self._clock()

    def settle(self, in_flight: Callable[[], int]) -> None:
        with self._lock:
            if self._since is not None and in_flight() == 0:
                self._total += self._clock() - self._since
                self._since = None

    def seconds(self) -> float:
        with self._lock:
            running = self._clock() - self._since if self._since is not None else 0.0
            return self._total + running


@dataclass(eq=False)
class TrackedMessage:
    message: QueueMessage
    total: int
    received_at: float = field(default_factory=time.monotonic)
    processed: int = 0  # images whose rows are in the sink (not yet durable)
    written: int = 0
    finished: bool = False  # deleted, handed back or released: no longer ours


@dataclass(eq=False)
class WorkItem:
    """One image of one message, travelling through download, decode and inference."""

    tracked: TrackedMessage
    ref: ImageRef


class MessageLedger:
    """The one owner of the worker's SQS messages: which are held, and every delete, release (visibility
    0), hand-back (visibility ``retry_delay``) and visibility extension of them.

    Thread-safe: the receiver admits, the loop records and settles, the heartbeat extends. SQS calls run
    under one lock, so an extension never races a delete or a release of the same message.
    """

    def __init__(self, work_queue: SqsWorkQueue, stats: RunStats, *, retry_delay: int) -> None:
        self.queue = work_queue
        self.stats = stats
        self.retry_delay = retry_delay
        self._lock = threading.Lock()  # the book-keeping
        self._sqs = threading.Lock()  # the SQS calls
        self._active: list[TrackedMessage] = []
        self._closed = False

    # -- SQS ------------------------------------------------------------------------------------
    def _delete(self, messages: list[QueueMessage]) -> int:
        with self._sqs:
            refused = self.queue.delete(messages) if messages else []
        self.stats.messages_deleted += len(messages) - len(refused)
        return len(messages) - len(refused)

    def _release(self, messages: list[QueueMessage]) -> int:
        with self._sqs:
            refused = self.queue.release(messages) if messages else []
        self.stats.messages_released += len(messages) - len(refused)
        return len(messages) - len(refused)

    def admit(
        self, work: list[tuple[QueueMessage, int]], no_work: list[QueueMessage], *, refuse: bool, now: float
    ) -> list[TrackedMessage]:
        """Delete the messages that ask for no work; hold the others (``(message, images)``), or release
        them at once when ``refuse`` (stopping) or closed. Returns the held ones."""
        held: list[TrackedMessage] = []
        released: list[QueueMessage] = []
        with self._lock:
            for message, images in work:
                if refuse or self._closed:
                    released.append(message)
                    continue
                tracked = TrackedMessage(message=message, total=images, received_at=now)
                self._active.append(tracked)
                held.append(tracked)
        self._delete(no_work)
        self._release(released)
        return held

    def release_unreadable(self, messages: list[QueueMessage]) -> int:
        """Make messages the worker cannot parse visible again at once (visibility 0), never held:
        each receive raises their ``ApproximateReceiveCount``, so SQS's redrive policy moves them to the
        dead-letter queue within a few seconds instead of one visibility timeout per receive. Not
        counted as released work (the summary counts them as ``messages_malformed``)."""
        if not messages:
            return 0
        with self._sqs:
            refused = self.queue.release(messages)
        return len(messages) - len(refused)

    def max_receive_count(self) -> int | None:
        """The work queue's redrive ``maxReceiveCount`` (``None``: no redrive policy)."""
        return self.queue.max_receive_count()

    def hand_back(self, item: WorkItem) -> bool:
        """An image of this message may be readable later: the message goes back to SQS once, visible
        again after ``retry_delay`` seconds. ``False`` when it was already settled."""
        with self._lock:
            tracked = item.tracked
            if tracked.finished:
                return False
            tracked.finished = True
            self._active = [t for t in self._active if not t.finished]
        with self._sqs:
            self.queue.change_visibility([tracked.message], self.retry_delay, action="hand back")
        return True

    def written(self, items: list[WorkItem]) -> int:
        """Record durably written images and delete the messages now complete. Returns how many."""
        complete: list[QueueMessage] = []
        with self._lock:
            for item in items:
                tracked = item.tracked
                tracked.written += 1
                if not tracked.finished and tracked.written >= tracked.total:
                    tracked.finished = True
                    complete.append(tracked.message)
            self._active = [t for t in self._active if not t.finished]
        return self._delete(complete)

    def release_all(self) -> int:
        """Hold no more: refuse new messages and release every one still held (visibility 0)."""
        with self._lock:
            self._closed = True
            remaining = [t.message for t in self._active if not t.finished]
            for tracked in self._active:
                tracked.finished = True
            self._active = []
        return self._release(remaining)

    def extend_held(self) -> None:
        """The heartbeat: keep every held message invisible another visibility timeout."""
        with self._sqs:
            held = [t.message for t in self.active() if not t.finished]
            if held:
                self.queue.extend(held)

    # -- book-keeping -----------------------------------------------------------------------------
    def count(self) -> int:
        with self._lock:
            return len(self._active)

    def active(self) -> list[TrackedMessage]:
        with self._lock:
            return list(self._active)

    def mark_processed(self, items: list[WorkItem]) -> None:
        with self._lock:
            for item in items:
                item.tracked.processed += 1

    def count_computing(self) -> int:
        """Messages with images still to download, decode or infer (not those waiting for a flush)."""
        with self._lock:
            return sum(1 for t in self._active if t.processed < t.total)

    def all_processed(self) -> bool:
        """True when every image of every held message is in the sink (nothing left to compute)."""
        with self._lock:
            return all(t.processed >= t.total for t in self._active)


class RunControl:
    """What the receiver and heartbeat threads share with the loop: the stop request, the first fatal
    error, the last activity (for the idle exit) and whether visibility may still be extended."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.stop = threading.Event()
        self.reason: str | None = None
        self.requested_at: float | None = None
        self.fatal: BaseException | None = None
        self.extending = threading.Event()  # cleared for good by the progress watchdog
        self.extending.set()
        self.busy = BusyClock(clock)
        self.last_activity = clock()

    def request_stop(self, reason: str) -> None:
        """Idempotent: the first reason wins."""
        if self.reason is None:
            self.reason = reason
            self.requested_at = self.clock()
        self.stop.set()

    def fail(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
        self.request_stop("error")

    def touch(self) -> None:
        """Work arrived or finished: the idle clock restarts, the busy clock runs."""
        self.last_activity = self.clock()
        self.busy.start()


class ProgressWatchdog:
    """Notices an inference lane stuck in one batch: ``bound`` seconds without finishing its images.

    Each lane calls :meth:`started` before it computes a batch and :meth:`finished` after. The loop and
    the heartbeat (which must not keep extending the messages of a stuck lane) ask :meth:`stalled`.
    Per lane, so one hung lane is noticed while the others keep indexing, and a quiet queue or a slow
    download never counts. ``bound`` 0 switches the watchdog off.
    """

    def __init__(self, bound: float, clock: Callable[[], float]) -> None:
        self.bound = bound
        self._clock = clock
        self._lock = threading.Lock()
        self._computing: dict[str, tuple[float, int]] = {}  # lane -> (started at, images)

    def started(self, lane: str, images: int) -> None:
        with self._lock:
            self._computing[lane] = (self._clock(), images)

    def finished(self, lane: str) -> None:
        with self._lock:
            self._computing.pop(lane, None)

    def stalled(self) -> tuple[str, float, int] | None:
        """(lane, seconds, images) of the lane computing longest, once past the bound; else ``None``."""
        if self.bound <= 0:
            return None
        with self._lock:
            if not self._computing:
                return None
            now = self._clock()
            lane, (since, images) = min(self._computing.items(), key=lambda item: item[1][0])
        waited = now - since
        return (lane, waited, images) if waited >= self.bound else None
