"""CloudWatch for faceidx: the AWS/SQS metrics ``face_indexing`` watches (the age of the oldest message)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook


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
