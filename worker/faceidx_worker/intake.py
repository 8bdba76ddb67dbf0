"""From SQS to the download queue: the receiver thread and the visibility heartbeat.

Both act on messages only through the :class:`~faceidx_worker.tracking.MessageLedger` (which owns
every delete, release, hand-back and extension) and share stop, failure and activity with the loop
through a :class:`~faceidx_worker.tracking.RunControl`.

* The **receiver** long-polls (``FACEIDX_RECEIVE_WAIT_SECONDS``, ``FACEIDX_RECEIVE_MAX_MESSAGES``)
  while fewer than ``FACEIDX_PREFETCH_MESSAGES`` messages still have images to compute. It deletes
  ``s3:TestEvent``s and other events that ask for no work, and queues every announced image for
  download. Messages received after a stop request are released at once. When nothing is in flight
  its poll never outlasts the idle deadline.
* A body it **cannot parse** (not JSON, not an S3 / SNS / EventBridge event) is released at once
  (visibility 0, :func:`release_unreadable`): each receive raises its ``ApproximateReceiveCount``, so
  the work queue's redrive policy moves it to the dead-letter queue within this run, after
  ``maxReceiveCount`` receives, instead of one worker run per receive. Until then the worker keeps
  polling (its idle exit waits for it), but such a message never counts as work. A queue without a
  redrive policy gets a bounded number of receives, then the message is left hidden and logged.
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
from faceidx_worker.runstate import RunControl
from faceidx_worker.settings import WorkerSettings
from faceidx_worker.tracking import MessageLedger, WorkItem

log = logging.getLogger(__name__)

DRAIN_SIGNAL_SECONDS = 0.5  # a long poll unanswered this long means the queue is empty
RECEIVES_WITHOUT_REDRIVE = 3  # a queue with no (readable) redrive policy: receives of a bad message
_BODY_SHOWN = 200  # characters of an unreadable body quoted in its log line


def release_unreadable(receive_count: int, max_receive_count: int | None) -> bool:
    """Whether a message the worker cannot parse is released at once (``True``) or left hidden for
    the visibility timeout (``False``), on its ``receive_count``-th receive.

    SQS moves a message to the dead-letter queue on the receive after its receive count reached the
    redrive policy's ``max_receive_count``: releasing it on every receive up to then gets it there in
    seconds. Past that count SQS did not move it (its dead-letter queue is gone), and without a redrive
    policy (``None``) no receive ever will: after ``RECEIVES_WITHOUT_REDRIVE`` receives it is left
    hidden, so a worker never spins on it.
    """
    if max_receive_count is None:
        return receive_count < RECEIVES_WITHOUT_REDRIVE
    return receive_count <= max_receive_count


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
        # unreadable messages released and not yet seen again: message id -> released at (the
        # receiver thread writes it; the loop's idle exit waits while it is not empty)
        self._redriving: dict[str, float] = {}
        self._unreadable_seen: set[str] = set()
        self._max_receive_count: int | None = None
        self._redrive_read = False
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

    def awaiting_redrive(self) -> int:
        """Unreadable messages released for SQS's redrive and not yet gone: the idle exit waits."""
        return len(self._redriving)

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
        if not self.ledger.count() and not self._redriving:
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
                started = self.receive_started_at = self.run.clock()
                messages = self.ledger.receive(self._wait_seconds())
                self.receive_started_at = None
                self.last_poll_count = len(messages)
                self.queue_looked_empty = not messages
                self._settle_redrives(started, messages)
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

    def _settle_redrives(self, poll_started: float, messages: list[QueueMessage]) -> None:
        """A poll that began after a release and did not return that message: SQS moved it to the
        dead-letter queue (or another worker has it). Either way this worker no longer waits for it."""
        returned = {message.message_id for message in messages}
        for message_id, released_at in list(self._redriving.items()):
            if released_at <= poll_started and message_id not in returned:
                del self._redriving[message_id]

    def _redrive_limit(self) -> int | None:
        """The work queue's ``maxReceiveCount``, read once, on the first unreadable message."""
        if not self._redrive_read:
            self._redrive_read = True
            try:
                self._max_receive_count = self.ledger.max_receive_count()
            except ClientError as exc:
                log.warning(
                    "cannot read the redrive policy of %s (%s): unreadable messages get %s receives, then "
                    "are left hidden. Grant the job role sqs:GetQueueAttributes on the work queue",
                    self.settings.queue_url,
                    exc.response.get("Error", {}).get("Code", exc),
                    RECEIVES_WITHOUT_REDRIVE,
                )
        return self._max_receive_count

    def _unreadable(self, messages: list[tuple[QueueMessage, str]]) -> None:
        """Release what SQS's redrive will move to the dead-letter queue; leave the rest hidden."""
        if not messages:
            return
        limit = self._redrive_limit()
        released: list[QueueMessage] = []
        for message, reason in messages:
            self.ledger.stats.messages_malformed += 1  # receives, as SQS counts them
            first = message.message_id not in self._unreadable_seen
            self._unreadable_seen.add(message.message_id)
            if release_unreadable(message.receive_count, limit):
                released.append(message)
                _log_released(message, reason, limit, first=first)
            else:
                _log_left_hidden(message, reason, limit, self.settings.visibility_timeout)
        self.ledger.release_unreadable(released)
        now = self.run.clock()
        for message in released:
            self._redriving[message.message_id] = now

    def accept(self, messages: list[QueueMessage]) -> None:
        """Parse each body: release unreadable ones for SQS's redrive to the dead-letter queue, have
        the ledger delete those that ask for no work and hold the rest, and queue the held images for
        download."""
        work: list[tuple[QueueMessage, tuple[ImageRef, ...]]] = []
        no_work: list[QueueMessage] = []
        unreadable: list[tuple[QueueMessage, str]] = []
        for message in messages:
            parsed = parse_body(message.body)
            if parsed.kind is MessageKind.MALFORMED:
                unreadable.append((message, parsed.reason))
            elif parsed.kind in (MessageKind.TEST, MessageKind.IGNORED):
                self.ledger.stats.messages_skipped += 1
                log.info("message %s needs no work (%s): deleting it", message.message_id, parsed.reason)
                no_work.append(message)
            else:
                work.append((message, parsed.images))
        self._unreadable(unreadable)
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


