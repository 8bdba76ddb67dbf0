"""SQS work queue: receive, acknowledge (delete), release and extend visibility over an injected client.

Batch calls take at most 10 entries and report failures per entry; every failed entry is logged with
its message id and returned, never ignored. Transient errors are retried by botocore (the client is
built with ``retries={"mode": "standard"}``); what still fails reaches the caller.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

BATCH_LIMIT = 10


@dataclass(frozen=True)
class QueueMessage:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int = 1


def _chunks(items: Sequence[QueueMessage], size: int = BATCH_LIMIT) -> Iterable[Sequence[QueueMessage]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqsWorkQueue:
    """The worker's view of one SQS queue."""

    def __init__(
        self,
        client: Any,
        queue_url: str,
        *,
        wait_seconds: int = 20,
        max_messages: int = 10,
        visibility_timeout: int = 300,
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.wait_seconds = wait_seconds
        self.max_messages = max_messages
        self.visibility_timeout = visibility_timeout

    def receive(self, wait_seconds: int | None = None) -> list[QueueMessage]:
        """One long poll. The messages stay invisible for ``visibility_timeout`` seconds."""
        response = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.max_messages,
            WaitTimeSeconds=self.wait_seconds if wait_seconds is None else wait_seconds,
            VisibilityTimeout=self.visibility_timeout,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        messages = []
        for raw in response.get("Messages", []):
            attributes = raw.get("Attributes", {})
            messages.append(
                QueueMessage(
                    message_id=raw["MessageId"],
                    receipt_handle=raw["ReceiptHandle"],
                    body=raw.get("Body", ""),
                    receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
                )
            )
        return messages

    def max_receive_count(self) -> int | None:
        """The ``maxReceiveCount`` of the queue's redrive policy; ``None`` when it has none.

        SQS moves a message to the dead-letter queue on the receive after its receive count reached
        this. A ``ClientError`` (e.g. AccessDenied without ``sqs:GetQueueAttributes``) reaches the caller.
        """
        response = self.client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["RedrivePolicy"])
        raw = response.get("Attributes", {}).get("RedrivePolicy")
        if not raw:
            return None
        policy = json.loads(raw) if isinstance(raw, str) else raw
        count = policy.get("maxReceiveCount") if isinstance(policy, dict) else None
        return int(count) if count is not None and policy.get("deadLetterTargetArn") else None

    def delete(self, messages: Sequence[QueueMessage]) -> list[QueueMessage]:
        """Delete in batches of 10. Returns the messages SQS refused (logged), which will come back."""
        failed: list[QueueMessage] = []
        for chunk in _chunks(messages):
            response = self.client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(chunk)],
            )
            failed.extend(self._failures(chunk, response, "delete"))
        return failed

    def release(self, messages: Sequence[QueueMessage]) -> list[QueueMessage]:
        """Make the messages visible again at once (visibility 0), for another worker to take."""
        return self.change_visibility(messages, 0, action="release")

    def extend(self, messages: Sequence[QueueMessage], timeout: int | None = None) -> list[QueueMessage]:
        """Keep long-running messages invisible for another ``timeout`` seconds (heartbeat)."""
        return self.change_visibility(
            messages, self.visibility_timeout if timeout is None else timeout, action="extend"
        )

    def change_visibility(
        self, messages: Sequence[QueueMessage], timeout: int, *, action: str = "change visibility"
    ) -> list[QueueMessage]:
        failed: list[QueueMessage] = []
        for chunk in _chunks(messages):
            response = self.client.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": timeout}
                    for i, m in enumerate(chunk)
                ],
            )
            failed.extend(self._failures(chunk, response, action))
        return failed

    def _failures(
        self, chunk: Sequence[QueueMessage], response: dict[str, Any], action: str
    ) -> list[QueueMessage]:
        failed = []
        for entry in response.get("Failed", []):
            message = chunk[int(entry["Id"])]
            failed.append(message)
            log.warning(
                "SQS refused to %s message %s: %s %s (sender fault: %s). If the receipt handle expired the "
                "message was re-delivered and will be indexed again (duplicates are removed by "
                "image_bucket, image_key, image_etag)",
                action,
                message.message_id,
                entry.get("Code"),
                entry.get("Message", ""),
                entry.get("SenderFault"),
            )
        return failed
