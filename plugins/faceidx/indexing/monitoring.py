"""Reads the queue-health figures for ``face_indexing``: CloudWatch's ApproximateAgeOfOldestMessage and
the DLQ depth, through the AWS layer's hooks; :func:`faceidx.indexing.health.assess_queue_health`
judges them.

Monitoring must never stop indexing: an unreadable figure becomes a note in the decision table
(saying which permission is missing), not a failed task.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from faceidx.aws.cloudwatch import CloudWatchSqsMetricsHook
from faceidx.aws.errors import error_text
from faceidx.aws.sqs import SqsQueueDepthError, SqsWorkQueueHook
from faceidx.indexing.health import QueueHealth, assess_queue_health


def read_queue_health(
    queue_url: str, max_message_age_seconds: int, aws_conn_id: str | None, region_name: str | None = None
) -> QueueHealth:
    notes: list[str] = []
    queue_name = queue_url.rstrip("/").rsplit("/", 1)[-1]
    age = None
    try:
        age = CloudWatchSqsMetricsHook(aws_conn_id=aws_conn_id, region_name=region_name).oldest_message_age(
            queue_name
        )
        if age is None:
            notes.append("no ApproximateAgeOfOldestMessage datapoint in the last 15 minutes")
    except ClientError as err:
        notes.append(
            f"oldest message age unreadable ({error_text(err)}): grant cloudwatch:GetMetricStatistics"
        )

    sqs = SqsWorkQueueHook(aws_conn_id=aws_conn_id, region_name=region_name)
    dlq_url = dlq_depth = None
    try:
        dlq_url = sqs.dead_letter_queue_url(queue_url)
        if dlq_url is None:
            notes.append("the work queue has no redrive policy: failed messages are retried forever")
        else:
            dlq_depth = sqs.get_queue_depth(dlq_url).total
    except ClientError as err:
        notes.append(f"dead-letter queue unreadable ({error_text(err)}): grant sqs:GetQueueAttributes on it")
    except SqsQueueDepthError as err:
        notes.append(f"dead-letter queue unreadable: {err}")
    return assess_queue_health(age, dlq_url, dlq_depth, max_message_age_seconds, notes)
