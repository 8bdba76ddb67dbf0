"""ensure_* for SQS: queues (with their redrive policy and tags) and the work queue's access policy."""

from __future__ import annotations

from typing import Any

from faceidx.aws.errors import MISSING_QUEUE_CODES
from faceidx.infra.arns import parse_arn
from faceidx.infra.diff import canonical_policy, diff, normalize_queue_attributes
from faceidx.infra.hook_base import InfraHookBase
from faceidx.infra.results import Action, FieldChange, ResourceResult, action_for

QUEUE_ABSENT = tuple(sorted(MISSING_QUEUE_CODES))
REPLACEMENT_ATTRIBUTES = frozenset({"FifoQueue"})


def is_stand_in(value: Any) -> bool:
    """A value rendered for a resource that a dry run has not created (see validate.stand_in)."""
    return isinstance(value, str) and value.startswith("<") and value.endswith("known after create>")


def queue_outputs(url: str, arn: str) -> dict[str, Any]:
    """What later specs read from a queue: its URL and ARN, and the account, partition and region of
    that ARN (``arn:${PARTITION}:...`` in the specs)."""
    parsed = parse_arn(arn)
    return {
        "url": url,
        "arn": arn,
        "account_id": parsed.account_id,
        "partition": parsed.partition,
        "region": parsed.region,
    }


class SqsReconcileMixin(InfraHookBase):
    def _queue_outputs(self, url: str, resource: str) -> dict[str, Any]:
        arn = self.call("sqs", "get_queue_attributes", resource, QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        return queue_outputs(url, arn)

    def ensure_queue(self, spec: dict[str, Any], dry_run: bool = False) -> ResourceResult:
        name = spec["QueueName"]
        resource = f"SQS queue {name}"
        found = self.describe("sqs", "get_queue_url", resource, QUEUE_ABSENT, QueueName=name)
        if found is None:
            if dry_run:
                return ResourceResult("sqs queue", name, Action.CREATED, dry_run=True)
            url = self.change("sqs", "create_queue", resource, **spec)["QueueUrl"]
            outputs = self._queue_outputs(url, resource)
            return ResourceResult("sqs queue", name, Action.CREATED, outputs["arn"], outputs=outputs)
        url = found["QueueUrl"]
        held = self.call("sqs", "get_queue_attributes", resource, QueueUrl=url, AttributeNames=["All"])
        attributes = held.get("Attributes", {})
        wanted = spec.get("Attributes", {})
        current = normalize_queue_attributes({k: attributes.get(k) for k in wanted})
        changes = [
            FieldChange(
                f"Attributes.{c.path}",
                c.current,
                c.desired,
                "replacement" if c.path in REPLACEMENT_ATTRIBUTES else "in place",
            )
            for c in diff(current, normalize_queue_attributes(wanted))
        ]
        tags_wanted = spec.get("tags") or {}
        if tags_wanted:
            tags = self.call("sqs", "list_queue_tags", resource, QueueUrl=url).get("Tags") or {}
            changes.extend(diff({"tags": tags}, {"tags": tags_wanted}))
        action = action_for(True, changes)
        if action is Action.UPDATED and not dry_run:
            changed = {c.path.split(".")[1] for c in changes if c.path.startswith("Attributes.")}
            if changed:
                self.change(
                    "sqs",
                    "set_queue_attributes",
                    resource,
                    QueueUrl=url,
                    Attributes={k: wanted[k] for k in sorted(changed)},
                )
            if any(c.path.startswith("tags") for c in changes):
                self.change("sqs", "tag_queue", resource, QueueUrl=url, Tags=tags_wanted)
        outputs = queue_outputs(url, attributes["QueueArn"])
        return ResourceResult("sqs queue", name, action, outputs["arn"], changes, outputs, dry_run)

    def ensure_queue_policy(self, spec: dict[str, Any], dry_run: bool = False) -> ResourceResult:
        url = spec["QueueUrl"]
        name = str(url).rstrip("/").rsplit("/", 1)[-1]
        resource = f"policy of SQS queue {name}"
        if is_stand_in(url):
            return ResourceResult("sqs queue policy", "work queue", Action.CREATED, dry_run=True)
        held = self.call(
            "sqs", "get_queue_attributes", resource, QueueUrl=url, AttributeNames=["Policy", "QueueArn"]
        )
        attributes = held.get("Attributes", {})
        current = canonical_policy(attributes.get("Policy"))
        changes = (
            diff(current, canonical_policy(spec["Attributes"]["Policy"]), "Attributes.Policy")
            if current
            else []
        )
        action = action_for(current is not None, changes)
        if action in (Action.CREATED, Action.UPDATED) and not dry_run:
            self.change("sqs", "set_queue_attributes", resource, **spec)
        return ResourceResult(
            "sqs queue policy", name, action, attributes.get("QueueArn"), changes, dry_run=dry_run
        )
