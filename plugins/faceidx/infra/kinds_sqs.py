"""The SQS resource kinds: queues (attributes, redrive policy, tags) and the work queue's access policy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faceidx.aws.errors import MISSING_QUEUE_CODES
from faceidx.infra.arns import parse_arn
from faceidx.infra.diff import canonical_policy, normalize_queue_attributes
from faceidx.infra.reconcile import Call, Describe, Held, ResourceKind, Spec
from faceidx.infra.results import FieldChange

if TYPE_CHECKING:
    from faceidx.infra.hook_base import InfraReconcileHook


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


# -- queue ------------------------------------------------------------------------------------------
def _read_queue(hook: InfraReconcileHook, spec: Spec, found: Held, resource: str) -> Held:
    """Its attributes, and its tags when the spec sets some."""
    url = found["QueueUrl"]
    attributes = hook.call("sqs", "get_queue_attributes", resource, QueueUrl=url, AttributeNames=["All"]).get(
        "Attributes", {}
    )
    tags = (
        hook.call("sqs", "list_queue_tags", resource, QueueUrl=url).get("Tags") or {}
        if spec.get("tags")
        else {}
    )
    return {"QueueUrl": url, "Attributes": attributes, "tags": tags}


def _queue_view(side: Held, spec: Spec) -> dict[str, Any]:
    """The attributes the spec sets, normalised; the tags when the spec sets some."""
    wanted = spec.get("Attributes", {})
    held = side.get("Attributes", {})
    view: dict[str, Any] = {"Attributes": normalize_queue_attributes({k: held.get(k) for k in wanted})}
    if spec.get("tags"):
        view["tags"] = side.get("tags") or {}
    return view


def _queue_updates(changes: list[FieldChange], held: Held, spec: Spec) -> list[Call]:
    url = held["QueueUrl"]
    calls = []
    changed = sorted({c.path.split(".")[1] for c in changes if c.path.startswith("Attributes.")})
    if changed:
        calls.append(
            Call(
                "set_queue_attributes",
                {"QueueUrl": url, "Attributes": {k: spec["Attributes"][k] for k in changed}},
            )
        )
    if any(c.path.startswith("tags") for c in changes):
        calls.append(Call("tag_queue", {"QueueUrl": url, "Tags": spec["tags"]}))
    return calls


QUEUE = ResourceKind(
    kind="sqs queue",
    service="sqs",
    name_field="QueueName",
    noun="SQS queue",
    describe=Describe(
        "get_queue_url",
        lambda spec: {"QueueName": spec["QueueName"]},
        absent_codes=MISSING_QUEUE_CODES,
        more=_read_queue,
    ),
    create=lambda spec, held: [Call("create_queue", spec)],
    view=_queue_view,
    replacement_fields=frozenset({"Attributes.FifoQueue"}),
    updates=_queue_updates,
    arn=lambda held, spec: held["Attributes"]["QueueArn"] if held else None,
    outputs=lambda held: queue_outputs(held["QueueUrl"], held["Attributes"]["QueueArn"]),
)


# -- queue policy -----------------------------------------------------------------------------------
def _policy_queue_name(spec: Spec) -> str:
    url = spec["QueueUrl"]
    return "work queue" if is_stand_in(url) else str(url).rstrip("/").rsplit("/", 1)[-1]


QUEUE_POLICY = ResourceKind(
    kind="sqs queue policy",
    service="sqs",
    name_field="QueueUrl",
    noun="policy of SQS queue",
    display_name=_policy_queue_name,
    describe=Describe(
        "get_queue_attributes",
        lambda spec: {"QueueUrl": spec["QueueUrl"], "AttributeNames": ["Policy", "QueueArn"]},
        pick=lambda response, resource: response.get("Attributes", {}),
        absent_when=lambda spec: is_stand_in(spec["QueueUrl"]),
    ),
    exists=lambda held, spec: canonical_policy(held.get("Policy")) is not None,
    create=lambda spec, held: [Call("set_queue_attributes", spec)],
    view=lambda side, spec: {"Attributes": {"Policy": canonical_policy(side.get("Policy"))}},
    spec_view=lambda spec: {"Attributes": {"Policy": canonical_policy(spec["Attributes"]["Policy"])}},
    updates=lambda changes, held, spec: [Call("set_queue_attributes", spec)],
    after_change=lambda held, responses: held,
    arn=lambda held, spec: (held or {}).get("QueueArn"),
)
