"""ensure_* for AWS Batch compute environments: create (retried while IAM propagates), update in
place or as an infrastructure update, and repair an INVALID environment that matches its spec.

Why a rerun alone cannot repair an INVALID environment: Batch checks the instance profile, subnets and
security groups when the environment is created or updated. If IAM had not yet propagated a new
instance profile at that moment (``CLIENT_ERROR - Invalid IamInstanceProfile``), the environment
stays INVALID, and since it matches its spec there is nothing to update. So an INVALID environment is
disabled, deleted and created again; a new one that is INVALID for an IAM reason is recreated up to
``CREATE_ATTEMPTS`` times.
"""

from __future__ import annotations

import logging
from typing import Any

from faceidx.infra.compute_environment import plan_update, update_policy
from faceidx.infra.diff import name_of
from faceidx.infra.hook_base import InfraHookBase, InfraReconcileError
from faceidx.infra.results import Action, FieldChange, ResourceResult

log = logging.getLogger(__name__)

KIND = "batch compute environment"
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


def _join(*notes: str) -> str:
    return " ".join(n for n in notes if n)


class ComputeEnvironmentReconcileMixin(InfraHookBase):
    def ensure_compute_environment(
        self, spec: dict[str, Any], dry_run: bool = False, job_definition: dict[str, Any] | None = None
    ) -> ResourceResult:
        """``job_definition`` (its spec) sizes the ``updatePolicy`` of an infrastructure update."""
        name = spec["computeEnvironmentName"]
        resource = f"compute environment {name}"
        current = self.describe_compute_environment(name)
        if current is not None and current.get("status") == "DELETING":
            raise InfraReconcileError(
                f"{resource} is being deleted (status DELETING). Wait until it is gone, then rerun "
                "face_infra_bootstrap to create it again."
            )
        if current is None:
            if dry_run:
                return ResourceResult(KIND, name, Action.CREATED, dry_run=True)
            arn, note = self._create_until_valid(spec, resource)
            return ResourceResult(KIND, name, Action.CREATED, arn, outputs={"arn": arn}, note=note)
        arn = current["computeEnvironmentArn"]
        status = current.get("status")
        plan = plan_update(current, spec, update_policy(job_definition or {}))
        if plan.note:
            log.warning("%s is %s", resource, plan.note)
        if plan.action is Action.NEEDS_REPLACEMENT:
            return ResourceResult(
                KIND,
                name,
                plan.action,
                arn,
                plan.changes,
                {"arn": arn},
                dry_run,
                _join(plan.note, REPLACE_HINT),
            )
        if status == "INVALID" and plan.action is Action.UNCHANGED:
            return self._replace_invalid(current, spec, resource, dry_run)
        if status == "UPDATING":
            if plan.action is Action.UNCHANGED:
                return ResourceResult(
                    KIND,
                    name,
                    plan.action,
                    arn,
                    [],
                    {"arn": arn},
                    dry_run,
                    _join("an update is still in progress (status UPDATING).", plan.note),
                )
            if not dry_run:
                raise InfraReconcileError(
                    f"{resource} is still being updated (status UPDATING: "
                    f"{current.get('statusReason') or 'no reason given'}), and AWS Batch accepts no other "
                    f"update until it is VALID. Nothing was sent. Rerun face_infra_bootstrap once "
                    f"`aws batch describe-compute-environments --compute-environments {name}` shows VALID "
                    "(an infrastructure update lasts until the running jobs have finished)."
                )
        note = plan.note
        if not dry_run:
            if plan.update_request:
                self.change("batch", "update_compute_environment", resource, **plan.update_request)
            if plan.tags:
                self.change("batch", "tag_resource", resource, resourceArn=arn, tags=plan.tags)
            if plan.update_request and plan.infrastructure_update:
                note = _join(self._infrastructure_update_state(name, resource, plan.update_request), note)
            elif plan.action is Action.UPDATED or status != "VALID":
                self.wait_compute_environment_valid(name)
        return ResourceResult(KIND, name, plan.action, arn, plan.changes, {"arn": arn}, dry_run, note)

    def _infrastructure_update_state(self, name: str, resource: str, request: dict[str, Any]) -> str:
        """Re-describe after an infrastructure update. It stays UPDATING while old instances drain, which
        may last the whole jobExecutionTimeoutMinutes: that is reported, not waited for."""
        found = self.describe_compute_environment(name)
        status = (found or {}).get("status")
        if status == "INVALID":
            raise InfraReconcileError(
                f"{resource} went INVALID after its infrastructure update: "
                f"{(found or {}).get('statusReason') or 'no reason given'}. Fix the cause in the Params or "
                "infra/ and rerun face_infra_bootstrap."
            )
        if status == "UPDATING":
            minutes = request.get("updatePolicy", {}).get("jobExecutionTimeoutMinutes")
            return (
                "infrastructure update in progress (status UPDATING): running jobs are not terminated; "
                f"instances are replaced as their jobs finish (at most {minutes} min)."
            )
        return ""

    # -- create, delete, repair ---------------------------------------------------------------------
    def _create_until_valid(self, spec: dict[str, Any], resource: str) -> tuple[str, str]:
        """Create; while the new environment is INVALID for an IAM-propagation reason, delete and create
        it again (bounded). Returns the ARN and a note for the summary."""
        name = spec["computeEnvironmentName"]
        reasons: list[str] = []
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            arn = self.change("batch", "create_compute_environment", resource, **spec)[
                "computeEnvironmentArn"
            ]
            found = self.wait_compute_environment_settled(name)
            if found.get("status") == "VALID":
                if not reasons:
                    return arn, ""
                return arn, (
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
            self._delete(found, resource)
        raise InfraReconcileError(
            f"{resource} is still INVALID after {CREATE_ATTEMPTS} creates: {reasons[-1]}. Check that the "
            "instance profile in computeResources.instanceRole exists and holds the instance role, and that "
            "the Airflow identity may iam:PassRole it. It is left INVALID; the next face_infra_bootstrap "
            "run deletes and creates it again."
        )

    def _delete(self, current: dict[str, Any], resource: str) -> None:
        """Disable (AWS deletes only a DISABLED environment), wait, delete, wait until gone."""
        name = current["computeEnvironmentName"]
        if current.get("state") != "DISABLED":
            self.change(
                "batch", "update_compute_environment", resource, computeEnvironment=name, state="DISABLED"
            )
            self.wait_compute_environment_settled(name)
        self.change("batch", "delete_compute_environment", resource, computeEnvironment=name)
        self.wait_compute_environment_deleted(name)

    def _queues_using(self, arn: str, name: str, resource: str) -> list[str]:
        queues = self.paginate("batch", "describe_job_queues", resource, "jobQueues")
        return sorted(
            q["jobQueueName"]
            for q in queues
            if q.get("status") != "DELETED"
            and any(
                item.get("computeEnvironment") in (arn, name)
                or name_of(item.get("computeEnvironment")) == name
                for item in q.get("computeEnvironmentOrder") or []
            )
        )

    def _replace_invalid(
        self, current: dict[str, Any], spec: dict[str, Any], resource: str, dry_run: bool
    ) -> ResourceResult:
        """An INVALID environment that matches its spec: nothing to update, so Batch would never check it
        again. Disable, delete and create it anew, unless a job queue still uses it."""
        name, arn = current["computeEnvironmentName"], current["computeEnvironmentArn"]
        reason = str(current.get("statusReason") or "no reason given")
        change = [FieldChange("status", "INVALID", "VALID", "replacement")]
        queues = self._queues_using(arn, name, resource)
        if queues:
            raise InfraReconcileError(
                f"{resource} is INVALID ({reason}) although it matches its spec. AWS Batch checks an "
                "environment only when it is created or updated, so rerunning face_infra_bootstrap alone "
                f"does not repair it, and it cannot be deleted while job queue(s) {', '.join(queues)} use "
                "it. Set those queues DISABLED and delete them, then rerun face_infra_bootstrap: it "
                "deletes this environment, creates it again and recreates the queues."
            )
        if dry_run:
            return ResourceResult(
                KIND,
                name,
                Action.CREATED,
                arn,
                change,
                {"arn": arn},
                True,
                f"INVALID ({reason}) although it matches its spec: would be disabled, deleted and created "
                "again.",
            )
        log.warning(
            "%s is INVALID (%s) and matches its spec: deleting it and creating it again", resource, reason
        )
        self._delete(current, resource)
        new_arn, note = self._create_until_valid(spec, resource)
        return ResourceResult(
            KIND,
            name,
            Action.CREATED,
            new_arn,
            change,
            {"arn": new_arn},
            False,
            _join(
                f"replaced: it was INVALID ({reason}) although it matched its spec, so it was disabled, "
                "deleted and created again.",
                note,
            ),
        )
