"""Book-keeping of in-flight SQS messages: which images of each are written, which may be deleted.

A message may announce several images. It is deleted only when the rows of *all* its images are
durably written; it is handed back to SQS when one of its images hit a transient failure, or when the
worker stops first. Thread-safe: the receiver adds, the inference loop settles, the heartbeat reads.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from faceidx_worker.events import ImageRef
from faceidx_worker.queue import QueueMessage
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


class MessageTracker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: list[TrackedMessage] = []
        self._closed = False

    def add(self, tracked: TrackedMessage) -> bool:
        """Start tracking; ``False`` once the tracker is closed (the caller must release the message)."""
        with self._lock:
            if self._closed:
                return False
            self._active.append(tracked)
            return True

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
        """True when every image of every tracked message is in the sink (nothing left to compute)."""
        with self._lock:
            return all(t.processed >= t.total for t in self._active)

    def mark_written(self, items: list[WorkItem]) -> list[TrackedMessage]:
        """Record durably written images; return the messages that are now complete (to delete)."""
        complete = []
        with self._lock:
            for item in items:
                tracked = item.tracked
                tracked.written += 1
                if not tracked.finished and tracked.written >= tracked.total:
                    tracked.finished = True
                    complete.append(tracked)
            self._active = [t for t in self._active if not t.finished]
        return complete

    def give_up(self, item: WorkItem) -> TrackedMessage | None:
        """An image of this message must be retried: return the message to hand back (once)."""
        with self._lock:
            tracked = item.tracked
            if tracked.finished:
                return None
            tracked.finished = True
            self._active = [t for t in self._active if not t.finished]
            return tracked

    def close(self) -> list[TrackedMessage]:
        """Refuse new messages and return every unfinished one (to release)."""
        with self._lock:
            self._closed = True
            remaining = [t for t in self._active if not t.finished]
            for tracked in remaining:
                tracked.finished = True
            self._active = []
            return remaining


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
