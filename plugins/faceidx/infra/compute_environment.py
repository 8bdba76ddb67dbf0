"""How each compute-environment change can be applied: in place, as an infrastructure update, or only
by replacing the environment. Pure; the rules come from AWS_NOTES.md (AWS Batch).

Scaling changes apply in place, without replacing instances: ``state``, ``minvCpus``, ``maxvCpus``,
``desiredvCpus`` and the top-level ``tags``.

Infrastructure changes (allocation strategy, instance types, ``bidPercentage``, subnets, security
groups, instance role, EC2 tags, image, launch template) apply in place as an *infrastructure update*
only when both the old and the new strategy are BEST_FIT_PROGRESSIVE, SPOT_CAPACITY_OPTIMIZED or
SPOT_PRICE_CAPACITY_OPTIMIZED and the environment uses the Batch service-linked role. Otherwise they
need a replacement.

``serviceRole`` changes in place only from one custom role to another. Anything else (``type``
MANAGED/UNMANAGED, ``spotIamFleetRole``, ...) needs a replacement.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from faceidx.infra.checks import IN_PLACE_STRATEGIES, is_service_linked_role
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


def plan_update(current: dict[str, Any], desired: dict[str, Any]) -> ComputeEnvironmentPlan:
    """Diff an existing environment (as described) with its spec, classify each change and build the
    UpdateComputeEnvironment request. Nothing is to be sent when any change needs replacement."""
    changes = diff(normalize_compute_environment(current), normalize_compute_environment(desired))
    classified = [replace(c, how=classify(c, current, desired)) for c in changes]
    action = action_for(True, classified)
    if action is not Action.UPDATED:
        return ComputeEnvironmentPlan(action, classified)
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
    return ComputeEnvironmentPlan(action, classified, request if has_update else None, tags)
