"""What one reconcile reports: the action and the differences it found, or the error that stopped it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class InfraReconcileError(RuntimeError):
    """A reconcile could not finish. The message names the resource, AWS's answer and the fix."""


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    NEEDS_REPLACEMENT = "needs-replacement"


@dataclass(frozen=True)
class FieldChange:
    """One field that differs: where, what AWS holds, what the spec wants, and how it can change."""

    path: str
    current: Any
    desired: Any
    how: str = "in place"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "current": self.current, "desired": self.desired, "how": self.how}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FieldChange:
        return cls(data["path"], data.get("current"), data.get("desired"), data.get("how", "in place"))


@dataclass
class ResourceResult:
    """The outcome of one reconcile. With ``dry_run`` the action is what *would* happen."""

    kind: str
    name: str
    action: Action
    arn: str | None = None
    changes: list[FieldChange] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "action": str(self.action),
            "arn": self.arn,
            "changes": [c.to_dict() for c in self.changes],
            "outputs": dict(self.outputs),
            "dry_run": self.dry_run,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResourceResult:
        return cls(
            kind=data["kind"],
            name=data["name"],
            action=Action(data["action"]),
            arn=data.get("arn"),
            changes=[FieldChange.from_dict(c) for c in data.get("changes", [])],
            outputs=dict(data.get("outputs", {})),
            dry_run=bool(data.get("dry_run")),
            note=data.get("note", ""),
        )


def action_for(exists: bool, changes: list[FieldChange]) -> Action:
    """created when absent; else needs-replacement if any change needs it, updated, or unchanged."""
    if not exists:
        return Action.CREATED
    if any(c.how == "replacement" for c in changes):
        return Action.NEEDS_REPLACEMENT
    return Action.UPDATED if changes else Action.UNCHANGED
