"""The worker's in-flight SQS messages and run state: the one owner of delete, release and hand-back.

A message may announce several images. :class:`MessageLedger` deletes it only when the rows of *all*
its images are durably written; hands it back to SQS when one of its images hit a transient failure or
a denial; releases it (visibility 0) when the worker stops first. It also receives, so every SQS call
of the worker goes through it. What the threads share with the loop (stop, activity, counters) is in
:mod:`faceidx_worker.runstate`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from faceidx_worker.events import ImageRef
from faceidx_worker.queue import QueueMessage, SqsWorkQueue
from faceidx_worker.runstate import RunStats


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
    def receive(self, wait_seconds: int) -> list[QueueMessage]:
        """One long poll of the work queue (the receiver thread's only SQS call)."""
        return self.queue.receive(wait_seconds)

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
