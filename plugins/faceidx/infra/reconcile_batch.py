"""ensure_* for AWS Batch: job queues and the job definition (compute environments: reconcile_compute)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from faceidx.infra.diff import diff, name_of, normalize_job_definition, normalize_job_queue
from faceidx.infra.hook_base import InfraHookBase, InfraReconcileError
from faceidx.infra.results import Action, ResourceResult, action_for


class BatchReconcileMixin(InfraHookBase):
    def _describe_one(
        self, operation: str, key: str, name: str, resource: str, **kwargs: Any
    ) -> dict[str, Any] | None:
        """The resource, or None when the describe is empty (or lists it only as DELETED)."""
        items = self.call("batch", operation, resource, **kwargs).get(key, [])
        live = [i for i in items if i.get("status") != "DELETED"]
        if not live:
            return None
        item = live[0]
        if item.get("status") == "DELETING":
            raise InfraReconcileError(
                f"{resource} is being deleted (status DELETING). Wait until it is gone, then rerun "
                "face_infra_bootstrap to create it again."
            )
        return item

    # -- job queues -----------------------------------------------------------------------------
    def _with_environment_arns(self, order: list[dict[str, Any]], resource: str) -> list[dict[str, Any]]:
        """computeEnvironmentOrder with ARNs (UpdateJobQueue needs them; names are kept if absent)."""
        names = [name_of(item["computeEnvironment"]) for item in order]
        found = self.call("batch", "describe_compute_environments", resource, computeEnvironments=names).get(
            "computeEnvironments", []
        )
        arns = {ce["computeEnvironmentName"]: ce["computeEnvironmentArn"] for ce in found}
        return [
            {
                **item,
                "computeEnvironment": arns.get(
                    name_of(item["computeEnvironment"]), item["computeEnvironment"]
                ),
            }
            for item in order
        ]

    def ensure_job_queue(self, spec: dict[str, Any], dry_run: bool = False) -> ResourceResult:
        name = spec["jobQueueName"]
        resource = f"job queue {name}"
        kind = "batch job queue"
        current = self._describe_one("describe_job_queues", "jobQueues", name, resource, jobQueues=[name])
        if current is None:
            if dry_run:
                return ResourceResult(kind, name, Action.CREATED, dry_run=True)
            request = {
                **spec,
                "computeEnvironmentOrder": self._with_environment_arns(
                    spec["computeEnvironmentOrder"], resource
                ),
            }
            arn = self.change("batch", "create_job_queue", resource, **request)["jobQueueArn"]
            self.wait_job_queue_valid(name)
            return ResourceResult(kind, name, Action.CREATED, arn, outputs={"arn": arn})
        arn = current["jobQueueArn"]
        changes = diff(normalize_job_queue(current), normalize_job_queue(spec))
        action = action_for(True, changes)
        if action is Action.UPDATED and not dry_run:
            changed = {c.path.split(".")[0] for c in changes}
            update: dict[str, Any] = {
                k: spec[k]
                for k in ("state", "priority", "schedulingPolicyArn", "jobStateTimeLimitActions")
                if k in changed
            }
            if "computeEnvironmentOrder" in changed:
                update["computeEnvironmentOrder"] = self._with_environment_arns(
                    spec["computeEnvironmentOrder"], resource
                )
            if update:
                self.change("batch", "update_job_queue", resource, jobQueue=name, **update)
            if "tags" in changed:
                self.change("batch", "tag_resource", resource, resourceArn=arn, tags=spec["tags"])
            self.wait_job_queue_valid(name)
        return ResourceResult(kind, name, action, arn, changes, {"arn": arn}, dry_run)

    # -- job definition -------------------------------------------------------------------------
    def ensure_job_definition(self, spec: dict[str, Any], dry_run: bool = False) -> ResourceResult:
        """A new revision only when the content differs from the latest ACTIVE revision."""
        name = spec["jobDefinitionName"]
        resource = f"job definition {name}"
        kind = "batch job definition"
        revisions = self.paginate(
            "batch",
            "describe_job_definitions",
            resource,
            "jobDefinitions",
            jobDefinitionName=name,
            status="ACTIVE",
        )
        latest = max(revisions, key=lambda d: int(d["revision"]), default=None)
        changes = []
        if latest is not None:
            changes = [
                replace(c, how="new revision")
                for c in diff(normalize_job_definition(latest), normalize_job_definition(spec))
            ]
            if not changes:
                arn = latest["jobDefinitionArn"]
                return ResourceResult(
                    kind, name, Action.UNCHANGED, arn, outputs={"arn": arn}, dry_run=dry_run
                )
        action = Action.UPDATED if latest is not None else Action.CREATED
        note = f"revision {latest['revision']} -> next" if latest is not None else ""
        if dry_run:
            return ResourceResult(
                kind, name, action, latest and latest["jobDefinitionArn"], changes, dry_run=True, note=note
            )
        registered = self.change("batch", "register_job_definition", resource, **spec)
        arn = registered["jobDefinitionArn"]
        if latest is not None:
            note = f"revision {latest['revision']} -> {registered['revision']}"
        return ResourceResult(kind, name, action, arn, changes, {"arn": arn}, note=note)
