"""Reads the queue-health figures: CloudWatch's ApproximateAgeOfOldestMessage and the DLQ depth.

Monitoring must never stop indexing: an unreadable figure becomes a note in the decision table
(saying which permission is missing), not a failed task.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.exceptions import ClientError

from faceidx.aws.errors import error_text
from faceidx.aws.sqs import SqsQueueDepthError, SqsWorkQueueHook
from faceidx.indexing.health import QueueHealth, assess_queue_health


def _error(err: ClientError) -> str:
    return error_text(err)


class CloudWatchSqsMetricsHook(AwsBaseHook):
    """AWS/SQS metrics from CloudWatch."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs["client_type"] = "cloudwatch"
        super().__init__(*args, **kwargs)

    def oldest_message_age(
        self, queue_name: str, lookback: timedelta = timedelta(minutes=15)
    ) -> float | None:
        """Latest ``Maximum`` of ApproximateAgeOfOldestMessage, or None when there is no datapoint."""
        now = datetime.now(UTC)
        response = self.conn.get_metric_statistics(
            Namespace="AWS/SQS",
            MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": queue_name}],
            StartTime=now - lookback,
            EndTime=now + timedelta(minutes=1),
            Period=60,
            Statistics=["Maximum"],
        )
        points = sorted(response.get("Datapoints", []), key=lambda p: p["Timestamp"])
        return float(points[-1]["Maximum"]) if points else None


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
        notes.append(f"oldest message age unreadable ({_error(err)}): grant cloudwatch:GetMetricStatistics")

    sqs = SqsWorkQueueHook(aws_conn_id=aws_conn_id, region_name=region_name)
    dlq_url = dlq_depth = None
    try:
        dlq_url = sqs.dead_letter_queue_url(queue_url)
        if dlq_url is None:
            notes.append("the work queue has no redrive policy: failed messages are retried forever")
        else:
            dlq_depth = sqs.get_queue_depth(dlq_url).total
    except ClientError as err:
        notes.append(f"dead-letter queue unreadable ({_error(err)}): grant sqs:GetQueueAttributes on it")
    except SqsQueueDepthError as err:
        notes.append(f"dead-letter queue unreadable: {err}")
    return assess_queue_health(age, dlq_url, dlq_depth, max_message_age_seconds, notes)