def _log_released(message: QueueMessage, reason: str, limit: int | None, *, first: bool) -> None:
    if not first:
        log.info(
            "unreadable message %s released again (receive %s of %s) on its way to the dead-letter queue",
            message.message_id,
            message.receive_count,
            limit if limit is not None else RECEIVES_WITHOUT_REDRIVE,
        )
        return
    where = (
        f"the work queue's redrive policy moves it to the dead-letter queue after maxReceiveCount ({limit}) "
        "receives, within this worker's run"
        if limit is not None
        else "the work queue has no redrive policy, so no dead-letter queue takes it: after "
        f"{RECEIVES_WITHOUT_REDRIVE} receives it is left hidden"
    )
    log.warning(
        "message %s is not an event the worker can read (%s); nothing is indexed from it. Body starts: %r. "
        "It is released at once (receive %s): %s. To fix it, read the message in the dead-letter queue, "
        "correct what sent it (the bucket notification, an EventBridge rule, face_reindex or a hand-made "
        "message), then delete it, or send it again in one of the shapes of docs/worker.md",
        message.message_id,
        reason,
        message.body[:_BODY_SHOWN],
        message.receive_count,
        where,
    )


def _log_left_hidden(message: QueueMessage, reason: str, limit: int | None, visibility: int) -> None:
    why = (
        f"SQS did not move it to the dead-letter queue after maxReceiveCount ({limit}) receives: check that "
        "the work queue's RedrivePolicy deadLetterTargetArn names a queue that exists"
        if limit is not None
        else "the work queue has no redrive policy (no dead-letter queue): give it a RedrivePolicy "
        "(infra/sqs/work-queue.json has one), or delete the message by hand"
    )
    log.warning(
        "message %s is not an event the worker can read (%s), received %s times. Body starts: %r. It is "
        "left hidden for FACEIDX_VISIBILITY_TIMEOUT (%ss) and will come back: %s",
        message.message_id,
        reason,
        message.receive_count,
        message.body[:_BODY_SHOWN],
        visibility,
        why,
    )
