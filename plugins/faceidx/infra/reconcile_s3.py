"""ensure_* for the input bucket's event notification to the work queue.

The bucket is the customer's: bootstrap never creates it, and keeps every notification that is not
ours (ours are the spec's ``Id`` values and any ``faceidx-`` Id left by an older spec), because
PutBucketNotificationConfiguration replaces the whole configuration.
"""

from __future__ import annotations

from typing import Any

from faceidx.infra.arns import partition_of, s3_bucket_arn
from faceidx.infra.diff import normalize_notifications
from faceidx.infra.hook_base import InfraHookBase
from faceidx.infra.reconcile_sqs import is_stand_in
from faceidx.infra.results import Action, FieldChange, ResourceResult

OUR_ID_PREFIX = "faceidx-"
SECTIONS = ("TopicConfigurations", "QueueConfigurations", "LambdaFunctionConfigurations")


def _summary(configurations: list[dict[str, Any]]) -> list[str]:
    out = []
    for config in sorted(configurations, key=lambda c: str(c.get("Id"))):
        rules = ((config.get("Filter") or {}).get("Key") or {}).get("FilterRules") or []
        suffix = ",".join(str(r["Value"]) for r in rules) or "*"
        out.append(f"{config.get('Id')}: {suffix} -> {str(config.get('QueueArn')).rsplit(':', 1)[-1]}")
    return out


class S3ReconcileMixin(InfraHookBase):
    def ensure_bucket_notification(self, spec: dict[str, Any], dry_run: bool = False) -> ResourceResult:
        bucket = spec["Bucket"]
        resource = f"event notification of S3 bucket {bucket}"
        held = self.call(
            "s3",
            "get_bucket_notification_configuration",
            resource,
            fix=(
                "The input bucket must exist before bootstrap (it is never created here): create it, or "
                "fix the input_bucket Param / faceidx_input_bucket Variable, and make sure the AWS "
                "connection may call s3:GetBucketNotification and s3:PutBucketNotification on it."
            ),
            Bucket=bucket,
        )
        current = {k: v for k, v in held.items() if k != "ResponseMetadata"}
        wanted = list(spec["NotificationConfiguration"].get("QueueConfigurations", []))
        # The bucket is in the partition of the queue it notifies (a notification cannot cross one).
        queue_arns = [c["QueueArn"] for c in wanted if not is_stand_in(c.get("QueueArn"))]
        arn = s3_bucket_arn(partition_of(queue_arns[0]), bucket) if queue_arns else None
        our_ids = {c["Id"] for c in wanted}
        ours = [
            c
            for c in current.get("QueueConfigurations", [])
            if c.get("Id") in our_ids or str(c.get("Id", "")).startswith(OUR_ID_PREFIX)
        ]
        foreign = [c for c in current.get("QueueConfigurations", []) if c not in ours]
        if ours and normalize_notifications(ours) == normalize_notifications(wanted):
            return ResourceResult("s3 bucket notification", bucket, Action.UNCHANGED, arn, dry_run=dry_run)
        action = Action.UPDATED if ours else Action.CREATED
        changes = [FieldChange("QueueConfigurations", _summary(ours), _summary(wanted))] if ours else []
        if any(is_stand_in(c.get("QueueArn")) for c in wanted):
            return ResourceResult("s3 bucket notification", bucket, action, arn, changes, dry_run=True)
        if not dry_run:
            configuration = {k: v for k, v in current.items() if k in (*SECTIONS, "EventBridgeConfiguration")}
            configuration["QueueConfigurations"] = foreign + wanted
            for section, value in spec["NotificationConfiguration"].items():
                if section != "QueueConfigurations":
                    configuration[section] = value
            self.change(
                "s3",
                "put_bucket_notification_configuration",
                resource,
                Bucket=bucket,
                NotificationConfiguration=configuration,
            )
        return ResourceResult("s3 bucket notification", bucket, action, arn, changes, dry_run=dry_run)
