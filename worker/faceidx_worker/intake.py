"""From SQS to the download queue: the receiver thread and the visibility heartbeat.

Both act on messages only through the :class:`~faceidx_worker.tracking.MessageLedger` (which owns
every delete, release, hand-back and extension) and share stop, failure and activity with the loop
through a :class:`~faceidx_worker.tracking.RunControl`.

* The **receiver** long-polls (``FACEIDX_RECEIVE_WAIT_SECONDS``, ``FACEIDX_RECEIVE_MAX_MESSAGES``)
  while fewer than ``FACEIDX_PREFETCH_MESSAGES`` messages still have images to compute. It deletes
  ``s3:TestEvent``s and other events that ask for no work, logs malformed bodies with their message
  id and leaves them for the dead-letter queue, and queues every announced image for download.
  Messages received after a stop request are released at once. When nothing is in flight its poll
  never outlasts the idle deadline.
* The **heartbeat** extends the visibility of every tracked message each
  ``FACEIDX_HEARTBEAT_SECONDS``, so a long batch or a slow flush never lets SQS hand a message to
  another worker. It stops for good when the loop's progress watchdog clears
  ``RunControl.extending`` (no image finished for ``FACEIDX_PROGRESS_TIMEOUT_SECONDS``): a stuck lane
  must not hold its messages for hours.

A failure of the receiver (SQS still failing after botocore's retries) is reported to the loop, which
stops the worker with a non-zero exit code; it never dies silently in its thread.
"""

from __future__ import annotations

import logging
import math
import queue as queue_module
import threading

from botocore.exceptions import ClientError

from faceidx_worker.events import ImageRef, MessageKind, parse_body
from faceidx_worker.queue import QueueMessage
from faceidx_worker.settings import WorkerSettings
from faceidx_worker.tracking import MessageLedger, RunControl, WorkItem

log = logging.getLogger(__name__)

DRAIN_SIGNAL_SECONDS = 0.5  # a long poll unanswered this long means the queue is empty


class QueueConfigError(RuntimeError):
    """FACEIDX_QUEUE_URL names a queue that does not exist (a configuration error: exit code 2)."""


class SqsIntake:
    """The receiver and heartbeat threads. Every SQS decision about a message goes through the
    ``ledger``; stop, failure and activity through ``run``."""

    def __init__(
        self,
        settings: WorkerSettings,
        ledger: MessageLedger,
        downloads: queue_module.Queue[WorkItem],
        run: RunControl,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.downloads = downloads
        self.run = run
        self.queue_looked_empty = False  # the last poll returned nothing
        self.last_poll_count = 0  # messages the last poll returned
        self.receive_started_at: float | None = None  # set while a ReceiveMessage call is running
        self._receiver: threading.Thread | None = None
        self._heartbeat: threading.Thread | None = None

    def queue_seems_drained(self) -> bool:
        """The last poll came back empty; or it came back short of a full batch and the poll in
        progress has waited ``DRAIN_SIGNAL_SECONDS`` unanswered.

        SQS answers a long poll as soon as a message is visible, so a poll still waiting after a short
        batch means an empty queue; the loop need not wait up to ``FACEIDX_RECEIVE_WAIT_SECONDS`` for it
        to return. After a full batch a slow answer is more likely a busy endpoint than an empty queue,
        and flushing on it would only make smaller files.
        """
        if self.queue_looked_empty:
            return True
        started = self.receive_started_at
        return (
            started is not None
            and self.last_poll_count < self.settings.receive_max_messages
            and self.run.clock() - started >= DRAIN_SIGNAL_SECONDS
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
        """The long poll's wait; with nothing in flight, never past the idle deadline."""
        wait = self.settings.receive_wait_seconds
        if not self.ledger.count():
            left = self.settings.max_idle_seconds - (self.run.clock() - self.run.last_activity)
            wait = min(wait, max(0, math.ceil(left)))
        return int(wait)

    def _receive_loop(self) -> None:
        stop = self.run.stop
        try:
            while not stop.is_set():
                if self.ledger.count_computing() >= self.settings.prefetch_messages:
                    stop.wait(0.05)
                    continue
                self.receive_started_at = self.run.clock()
                messages = self.ledger.queue.receive(self._wait_seconds())
                self.receive_started_at = None
                self.last_poll_count = len(messages)
                self.queue_looked_empty = not messages
                self.accept(messages)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
                self.run.fail(
                    QueueConfigError(
                        f"FACEIDX_QUEUE_URL: queue {self.settings.queue_url} does not exist ({code})"
                    )
                )
            else:
                self.run.fail(exc)
        except Exception as exc:  # noqa: BLE001 - reported to the loop, which exits 1 (never a silent thread death)
            self.run.fail(exc)

    def accept(self, messages: list[QueueMessage]) -> None:
        """Parse each body: leave malformed ones for the dead-letter queue, have the ledger delete
        those that ask for no work and hold the rest, and queue the held images for download."""
        work: list[tuple[QueueMessage, tuple[ImageRef, ...]]] = []
        no_work: list[QueueMessage] = []
        for message in messages:
            parsed = parse_body(message.body)
            if parsed.kind is MessageKind.MALFORMED:
                self.ledger.stats.messages_malformed += 1
                log.warning(
                    "message %s (received %s times) is malformed and is left for the dead-letter queue: %s",
                    message.message_id,
                    message.receive_count,
                    parsed.reason,
                )
            elif parsed.kind in (MessageKind.TEST, MessageKind.IGNORED):
                self.ledger.stats.messages_skipped += 1
                log.info("message %s needs no work (%s): deleting it", message.message_id, parsed.reason)
                no_work.append(message)
            else:
                work.append((message, parsed.images))
        images = {id(message): refs for message, refs in work}
        held = self.ledger.admit(
            [(message, len(refs)) for message, refs in work],
            no_work,
            refuse=self.run.stop.is_set(),
            now=self.run.clock(),
        )
        for tracked in held:
            self.run.touch()
            for ref in images[id(tracked.message)]:
                self.downloads.put(WorkItem(tracked=tracked, ref=ref))

    def _heartbeat_loop(self) -> None:
        while not self.run.stop.wait(self.settings.heartbeat_seconds):
            if not self.run.extending.is_set():  # the progress watchdog fired: SQS gets them back
                return
            try:
                self.ledger.extend_held()
            except Exception:  # logged; the next beat retries, and the receiver reports a dead SQS
                log.exception(
                    "extending the visibility of %s messages failed; they may be re-delivered "
                    "(duplicates are harmless: rows carry bucket, key and etag)",
                    self.ledger.count(),
                )
