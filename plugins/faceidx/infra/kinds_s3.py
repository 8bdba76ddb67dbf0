"""The S3 resource kind: the input bucket's event notification to the work queue.

The bucket is the customer's: bootstrap never creates it, and keeps every notification that is not
ours (ours are the spec's ``Id`` values and any ``faceidx-`` Id left by an older spec), because
PutBucketNotificationConfiguration replaces the whole configuration. So "absent" means "none of our
notifications is there", and create and update are the same call: the bucket's other notifications
with ours put in.
"""

from __future__ import annotations

from typing import Any

from faceidx.infra.arns import partition_of, s3_bucket_arn
from faceidx.infra.diff import normalize_notifications
from faceidx.infra.kinds_sqs import is_stand_in
from faceidx.infra.notification_overlap import overlap_message, overlaps
from faceidx.infra.reconcile import (
    Call,
    Describe,
    Held,
    Plan,
    ResourceKind,
    Spec,
    Target,
)
from faceidx.infra.results import FieldChange, InfraReconcileError
from faceidx.infra.test_events import drain_test_events

OUR_ID_PREFIX = "faceidx-"
SECTIONS = ("TopicConfigurations", "QueueConfigurations", "LambdaFunctionConfigurations")
MISSING_BUCKET_FIX = (
    "The input bucket must exist before bootstrap (it is never created here): create it, or "
    "fix the input_bucket Param / faceidx_input_bucket Variable, and make sure the AWS "
    "connection may call s3:GetBucketNotification and s3:PutBucketNotification on it."
)


def _summary(configurations: list[dict[str, Any]]) -> list[str]:
    out = []
    for config in sorted(configurations, key=lambda c: str(c.get("Id"))):
        rules = ((config.get("Filter") or {}).get("Key") or {}).get("FilterRules") or []
        suffix = ",".join(str(r["Value"]) for r in rules) or "*"
        out.append(f"{config.get('Id')}: {suffix} -> {str(config.get('QueueArn')).rsplit(':', 1)[-1]}")
    return out


def _wanted(spec: Spec) -> list[dict[str, Any]]:
    return list(spec["NotificationConfiguration"].get("QueueConfigurations", []))


def ours(held: Held, spec: Spec) -> list[dict[str, Any]]:
    """The bucket's queue notifications that are ours (by the spec's Ids or our Id prefix)."""
    our_ids = {c["Id"] for c in _wanted(spec)}
    return [
        c
        for c in held.get("QueueConfigurations", [])
        if c.get("Id") in our_ids or str(c.get("Id", "")).startswith(OUR_ID_PREFIX)
    ]


def _plan(held: Held, spec: Spec, context: Any) -> Plan:
    mine, wanted = ours(held, spec), _wanted(spec)
    if normalize_notifications(mine) == normalize_notifications(wanted):
        return Plan([])
    return Plan([FieldChange("QueueConfigurations", _summary(mine), _summary(wanted))], _put(spec, held))


def _put(spec: Spec, held: Held) -> list[Call]:
    """The whole configuration: the bucket's other notifications, ours, and the spec's other sections."""
    foreign = [c for c in held.get("QueueConfigurations", []) if c not in ours(held, spec)]
    configuration = {k: v for k, v in held.items() if k in (*SECTIONS, "EventBridgeConfiguration")}
    configuration["QueueConfigurations"] = foreign + _wanted(spec)
    for section, value in spec["NotificationConfiguration"].items():
        if section != "QueueConfigurations":
            configuration[section] = value
    request = {"Bucket": spec["Bucket"], "NotificationConfiguration": configuration}
    return [Call("put_bucket_notification_configuration", request)]


def _check_overlaps(hook: Any, spec: Spec, held: Held, resource: str) -> Held:
    """Refuse, before any change, a configuration S3 would reject: another of the bucket's
    notifications matching the same events and keys as ours (moto accepts it; AWS does not)."""
    mine = ours(held, spec)
    others = {
        section: [c for c in held.get(section, []) if section != "QueueConfigurations" or c not in mine]
        for section in SECTIONS
    }
    found = overlaps(_wanted(spec), others)
    if found:
        raise InfraReconcileError(overlap_message(spec["Bucket"], found))
    return held


def _after_put(target: Target, responses: list[Any]) -> str:
    """S3 posts an ``s3:TestEvent`` to the work queue after each put: take it out at once, so the
    next face_indexing tick does not start a GPU worker only to delete it."""
    if not responses:
        return ""
    queue_arns = sorted({c["QueueArn"] for c in _wanted(target.spec)})
    return " ".join(drain_test_events(target.hook, arn, target.spec["Bucket"]) for arn in queue_arns)


def _arn(held: Held | None, spec: Spec) -> str | None:
    """The bucket is in the partition of the queue it notifies (a notification cannot cross one)."""
    queue_arns = [c["QueueArn"] for c in _wanted(spec) if not is_stand_in(c.get("QueueArn"))]
    return s3_bucket_arn(partition_of(queue_arns[0]), spec["Bucket"]) if queue_arns else None


BUCKET_NOTIFICATION = ResourceKind(
    kind="s3 bucket notification",
    service="s3",
    name_field="Bucket",
    noun="event notification of S3 bucket",
    describe=Describe(
        "get_bucket_notification_configuration",
        lambda spec: {"Bucket": spec["Bucket"]},
        pick=lambda response, resource: {k: v for k, v in response.items() if k != "ResponseMetadata"},
        more=_check_overlaps,
        fix=MISSING_BUCKET_FIX,
    ),
    exists=lambda held, spec: bool(ours(held, spec)),
    create=_put,
    plan=_plan,
    after_create=_after_put,
    after_update=lambda target, plan, responses: _after_put(target, responses) or plan.note,
    after_change=lambda held, responses: held,
    arn=_arn,
)
