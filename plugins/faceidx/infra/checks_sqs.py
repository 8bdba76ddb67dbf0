"""Our own checks of the SQS specs: the things SQS accepts but that lose messages. Pure."""

from __future__ import annotations

from typing import Any

from faceidx.infra.checks import ERROR, Finding

# SQS's own default when MessageRetentionPeriod is not set (4 days).
DEFAULT_RETENTION_SECONDS = 345_600


def retention_seconds(queue: dict[str, Any]) -> int:
    return int((queue.get("Attributes") or {}).get("MessageRetentionPeriod", DEFAULT_RETENTION_SECONDS))


def check_dead_letter_retention(
    work_queue: dict[str, Any], dead_letter_queue: dict[str, Any]
) -> list[Finding]:
    """The DLQ must keep messages longer than the work queue does.

    A message moved to a dead-letter queue keeps its original enqueue time, so it expires from the DLQ
    once the DLQ's retention has passed *since it was first sent*. With equal retentions a message that
    failed late in its life is deleted from the DLQ at once; the time a failed message is sure to stay
    in the DLQ is the difference between the two retentions.
    """
    work, dead = retention_seconds(work_queue), retention_seconds(dead_letter_queue)
    if dead > work:
        return []
    return [
        Finding(
            ERROR,
            f"sqs queue {dead_letter_queue.get('QueueName')}",
            f"keeps messages for {dead} s, no longer than the work queue {work_queue.get('QueueName')} "
            f"({work} s). A message keeps its original enqueue time when it is moved to the dead-letter "
            "queue, so a message that failed late would expire from the DLQ almost at once, unseen.",
            "Give the dead-letter queue a longer MessageRetentionPeriod than the work queue (faceidx uses "
            "7 days for the work queue and 14 days, the SQS maximum, for the DLQ).",
        )
    ]
