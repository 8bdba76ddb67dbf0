"""Compare what AWS holds with what a spec wants. Pure.

``diff`` treats a dict in the spec as "these keys must match" (AWS adds defaults and other tools add
tags, which are not ours to remove) and lists and scalars as "must be equal". Normalizers bring both
sides to one form first: unordered lists are sorted, policy documents become canonical JSON strings
(so a removed statement is a difference), ARNs and names compare by name.
"""

from __future__ import annotations

import json
from typing import Any

from faceidx.infra.results import FieldChange


def diff(current: Any, desired: Any, path: str = "") -> list[FieldChange]:
    """Fields of ``desired`` that ``current`` does not match, as leaf paths (``a.b.c``)."""
    if isinstance(desired, dict):
        if current is not None and not isinstance(current, dict):
            return [FieldChange(path, current, desired)]
        held = current or {}
        changes: list[FieldChange] = []
        for key, want in desired.items():
            changes.extend(diff(held.get(key), want, f"{path}.{key}" if path else str(key)))
        return changes
    if current != desired:
        return [FieldChange(path, current, desired)]
    return []


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _canonical(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _canonical(v) for k, v in sorted(node.items())}
    if isinstance(node, list):
        items = [_canonical(v) for v in node]
        if all(isinstance(i, str) for i in items):
            return sorted(items)
        return items
    return node


def canonical_policy(document: Any) -> str | None:
    """An IAM/SQS policy (JSON string or parsed) as canonical JSON: sorted keys, one-element lists
    and single strings alike, string lists sorted."""
    if document in (None, ""):
        return None
    doc = json.loads(document) if isinstance(document, str) else document
    doc = dict(doc)
    statements = []
    for statement in _as_list(doc.get("Statement", [])):
        s = dict(statement)
        for key in ("Action", "NotAction", "Resource", "NotResource"):
            if key in s:
                s[key] = _as_list(s[key])
        principal = s.get("Principal")
        if isinstance(principal, dict):
            s["Principal"] = {k: _as_list(v) for k, v in principal.items()}
        condition = s.get("Condition")
        if isinstance(condition, dict):
            s["Condition"] = {
                op: {k: _as_list(v) for k, v in (block or {}).items()} for op, block in condition.items()
            }
        statements.append(_canonical(s))
    doc["Statement"] = statements
    return json.dumps(_canonical(doc), sort_keys=True, separators=(",", ":"))


def canonical_redrive(policy: Any) -> str | None:
    if policy in (None, ""):
        return None
    parsed = json.loads(policy) if isinstance(policy, str) else dict(policy)
    if "maxReceiveCount" in parsed:
        parsed["maxReceiveCount"] = int(parsed["maxReceiveCount"])
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"))


SQS_DOCUMENT_ATTRIBUTES = {"Policy": canonical_policy, "RedriveAllowPolicy": canonical_policy}


def normalize_queue_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if key == "RedrivePolicy":
            out[key] = canonical_redrive(value)
        elif key in SQS_DOCUMENT_ATTRIBUTES:
            out[key] = SQS_DOCUMENT_ATTRIBUTES[key](value)
        else:
            out[key] = None if value is None else str(value)
    return out


def tags_dict(tags: Any) -> dict[str, str]:
    """IAM-style ``[{"Key", "Value"}]`` or a plain dict, as a dict."""
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    return {str(t["Key"]): str(t["Value"]) for t in tags or []}


def name_of(identifier: Any) -> Any:
    """The last path segment of an ARN (``.../face-recognition-primary`` -> name); names unchanged."""
    if isinstance(identifier, str) and identifier.startswith("arn:"):
        return identifier.rsplit("/", 1)[-1]
    return identifier


def normalize_compute_environment(ce: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        k: ce[k] for k in ("computeEnvironmentName", "type", "state", "serviceRole", "tags") if k in ce
    }
    resources = dict(ce.get("computeResources") or {})
    for key in ("subnets", "securityGroupIds", "instanceTypes"):
        if key in resources:
            resources[key] = sorted(resources[key])
    if "instanceRole" in resources:
        resources["instanceRole"] = name_of(resources["instanceRole"])
    if "ec2Configuration" in resources:
        resources["ec2Configuration"] = normalize_ec2_configuration(resources["ec2Configuration"])
    if resources:
        out["computeResources"] = resources
    return out


