"""From SQS to the download queue: the receiver thread and the visibility heartbeat.

* The **receiver** long-polls (``FACEIDX_RECEIVE_WAIT_SECONDS``, ``FACEIDX_RECEIVE_MAX_MESSAGES``)
  while fewer than ``FACEIDX_PREFETCH_MESSAGES`` messages still have images to compute. It deletes
  ``s3:TestEvent``s and other events that ask for no work, logs malformed bodies with their message
  id and leaves them for the dead-letter queue, and queues every announced image for download.
  Messages received after a stop request are released at once. When nothing is in flight its poll
  never outlasts the idle deadline.
* The **heartbeat** extends the visibility of every tracked message each
  ``FACEIDX_HEARTBEAT_SECONDS``, so a long batch or a slow flush never lets SQS hand a message to
  another worker. It stops for good when the loop's progress watchdog says no image has finished for
  ``FACEIDX_PROGRESS_TIMEOUT_SECONDS``: a stuck lane must not hold its messages for hours.

A failure of the receiver (SQS still failing after botocore's retries) is reported to the loop, which
stops the worker with a non-zero exit code; it never dies silently in its thread.
"""

from __future__ import annotations

import logging
import math
import queue as queue_module
import threading
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from faceidx_worker.events import MessageKind, parse_body
from faceidx_worker.queue import QueueMessage, SqsWorkQueue
from faceidx_worker.settings import WorkerSettings
from faceidx_worker.tracking import MessageTracker, RunStats, TrackedMessage, WorkItem

log = logging.getLogger(__name__)

DRAIN_SIGNAL_SECONDS = 0.5  # a long poll unanswered this long means the queue is empty


class QueueConfigError(RuntimeError):
    """FACEIDX_QUEUE_URL names a queue that does not exist (a configuration error: exit code 2)."""


class SqsIntake:
    def __init__(
        self,
        settings: WorkerSettings,
        *,
        work_queue: SqsWorkQueue,
        tracker: MessageTracker,
        downloads: queue_module.Queue[WorkItem],
        stop: threading.Event,
        sqs_lock: threading.Lock,
        stats: RunStats,
        clock: Callable[[], float],
        idle_seconds_left: Callable[[], float | None],
        on_work: Callable[[], None],
        on_fatal: Callable[[BaseException], None],
        may_extend: Callable[[], bool] = lambda: True,
    ) -> None:
        self.settings = settings
        self.queue = work_queue
        self.tracker = tracker
        self.downloads = downloads
        self.stop = stop
        self.sqs_lock = sqs_lock
        self.stats = stats
        self.clock = clock
        self.idle_seconds_left = idle_seconds_left
        self.on_work = on_work
        self.on_fatal = on_fatal
        self.may_extend = may_extend
        self.queue_looked_empty = False  # the last poll returned nothing
        self.last_poll_count = 0  # messages the last poll returned
        self.receive_started_at: float | None = None  # set while a ReceiveMessage call is running
        self._receiver: threading.Thread | None = None
        self._heartbeat: threading.Thread | None = None

    def queue_seems_drained(self) -> bool:
        """The last poll came back empty; or it came back short of a full batch and the poll in
        progress has waited ``DRAIN_SIGNAL_SECONDS`` unanswered.

        SQS answers a long poll as soon as a message is visible, so a poll still waiting after a short
        batch means an empty queue; the loop need not wait up to ``FACEIDX_RECEIVE_WAIT_SECONDS`` for it to
        return. After a full batch a slow answer is more likely a busy endpoint than an empty queue,
        and flushing on it would only make smaller files.
        """
        if self.queue_looked_empty:
            return True
        started = self.receive_started_at
        return (
            started is not None
            and self.last_poll_count < self.settings.receive_max_messages
            and self.clock() - started >= DRAIN_SIGNAL_SECONDS
        )

    def start(self) -> None:
        self._receiver = threading.Thread(target=self._receive_loop, name="sqs-receiver", daemon=True)
        self._heartbeat = threading.Thread(target=self._heartbeat_loop, name="sqs-heartbeat", daemon=True)
        self._receiver.start()
        self._heartbeat.start()

    def join_receiver(self, timeout: float) -> bool:
        """Wait for an in-progress long poll to return; ``True`` if the receiver has ended."""
        if self._receiver is None:
            return True
        self._receiver.join(max(0.0, timeout))
        return not self._receiver.is_alive()

    def _wait_seconds(self) -> int:
        wait = self.settings.receive_wait_seconds
        left = self.idle_seconds_left()
        if left is not None:
            wait = min(wait, max(0, math.ceil(left)))
        return int(wait)

    def _receive_loop(self) -> None:
        try:
            while not self.stop.is_set():
                if self.tracker.count_computing() >= self.settings.prefetch_messages:
                    self.stop.wait(0.05)
                    continue
                self.receive_started_at = self.clock()
                messages = self.queue.receive(self._wait_seconds())
                self.receive_started_at = None
                self.last_poll_count = len(messages)
                self.queue_looked_empty = not messages
                self.accept(messages)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
                self.on_fatal(
                    QueueConfigError(
                        f"FACEIDX_QUEUE_URL: queue {self.settings.queue_url} does not exist ({code})"
                    )
                )
            else:
                self.on_fatal(exc)
        except Exception as exc:  # noqa: BLE001 - reported to the loop, which exits 1 (never a silent thread death)
            self.on_fatal(exc)

    def accept(self, messages: list[QueueMessage]) -> None:
        to_delete: list[QueueMessage] = []
        to_release: list[QueueMessage] = []
        for message in messages:
            parsed = parse_body(message.body)
            if parsed.kind is MessageKind.MALFORMED:
                self.stats.messages_malformed += 1
                log.warning(
                    "message %s (received %s times) is malformed and is left for the dead-letter queue: %s",
                    message.message_id,
                    message.receive_count,
                    parsed.reason,
                )
                continue
            if parsed.kind in (MessageKind.TEST, MessageKind.IGNORED):
                self.stats.messages_skipped += 1
                log.info("message %s needs no work (%s): deleting it", message.message_id, parsed.reason)
                to_delete.append(message)
                continue
            tracked = TrackedMessage(message=message, total=len(parsed.images), received_at=self.clock())
            if self.stop.is_set() or not self.tracker.add(tracked):
                to_release.append(message)
                continue
            self.on_work()
            for ref in parsed.images:
                self.downloads.put(WorkItem(tracked=tracked, ref=ref))
        with self.sqs_lock:
            if to_delete:
                self.queue.delete(to_delete)
            if to_release:
                self.queue.release(to_release)
                self.stats.messages_released += len(to_release)

    def _heartbeat_loop(self) -> None:
        while not self.stop.wait(self.settings.heartbeat_seconds):
            if not self.may_extend():  # the progress watchdog fired: let SQS have the messages back
                return
            with self.sqs_lock:
                active: list[Any] = [t.message for t in self.tracker.active() if not t.finished]
                if not active:
                    continue
                try:
                    self.queue.extend(active)
                except Exception:  # logged; the next beat retries, and the receiver reports a dead SQS
                    log.exception(
                        "extending the visibility of %s messages failed; they may be re-delivered "
                        "(duplicates are harmless: rows carry bucket, key and etag)",
                        len(active),
                    )
