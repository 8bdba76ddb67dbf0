"""The AWS Batch resource kinds: job queues and the job definition (compute environments:
``kinds_compute``).

A job definition is never updated: a new revision is registered, and only when its content differs
from the latest ACTIVE revision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from faceidx.infra.diff import diff, name_of, normalize_job_definition, normalize_job_queue
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

if TYPE_CHECKING:
    pass


def live_one(key: str) -> Callable[[Any, str], Held | None]:
    """Pick the one resource of a Batch describe: None when the list is empty (or lists it only as
    DELETED); an error when it is being deleted (a create would fail until it is gone)."""

    def pick(response: Any, resource: str) -> Held | None:
        live = [i for i in response.get(key, []) if i.get("status") != "DELETED"]
        if not live:
            return None
        if live[0].get("status") == "DELETING":
            raise InfraReconcileError(
                f"{resource} is being deleted (status DELETING). Wait until it is gone, then rerun "
                "face_infra_bootstrap to create it again."
            )
        return live[0]

    return pick


# -- job queues -------------------------------------------------------------------------------------
def _with_environment_arns(target: Target) -> Spec:
    """The spec with computeEnvironmentOrder as ARNs (UpdateJobQueue needs them; names are kept if
    absent)."""
    spec, resource = target.spec, target.resource
    order = spec["computeEnvironmentOrder"]
    names = [name_of(item["computeEnvironment"]) for item in order]
    found = target.hook.call(
        "batch", "describe_compute_environments", resource, computeEnvironments=names
    ).get("computeEnvironments", [])
    arns = {ce["computeEnvironmentName"]: ce["computeEnvironmentArn"] for ce in found}
    resolved = [
        {
            **item,
            "computeEnvironment": arns.get(name_of(item["computeEnvironment"]), item["computeEnvironment"]),
        }
        for item in order
    ]
    return {**spec, "computeEnvironmentOrder": resolved}


JOB_QUEUE_UPDATABLE = (
    "state",
    "priority",
    "schedulingPolicyArn",
    "jobStateTimeLimitActions",
    "computeEnvironmentOrder",
)


def _job_queue_updates(changes: list[FieldChange], held: Held, spec: Spec) -> list[Call]:
    changed = {c.path.split(".")[0] for c in changes}
    update = {k: spec[k] for k in JOB_QUEUE_UPDATABLE if k in changed}
    calls = []
    if update:
        calls.append(Call("update_job_queue", {"jobQueue": spec["jobQueueName"], **update}))
    if "tags" in changed:
        calls.append(Call("tag_resource", {"resourceArn": held["jobQueueArn"], "tags": spec["tags"]}))
    return calls


JOB_QUEUE = ResourceKind(
    kind="batch job queue",
    service="batch",
    name_field="jobQueueName",
    noun="job queue",
    describe=Describe(
        "describe_job_queues",
        lambda spec: {"jobQueues": [spec["jobQueueName"]]},
        pick=live_one("jobQueues"),
    ),
    create=lambda spec, held: [Call("create_job_queue", spec)],
    prepare=_with_environment_arns,
    view=lambda side, spec: normalize_job_queue(side),
    updates=_job_queue_updates,
    waiter=lambda target: target.hook.wait_job_queue_valid(target.spec["jobQueueName"]),
    wait_after_update=True,
    arn=lambda held, spec: held["jobQueueArn"] if held else None,
    outputs=lambda held: {"arn": held["jobQueueArn"]},
)


# -- job definition ---------------------------------------------------------------------------------
def _latest(revisions: list[dict[str, Any]], resource: str) -> Held | None:
    return max(revisions, key=lambda d: int(d["revision"]), default=None)


def _job_definition_plan(held: Held, spec: Spec, context: Any) -> Plan:
    """Compared with the latest ACTIVE revision; any difference is a new revision."""
    changes = [
        FieldChange(c.path, c.current, c.desired, "new revision")
        for c in diff(normalize_job_definition(held), normalize_job_definition(spec))
    ]
    note = f"revision {held['revision']} -> next" if changes else ""
    return Plan(changes, [Call("register_job_definition", spec)] if changes else [], note)


def _registered(target: Target, plan: Plan, responses: list[Any]) -> str:
    held = target.held or {}
    return f"revision {held.get('revision')} -> {responses[-1]['revision']}" if responses else plan.note


JOB_DEFINITION = ResourceKind(
    kind="batch job definition",
    service="batch",
    name_field="jobDefinitionName",
    noun="job definition",
    describe=Describe(
        "describe_job_definitions",
        lambda spec: {"jobDefinitionName": spec["jobDefinitionName"], "status": "ACTIVE"},
        paginate="jobDefinitions",
        pick=_latest,
    ),
    create=lambda spec, held: [Call("register_job_definition", spec)],
    plan=_job_definition_plan,
    after_update=_registered,
    # What RegisterJobDefinition answers (name, ARN, revision): a describe may not list it yet.
    after_change=lambda held, responses: responses[-1],
    arn=lambda held, spec: held["jobDefinitionArn"] if held else None,
    outputs=lambda held: {"arn": held["jobDefinitionArn"]},
)