EC2_CONFIGURATION_FIELDS = ("imageType", "imageIdOverride", "imageKubernetesVersion")


def normalize_ec2_configuration(configurations: Any) -> list[dict[str, Any]]:
    """The AMI choices, by image type, without what AWS adds on describe (``batchImageStatus``)."""
    return sorted(
        ({k: c[k] for k in EC2_CONFIGURATION_FIELDS if k in c} for c in configurations or []),
        key=lambda c: str(c.get("imageType")),
    )


def normalize_time_limit_actions(actions: Any) -> list[dict[str, Any]]:
    """jobStateTimeLimitActions by reason (AWS keeps no order that matters)."""
    return sorted(
        (
            {
                "reason": a.get("reason"),
                "state": a.get("state"),
                "maxTimeSeconds": int(a.get("maxTimeSeconds", 0)),
                "action": a.get("action"),
            }
            for a in actions or []
        ),
        key=lambda a: str(a["reason"]),
    )


def normalize_job_queue(queue: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        k: queue[k] for k in ("state", "priority", "tags", "schedulingPolicyArn") if k in queue
    }
    if "computeEnvironmentOrder" in queue:
        out["computeEnvironmentOrder"] = sorted(
            (
                {"order": int(item["order"]), "computeEnvironment": name_of(item["computeEnvironment"])}
                for item in queue["computeEnvironmentOrder"]
            ),
            key=lambda item: item["order"],
        )
    if "jobStateTimeLimitActions" in queue:
        out["jobStateTimeLimitActions"] = normalize_time_limit_actions(queue["jobStateTimeLimitActions"])
    return out


JOB_DEFINITION_FIELDS = (
    "type",
    "parameters",
    "containerProperties",
    "retryStrategy",
    "timeout",
    "propagateTags",
    "tags",
    "platformCapabilities",
    "schedulingPriority",
)


def normalize_job_definition(job: dict[str, Any]) -> dict[str, Any]:
    """Content that decides whether a new revision is needed, in one form for spec and AWS."""
    out: dict[str, Any] = {k: job[k] for k in JOB_DEFINITION_FIELDS if k in job}
    container = dict(out.get("containerProperties") or {})
    if "environment" in container:
        container["environment"] = sorted(
            f"{e['name']}={e.get('value', '')}" for e in container["environment"]
        )
    if "resourceRequirements" in container:
        container["resourceRequirements"] = sorted(
            f"{r['type']}={r['value']}" for r in container["resourceRequirements"]
        )
    if container:
        out["containerProperties"] = container
    retry = out.get("retryStrategy")
    if isinstance(retry, dict) and "evaluateOnExit" in retry:
        out["retryStrategy"] = {
            **retry,
            "evaluateOnExit": [
                {k: (str(v).upper() if k == "action" else v) for k, v in rule.items()}
                for rule in retry["evaluateOnExit"]
            ],
        }
    return out


def normalize_notifications(configurations: list[dict[str, Any]]) -> str:
    """Our S3 queue notifications as canonical JSON (sorted by Id; filter rule names lower case)."""
    canonical = []
    for config in sorted(configurations, key=lambda c: str(c.get("Id", ""))):
        rules = ((config.get("Filter") or {}).get("Key") or {}).get("FilterRules") or []
        canonical.append(
            {
                "Id": config.get("Id"),
                "QueueArn": config.get("QueueArn"),
                "Events": sorted(config.get("Events") or []),
                "FilterRules": sorted((str(r["Name"]).lower(), r["Value"]) for r in rules),
            }
        )
    return json.dumps(canonical, sort_keys=True)


def describe_change(change: FieldChange, width: int = 48) -> str:
    """``path: current -> desired``, values shortened for a table cell."""

    def short(value: Any) -> str:
        text = "-" if value is None else json.dumps(value) if isinstance(value, list | dict) else str(value)
        return text if len(text) <= width else text[: width - 3] + "..."

    suffix = "" if change.how == "in place" else f" ({change.how})"
    return f"{change.path}: {short(change.current)} -> {short(change.desired)}{suffix}"
