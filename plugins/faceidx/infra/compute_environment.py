"""How each compute-environment change can be applied: in place, as an infrastructure update, or only
by replacing the environment. Pure; the rules are AWS Batch's (docs/infrastructure.md).

Scaling changes apply in place, without replacing instances: ``state``, ``minvCpus``, ``maxvCpus``,
``desiredvCpus`` and the top-level ``tags``.

Infrastructure changes (allocation strategy, instance types, ``bidPercentage``, subnets, security
groups, instance role, EC2 tags, image, launch template) apply in place as an *infrastructure update*
only when both the old and the new strategy are BEST_FIT_PROGRESSIVE, SPOT_CAPACITY_OPTIMIZED or
SPOT_PRICE_CAPACITY_OPTIMIZED and the environment uses the Batch service-linked role. Otherwise they
need a replacement.

``serviceRole`` changes in place only from one custom role to another. Anything else (``type``
MANAGED/UNMANAGED, ``spotIamFleetRole``, ...) needs a replacement.

Every update that includes an infrastructure change carries an explicit ``updatePolicy``: running jobs
are not terminated, and they get as long as the job definition's attempt timeout to finish before
their old instance is replaced. A worker hands over by itself before that timeout (MAX_RUN_SECONDS),
so no worker is cut short by an update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from faceidx.infra.checks import (
    AL2_IMAGE_TYPES,
    GPU_IMAGE_TYPE,
    IN_PLACE_STRATEGIES,
    is_service_linked_role,
)
from faceidx.infra.diff import diff, normalize_compute_environment
from faceidx.infra.results import Action, FieldChange, action_for

IN_PLACE = "in place"
INFRASTRUCTURE_UPDATE = "infrastructure update"
REPLACEMENT = "replacement"

SCALING_FIELDS = frozenset({"state", "computeResources.minvCpus", "computeResources.maxvCpus",
                            "computeResources.desiredvCpus", "unmanagedvCpus"})  # fmt: skip
INFRASTRUCTURE_FIELDS = frozenset(
    f"computeResources.{name}"
    for name in (
        "allocationStrategy",
        "instanceTypes",
        "bidPercentage",
        "subnets",
        "securityGroupIds",
        "instanceRole",
        "tags",
        "ec2KeyPair",
        "imageId",
        "launchTemplate",
        "ec2Configuration",
        "placementGroup",
        "type",
        "updateToLatestImageVersion",
    )
)


# UpdatePolicy.jobExecutionTimeoutMinutes bounds in botocore's model; AWS's default is 30.
JOB_EXECUTION_TIMEOUT_MINUTES = (1, 7200)


def update_policy(job_definition: dict[str, Any]) -> dict[str, Any]:
    """The ``updatePolicy`` of an infrastructure update: never terminate running jobs, and give them
    the job definition's attempt timeout (``timeout.attemptDurationSeconds``, in whole minutes) to
    finish. Without a timeout, AWS's 30-minute default would cut a draining worker short, so the bound
    is then the most AWS allows."""
    low, high = JOB_EXECUTION_TIMEOUT_MINUTES
    seconds = (job_definition.get("timeout") or {}).get("attemptDurationSeconds")
    minutes = math.ceil(int(seconds) / 60) if seconds else high
    return {"terminateJobsOnUpdate": False, "jobExecutionTimeoutMinutes": max(low, min(high, minutes))}


def image_types(ce: dict[str, Any]) -> list[str]:
    return [str(c.get("imageType")) for c in (ce.get("computeResources") or {}).get("ec2Configuration") or []]


def amazon_linux_2_note(current: dict[str, Any]) -> str:
    """A note when a described environment runs (or may run) Amazon Linux 2; empty otherwise."""
    held = image_types(current)
    if held and not any(i in AL2_IMAGE_TYPES for i in held):
        return ""
    what = (
        f"imageType {', '.join(held)}" if held else "no ec2Configuration (AL2 if created before 2026-01-12)"
    )
    return (
        f"on Amazon Linux 2 ({what}): AWS ends support for the ECS AL2 AMIs on 2026-06-30; the spec "
        f"moves it to {GPU_IMAGE_TYPE}."
    )


def _field(path: str) -> str:
    """``computeResources.tags.project`` -> ``computeResources.tags``; ``tags.x`` -> ``tags``."""
    parts = path.split(".")
    return ".".join(parts[:2]) if parts[0] == "computeResources" else parts[0]


def infrastructure_update_allowed(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    old = (current.get("computeResources") or {}).get("allocationStrategy", "BEST_FIT")
    new = (desired.get("computeResources") or {}).get("allocationStrategy", old)
    role = current.get("serviceRole")
    uses_linked_role = not role or is_service_linked_role(str(role))
    return old in IN_PLACE_STRATEGIES and new in IN_PLACE_STRATEGIES and uses_linked_role


def classify(change: FieldChange, current: dict[str, Any], desired: dict[str, Any]) -> str:
    name = _field(change.path)
    if name in SCALING_FIELDS or name == "tags":
        return IN_PLACE
    if name in INFRASTRUCTURE_FIELDS:
        return INFRASTRUCTURE_UPDATE if infrastructure_update_allowed(current, desired) else REPLACEMENT
    if name == "serviceRole":
        old, new = str(current.get("serviceRole") or ""), str(desired.get("serviceRole") or "")
        custom_to_custom = (
            bool(old and new) and not is_service_linked_role(old) and not is_service_linked_role(new)
        )
        return IN_PLACE if custom_to_custom else REPLACEMENT
    return REPLACEMENT


@dataclass
class ComputeEnvironmentPlan:
    action: Action
    changes: list[FieldChange]
    update_request: dict[str, Any] | None = None  # UpdateComputeEnvironment arguments
    tags: dict[str, str] = field(default_factory=dict)  # top-level tags to (re)apply with TagResource
    note: str = ""  # what an account owner should know (Amazon Linux 2)

    @property
    def infrastructure_update(self) -> bool:
        """True when the update replaces instances (AWS then stays UPDATING while jobs drain)."""
        return any(c.how == INFRASTRUCTURE_UPDATE for c in self.changes)


def plan_update(
    current: dict[str, Any], desired: dict[str, Any], policy: dict[str, Any] | None = None
) -> ComputeEnvironmentPlan:
    """Diff an existing environment (as described) with its spec, classify each change and build the
    UpdateComputeEnvironment request, with ``policy`` as its ``updatePolicy`` when the update includes
    an infrastructure change. Nothing is to be sent when any change needs replacement."""
    changes = diff(normalize_compute_environment(current), normalize_compute_environment(desired))
    classified = [replace(c, how=classify(c, current, desired)) for c in changes]
    action = action_for(True, classified)
    note = amazon_linux_2_note(current)
    if action is not Action.UPDATED:
        return ComputeEnvironmentPlan(action, classified, note=note)
    fields = {_field(c.path) for c in classified}
    request: dict[str, Any] = {"computeEnvironment": desired["computeEnvironmentName"]}
    resources = desired.get("computeResources") or {}
    for name in sorted(fields):
        if name.startswith("computeResources."):
            key = name.split(".", 1)[1]
            request.setdefault("computeResources", {})[key] = resources[key]
        elif name in ("state", "serviceRole", "unmanagedvCpus"):
            request[name] = desired[name]
    tags = dict(desired.get("tags") or {}) if "tags" in fields else {}
    has_update = len(request) > 1
    plan = ComputeEnvironmentPlan(action, classified, request if has_update else None, tags, note)
    if plan.update_request is not None and plan.infrastructure_update:
        plan.update_request["updatePolicy"] = dict(policy or update_policy({}))
    return plan
