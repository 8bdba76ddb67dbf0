"""The AWS Batch compute-environment kind: created (again while IAM propagates), updated in place or as
an infrastructure update (``compute_environment.plan_update``, pure), and repaired when INVALID but
matching its spec.

Why a rerun alone cannot repair an INVALID environment: Batch checks the instance profile, subnets and
security groups when the environment is created or updated. If IAM had not yet propagated a new
instance profile at that moment (``CLIENT_ERROR - Invalid IamInstanceProfile``), the environment
stays INVALID, and since it matches its spec there is nothing to update. So an INVALID environment is
disabled, deleted and created again (the record's ``repair``); a new one that is INVALID for an IAM
reason is recreated up to ``CREATE_ATTEMPTS`` times (its ``after_create``). An environment UPDATING
is reported, not waited for, and no other update is sent to it (``repair``).

The reconcile context may carry ``job_definition`` (its spec): it sizes the ``updatePolicy`` of an
infrastructure update.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from faceidx.infra.compute_environment import plan_update, update_policy
from faceidx.infra.diff import name_of
from faceidx.infra.kinds_batch import live_one
from faceidx.infra.reconcile import (
    Call,
    Describe,
    Held,
    Plan,
    ResourceKind,
    Spec,
    Target,
    join_notes,
)
from faceidx.infra.results import Action, FieldChange, InfraReconcileError, ResourceResult

if TYPE_CHECKING:
    from faceidx.infra.hook_base import InfraReconcileHook

log = logging.getLogger(__name__)

CREATE_ATTEMPTS = 3
# statusReason fragments that mean "IAM has not propagated the instance profile yet" (lower case).
IAM_PROPAGATION_MARKERS = ("iaminstanceprofile", "instance profile", "instance-profile")
REPLACE_HINT = (
    "Not changed: AWS cannot apply this in place. Revert the spec, or set the environment DISABLED, "
    "remove it from its job queues, delete it, and rerun face_infra_bootstrap to create it anew."
)


def is_iam_propagation(reason: str | None) -> bool:
    text = str(reason or "").lower()
    return any(marker in text for marker in IAM_PROPAGATION_MARKERS)


def _plan(held: Held, spec: Spec, context: Mapping[str, Any]) -> Plan:
    """``plan_update`` as the calls that apply it: UpdateComputeEnvironment, then TagResource."""
    plan = plan_update(held, spec, update_policy(context.get("job_definition") or {}))
    calls = []
    if plan.update_request:
        calls.append(Call("update_compute_environment", plan.update_request))
    if plan.tags:
        calls.append(Call("tag_resource", {"resourceArn": held["computeEnvironmentArn"], "tags": plan.tags}))
    return Plan(plan.changes, calls, plan.note, plan)


# -- create, delete, repair -------------------------------------------------------------------------
def _until_valid(target: Target, responses: list[Any]) -> str:
    """After the create: while the new environment is INVALID for an IAM-propagation reason, delete
    and create it again (bounded). Returns a note for the summary."""
    hook, spec, resource = target.hook, target.spec, target.resource
    name = spec["computeEnvironmentName"]
    reasons: list[str] = []
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        if attempt > 1:
            hook.change("batch", "create_compute_environment", resource, **spec)
        found = hook.wait_compute_environment_settled(name)
        if found.get("status") == "VALID":
            if not reasons:
                return ""
            return (
                f"created on attempt {attempt}: IAM had not yet propagated the instance profile "
                f"({reasons[-1]}); the INVALID environment was deleted and created again."
            )
        reason = str(found.get("statusReason") or "no reason given")
        if not is_iam_propagation(reason):
            raise InfraReconcileError(
                f"{resource} was created but is INVALID: {reason}. Waiting or recreating does not fix "
                "this: fix the cause (subnets, security groups, instance profile, service role) in the "
                "Params or infra/, then rerun face_infra_bootstrap: a changed spec is applied as an "
                "update, an unchanged one is deleted and created again."
            )
        reasons.append(reason)
        if attempt == CREATE_ATTEMPTS:
            break
        log.warning(
            "%s is INVALID (%s): IAM has not propagated the instance profile yet; deleting it and "
            "creating it again (attempt %s of %s)",
            resource,
            reason,
            attempt + 1,
            CREATE_ATTEMPTS,
        )
        _delete(hook, found, resource)
    raise InfraReconcileError(
        f"{resource} is still INVALID after {CREATE_ATTEMPTS} creates: {reasons[-1]}. Check that the "
        "instance profile in computeResources.instanceRole exists and holds the instance role, and that "
        "the Airflow identity may iam:PassRole it. It is left INVALID; the next face_infra_bootstrap "
        "run deletes and creates it again."
    )


def _delete(hook: InfraReconcileHook, current: Held, resource: str) -> None:
    """Disable (AWS deletes only a DISABLED environment), wait, delete, wait until gone."""
    name = current["computeEnvironmentName"]
    if current.get("state") != "DISABLED":
        hook.change(
            "batch", "update_compute_environment", resource, computeEnvironment=name, state="DISABLED"
        )
        hook.wait_compute_environment_settled(name)
    hook.change("batch", "delete_compute_environment", resource, computeEnvironment=name)
    hook.wait_compute_environment_deleted(name)


def _queues_using(hook: InfraReconcileHook, arn: str, name: str, resource: str) -> list[str]:
    queues = hook.paginate("batch", "describe_job_queues", resource, "jobQueues")
    return sorted(
        q["jobQueueName"]
        for q in queues
        if q.get("status") != "DELETED"
        and any(
            item.get("computeEnvironment") in (arn, name) or name_of(item.get("computeEnvironment")) == name
            for item in q.get("computeEnvironmentOrder") or []
        )
    )


def _replace_invalid(target: Target) -> ResourceResult:
    """An INVALID environment that matches its spec: nothing to update, so Batch would never check it
    again. Disable, delete and create it anew, unless a job queue still uses it."""
    hook, current, spec, resource = target.hook, target.held, target.spec, target.resource
    name, arn = current["computeEnvironmentName"], current["computeEnvironmentArn"]
    reason = str(current.get("statusReason") or "no reason given")
    change = [FieldChange("status", "INVALID", "VALID", "replacement")]
    queues = _queues_using(hook, arn, name, resource)
    if queues:
        raise InfraReconcileError(
            f"{resource} is INVALID ({reason}) although it matches its spec. AWS Batch checks an "
            "environment only when it is created or updated, so rerunning face_infra_bootstrap alone "
            f"does not repair it, and it cannot be deleted while job queue(s) {', '.join(queues)} use "
            "it. Set those queues DISABLED and delete them, then rerun face_infra_bootstrap: it "
            "deletes this environment, creates it again and recreates the queues."
        )
    if target.dry_run:
        note = (
            f"INVALID ({reason}) although it matches its spec: would be disabled, deleted and created again."
        )
        return COMPUTE_ENVIRONMENT.result(
            name, Action.CREATED, current, spec, changes=change, dry_run=True, note=note
        )
    log.warning(
        "%s is INVALID (%s) and matches its spec: deleting it and creating it again", resource, reason
    )
    _delete(hook, current, resource)
    response = hook.change("batch", "create_compute_environment", resource, **spec)
    created = _until_valid(target, [response])
    found = {"computeEnvironmentArn": response["computeEnvironmentArn"]}
    note = join_notes(
        f"replaced: it was INVALID ({reason}) although it matched its spec, so it was disabled, "
        "deleted and created again.",
        created,
    )
    return COMPUTE_ENVIRONMENT.result(name, Action.CREATED, found, spec, changes=change, note=note)


def _repair(target: Target, plan: Plan) -> ResourceResult | None:
    """INVALID but matching: replace it. UPDATING: report it, and send no other update."""
    held, resource, dry_run = target.held, target.resource, target.dry_run
    if plan.note:
        log.warning("%s is %s", resource, plan.note)
    status, action = held.get("status"), plan.action
    if status == "INVALID" and action is Action.UNCHANGED:
        return _replace_invalid(target)
    if status != "UPDATING":
        return None
    if action is Action.UNCHANGED:
        note = join_notes("an update is still in progress (status UPDATING).", plan.note)
        return COMPUTE_ENVIRONMENT.result(
            target.name, action, held, target.spec, changes=[], dry_run=dry_run, note=note
        )
    if dry_run:
        return None
    raise InfraReconcileError(
        f"{resource} is still being updated (status UPDATING: "
        f"{held.get('statusReason') or 'no reason given'}), and AWS Batch accepts no other "
        f"update until it is VALID. Nothing was sent. Rerun face_infra_bootstrap once "
        f"`aws batch describe-compute-environments --compute-environments {held['computeEnvironmentName']}` "
        "shows VALID (an infrastructure update lasts until the running jobs have finished)."
    )


def _settle(target: Target, plan: Plan, responses: list[Any]) -> str:
    """After an infrastructure update: report UPDATING (it lasts while old instances drain, up to the
    updatePolicy's jobExecutionTimeoutMinutes), never wait for it. Otherwise wait for VALID when
    something changed or it was not VALID yet."""
    hook, held, resource = target.hook, target.held, target.resource
    detail = plan.detail
    request = detail.update_request if detail is not None else None
    name = target.name
    if request and detail.infrastructure_update:
        found = hook.describe_compute_environment(name)
        status = (found or {}).get("status")
        if status == "INVALID":
            raise InfraReconcileError(
                f"{resource} went INVALID after its infrastructure update: "
                f"{(found or {}).get('statusReason') or 'no reason given'}. Fix the cause in the Params or "
                "infra/ and rerun face_infra_bootstrap."
            )
        if status == "UPDATING":
            minutes = request.get("updatePolicy", {}).get("jobExecutionTimeoutMinutes")
            state = (
                "infrastructure update in progress (status UPDATING): running jobs are not terminated; "
                f"instances are replaced as their jobs finish (at most {minutes} min)."
            )
            return join_notes(state, plan.note)
        return plan.note
    if plan.action is Action.UPDATED or held.get("status") != "VALID":
        hook.wait_compute_environment_valid(name)
    return plan.note


COMPUTE_ENVIRONMENT = ResourceKind(
    kind="batch compute environment",
    service="batch",
    name_field="computeEnvironmentName",
    noun="compute environment",
    describe=Describe(
        "describe_compute_environments",
        lambda spec: {"computeEnvironments": [spec["computeEnvironmentName"]]},
        pick=live_one("computeEnvironments"),
    ),
    create=lambda spec, held: [Call("create_compute_environment", spec)],
    after_create=_until_valid,
    plan=_plan,
    replacement_note=REPLACE_HINT,
    repair=_repair,
    after_update=_settle,
    arn=lambda held, spec: held["computeEnvironmentArn"] if held else None,
    outputs=lambda held: {"arn": held["computeEnvironmentArn"]},
)
