"""SQS for faceidx: one hook for the work queue's depth (sync, and async for triggers), its dead-letter
queue, and batched sends (face_reindex). Nothing here receives or deletes a message: that is the
worker's alone."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow.providers.amazon.aws.hooks.sqs import SqsHook
from botocore.exceptions import ClientError

from faceidx.aws.errors import (
    MISSING_QUEUE_CODES,
    AwsCallError,
    error_code,
    error_text,
    explain,
    is_access_denied,
)
from faceidx.aws.parsing import (
    DEPTH_ATTRIBUTES,
    EntryFailure,
    QueueDepth,
    classify_batch_response,
    dlq_name_from_redrive_policy,
    parse_queue_depth,
)


class SqsQueueDepthError(RuntimeError):
    """The depth could not be read; the message names the queue and what to do."""


def explain_sqs_error(queue_url: str, err: ClientError) -> str:
    if error_code(err) in MISSING_QUEUE_CODES:
        return (
            f"SQS queue {queue_url} does not exist ({error_text(err)}). Run the face_infra_bootstrap DAG "
            "to create it, or fix the queue_url Param / faceidx_queue_url Variable."
        )
    if is_access_denied(err):
        return (
            f"Not allowed to read the attributes of {queue_url} ({error_text(err)}). Grant "
            "sqs:GetQueueAttributes on this queue to the identity of the Airflow AWS connection."
        )
    return explain(err, "GetQueueAttributes", queue_url)


log = logging.getLogger(__name__)


@dataclass
class SendReport:
    """What happened to a list of entries: how many SQS accepted, and the ones it refused for good."""

    sent: int = 0
    failed: list[EntryFailure] = field(default_factory=list)
    retried: int = 0


class SqsWorkQueueHook(SqsHook):
    """The work queue: ApproximateNumberOf{Messages,MessagesNotVisible,MessagesDelayed} (sync or async),
    the dead-letter queue its redrive policy names, and SendMessageBatch with per-entry retries."""

    max_attempts = 4
    backoff_seconds = 0.5  # doubled after each attempt: 0.5, 1, 2 s

    def get_queue_depth(self, queue_url: str) -> QueueDepth:
        try:
            response = self.conn.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=list(DEPTH_ATTRIBUTES)
            )
        except ClientError as err:
            raise SqsQueueDepthError(explain_sqs_error(queue_url, err)) from err
        return parse_queue_depth(response.get("Attributes", {}))

    @staticmethod
    async def aget_queue_depth(client: Any, queue_url: str) -> QueueDepth:
        """Same read through an aiobotocore client (from ``get_async_conn``), for triggers."""
        try:
            response = await client.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=list(DEPTH_ATTRIBUTES)
            )
        except ClientError as err:
            raise SqsQueueDepthError(explain_sqs_error(queue_url, err)) from err
        return parse_queue_depth(response.get("Attributes", {}))

    def dead_letter_queue_url(self, queue_url: str) -> str | None:
        """The URL of the DLQ the queue's redrive policy names; None when it has none."""
        attributes = self.conn.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
        name = dlq_name_from_redrive_policy(attributes.get("Attributes", {}).get("RedrivePolicy"))
        return None if name is None else str(self.conn.get_queue_url(QueueName=name)["QueueUrl"])

    def send_batch(
        self, queue_url: str, entries: Sequence[dict[str, str]], sleep: Callable[[float], None] = time.sleep
    ) -> SendReport:
        """Send up to 10 entries; re-send the entries SQS failed on its side (throttling, internal
        errors) up to ``max_attempts`` times with a short backoff. Sender faults are not retried."""
        max_attempts, backoff_seconds = self.max_attempts, self.backoff_seconds
        report = SendReport()
        pending = list(entries)
        for attempt in range(1, max_attempts + 1):
            try:
                response = self.conn.send_message_batch(QueueUrl=queue_url, Entries=pending)
            except ClientError as err:
                raise AwsCallError(
                    explain(
                        err,
                        "SendMessageBatch",
                        queue_url,
                        fixes={
                            "denied": f"Grant sqs:SendMessage on {queue_url} to the Airflow AWS connection.",
                            "missing": "Run face_infra_bootstrap to create the queue, or fix the queue_url "
                            "Param / faceidx_queue_url Variable.",
                        },
                        fix="Rerun the run: messages already sent are duplicates the index removes.",
                    )
                ) from err
            outcome = classify_batch_response([e["Id"] for e in pending], response)
            report.sent += len(outcome.succeeded)
            report.failed.extend(outcome.permanent)
            if not outcome.retryable:
                return report
            if attempt == max_attempts:
                report.failed.extend(outcome.retryable)
                return report
            retry_ids = {failure.entry_id for failure in outcome.retryable}
            pending = [entry for entry in pending if entry["Id"] in retry_ids]
            report.retried += len(pending)
            delay = backoff_seconds * 2 ** (attempt - 1)
            log.warning(
                "SQS refused %s of the entries for %s (first: %s %s); re-sending them in %.1f s "
                "(attempt %s of %s)",
                len(pending),
                queue_url,
                outcome.retryable[0].code,
                outcome.retryable[0].message,
                delay,
                attempt + 1,
                max_attempts,
            )
            sleep(delay)
        return report
