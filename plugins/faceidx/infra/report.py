"""The tables face_infra_bootstrap logs: validation findings, each step's plan or result, the summary."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from faceidx.common.tables import format_table
from faceidx.infra.diff import describe_change
from faceidx.infra.results import Action, ResourceResult

MAX_CHANGES_SHOWN = 4


def differences(result: ResourceResult) -> str:
    if result.action is Action.CREATED:
        created = "new" if not result.dry_run else "absent: would be created"
        return f"{created}; {result.note}" if result.note else created
    if not result.changes:
        return result.note or "-"
    shown = [describe_change(c) for c in result.changes[:MAX_CHANGES_SHOWN]]
    if len(result.changes) > MAX_CHANGES_SHOWN:
        shown.append(f"... {len(result.changes) - MAX_CHANGES_SHOWN} more")
    if result.note and result.action is not Action.NEEDS_REPLACEMENT:
        shown.append(result.note)
    return "; ".join(shown)


def action_label(result: ResourceResult) -> str:
    return (
        f"would be {result.action}"
        if result.dry_run and result.action is not Action.UNCHANGED
        else str(result.action)
    )


def results_table(results: Iterable[ResourceResult], title: str) -> str:
    return format_table(
        ("resource", "name", "action", "ARN", "difference"),
        [(r.kind, r.name, action_label(r), r.arn, differences(r)) for r in results],
        title=title,
    )


def findings_table(findings: Iterable[Mapping[str, Any]], title: str) -> str:
    return format_table(
        ("severity", "resource", "problem", "fix"),
        [(f["severity"], f["resource"], f["problem"], f["fix"]) for f in findings],
        title=title,
    )


def values_table(values: Mapping[str, Any]) -> str:
    return format_table(("placeholder", "value"), sorted(values.items()), title="Per-account values in use")
