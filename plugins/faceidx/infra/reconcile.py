"""Table-driven reconcile: each resource kind is one ``ResourceKind`` record, and one ``reconcile``
applies any of them (STYLE.md section 6).

``reconcile`` describes the resource; creates it when absent; otherwise plans the differences (the
record's diff view, normalised on both sides), reports a change that needs replacement without
sending anything, sends the update calls the record maps the changes to, and describes it again for
its ARN and outputs. ``dry_run`` is handled here, once: a dry run describes and plans (``created``,
``updated``, ``unchanged`` or ``needs-replacement``) and never calls a mutating API.

Only an empty describe, or one of the record's ``absent_codes`` for the one resource asked about,
means "absent"; any other AWS error is raised (see ``hook_base``). Kinds with their own life cycle
(the compute environment's INVALID repair, a job-definition revision) say so through the record's
hooks (``repair``, ``after_create``, ``after_update``), never as special cases here.

The records live beside their service: ``kinds_sqs``, ``kinds_iam``, ``kinds_s3``, ``kinds_batch``,
``kinds_compute``. The update maps, views and plans they hold are pure functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from faceidx.infra.diff import diff
from faceidx.infra.results import Action, FieldChange, InfraReconcileError, ResourceResult, action_for

if TYPE_CHECKING:
    from faceidx.infra.hook_base import InfraReconcileHook

log = logging.getLogger(__name__)

Spec = dict[str, Any]
Held = Any  # a resource as described (the record's ``describe`` decides its form)

IN_PLACE = "in place"
REPLACEMENT = "replacement"


@dataclass(frozen=True)
class Call:
    """One mutating API call: the botocore operation of the record's service and its arguments."""

    operation: str
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """What differs and, when ``calls`` is not None, the calls that apply it (else the record's
    ``updates`` builds them). ``detail`` is for the record's own hooks."""

    changes: list[FieldChange]
    calls: list[Call] | None = None
    note: str = ""
    detail: Any = None

    @property
    def action(self) -> Action:
        return action_for(True, self.changes)


@dataclass(frozen=True)
class Target:
    """The resource one reconcile is about, as the record's hooks get it."""

    hook: InfraReconcileHook
    spec: Spec
    name: str
    resource: str  # how messages name it
    dry_run: bool
    held: Held = None  # as described before any change (None: absent)


def _identity(response: Any, resource: str) -> Any:
    return response


@dataclass(frozen=True)
class Describe:
    """How to read one resource: a describe call, the codes that mean "absent", and how to pick the
    resource out of the answer (None: absent)."""

    operation: str
    request: Callable[[Spec], dict[str, Any]]
    absent_codes: frozenset[str] = frozenset()
    pick: Callable[[Any, str], Held | None] = _identity
    paginate: str | None = None  # a paginated describe: the key whose items ``pick`` gets as a list
    more: Callable[[InfraReconcileHook, Spec, Held, str], Held] | None = None  # further reads once found
    absent_when: Callable[[Spec], bool] | None = None  # the spec names what a dry run has not created
    fix: str | None = None  # what to do when the describe fails (else: grant it / fix the cause)


def _no_updates(changes: list[FieldChange], held: Held, spec: Spec) -> list[Call]:
    return []


def _no_outputs(held: Held) -> dict[str, Any]:
    return {}


def _no_arn(held: Held | None, spec: Spec) -> str | None:
    return None


def _always(held: Held, spec: Spec) -> bool:
    return True


@dataclass(frozen=True)
class ResourceKind:
    """Everything that makes one kind of AWS resource reconcilable.

    Required: what the summary calls it, the botocore service, the request field that names it, the
    describe and the create calls. The diff view is ``view`` (applied to what AWS holds and to the
    spec, or ``spec_view`` for the spec); a change is applied ``change_how`` (``in place``) unless its
    path is under ``replacement_fields``; ``updates`` maps the changes to calls. ``plan`` replaces
    view + updates for a kind whose rules are richer (compute environments).
    """

    kind: str
    service: str
    name_field: str
    noun: str  # how messages name it: "<noun> <name>"
    describe: Describe
    create: Callable[[Spec, Held | None], list[Call]]
    display_name: Callable[[Spec], str] | None = None
    exists: Callable[[Held, Spec], bool] = _always  # described, but is it there? (an attachment, a policy)
    view: Callable[[Any, Spec], Any] | None = None
    spec_view: Callable[[Spec], Any] | None = None
    replacement_fields: frozenset[str] = frozenset()
    change_how: str = IN_PLACE
    updates: Callable[[list[FieldChange], Held, Spec], list[Call]] = _no_updates
    plan: Callable[[Held, Spec, Mapping[str, Any]], Plan] | None = None
    replacement_note: str = ""
    prepare: Callable[[Target], Spec] | None = None  # the spec to send, before the first mutating call
    waiter: Callable[[Target], None] | None = None  # after a create (and an update: wait_after_update)
    wait_after_update: bool = False
    after_create: Callable[[Target, list[Any]], str] | None = None  # (the create's answers) -> note
    after_update: Callable[[Target, Plan, list[Any]], str] | None = None  # -> note (default plan.note)
    repair: Callable[[Target, Plan], ResourceResult | None] | None = None  # a result ends the reconcile
    after_change: Callable[[Held | None, list[Any]], Held] | None = None  # None: describe again
    arn: Callable[[Held | None, Spec], str | None] = _no_arn
    outputs: Callable[[Held], dict[str, Any]] = _no_outputs

    def name_of(self, spec: Spec) -> str:
        return self.display_name(spec) if self.display_name else str(spec[self.name_field])

    def resource_of(self, spec: Spec) -> str:
        return f"{self.noun} {self.name_of(spec)}"

    def result(
        self, name: str, action: Action, held: Held | None, spec: Spec, **kwargs: Any
    ) -> ResourceResult:
        outputs = self.outputs(held) if held is not None else {}
        return ResourceResult(self.kind, name, action, self.arn(held, spec), outputs=outputs, **kwargs)


def how_for(kind: ResourceKind, change: FieldChange) -> str:
    """``replacement`` for a path at or under one of ``replacement_fields``, else ``change_how``."""
    for name in kind.replacement_fields:
        if change.path == name or change.path.startswith(f"{name}."):
            return REPLACEMENT
    return kind.change_how


def plan_changes(kind: ResourceKind, held: Held, spec: Spec, context: Mapping[str, Any]) -> Plan:
    """The record's plan, or diff its view of ``held`` with its view of ``spec`` (pure)."""
    if kind.plan is not None:
        return kind.plan(held, spec, context)
    if kind.view is None:
        return Plan([])
    desired = kind.spec_view(spec) if kind.spec_view else kind.view(spec, spec)
    changes = diff(kind.view(held, spec), desired)
    return Plan([FieldChange(c.path, c.current, c.desired, how_for(kind, c)) for c in changes])


def describe(hook: InfraReconcileHook, kind: ResourceKind, spec: Spec, resource: str) -> Held | None:
    """The resource as AWS holds it, or None when absent."""
    d = kind.describe
    if d.absent_when is not None and d.absent_when(spec):
        return None
    request = d.request(spec)
    if d.paginate is not None:
        items = hook.paginate(kind.service, d.operation, resource, d.paginate, **request)
        found = d.pick(items, resource)
    else:
        response = hook.describe(kind.service, d.operation, resource, d.absent_codes, fix=d.fix, **request)
        found = None if response is None else d.pick(response, resource)
    if found is not None and d.more is not None:
        found = d.more(hook, spec, found, resource)
    return found


def send(hook: InfraReconcileHook, kind: ResourceKind, calls: list[Call], resource: str) -> list[Any]:
    return [hook.change(kind.service, c.operation, resource, **c.kwargs) for c in calls]


def join_notes(*notes: str) -> str:
    return " ".join(n for n in notes if n)


def _described_again(kind: ResourceKind, target: Target, responses: list[Any]) -> Held:
    if kind.after_change is not None:
        return kind.after_change(target.held, responses)
    found = describe(target.hook, kind, target.spec, target.resource)
    if found is None:
        raise InfraReconcileError(
            f"{target.resource} was changed but is not listed when described again. Rerun "
            "face_infra_bootstrap in a minute (AWS may not show it yet); it is safe to repeat."
        )
    return found


def _sendable(kind: ResourceKind, target: Target) -> Target:
    return replace(target, spec=kind.prepare(target)) if kind.prepare else target


def reconcile(
    hook: InfraReconcileHook,
    kind: ResourceKind,
    spec: Spec,
    dry_run: bool = False,
    context: Mapping[str, Any] | None = None,
) -> ResourceResult:
    """Describe -> create when absent, or diff -> update -> describe again. A dry run only plans."""
    name, resource = kind.name_of(spec), kind.resource_of(spec)
    held = describe(hook, kind, spec, resource)
    target = Target(hook, spec, name, resource, dry_run, held)
    if held is None or not kind.exists(held, spec):
        if dry_run:
            return ResourceResult(kind.kind, name, Action.CREATED, kind.arn(held, spec), dry_run=True)
        target = _sendable(kind, target)
        created = send(hook, kind, kind.create(target.spec, held), resource)
        note = kind.after_create(target, created) if kind.after_create else ""
        if kind.waiter is not None:
            kind.waiter(target)
        after = _described_again(kind, target, created)
        return kind.result(name, Action.CREATED, after, spec, note=note)

    plan = plan_changes(kind, held, spec, context or {})
    action = plan.action
    if action is Action.NEEDS_REPLACEMENT:
        note = join_notes(plan.note, kind.replacement_note)
        return kind.result(name, action, held, spec, changes=plan.changes, dry_run=dry_run, note=note)
    if kind.repair is not None:
        repaired = kind.repair(target, plan)
        if repaired is not None:
            return repaired
    if dry_run:
        return kind.result(name, action, held, spec, changes=plan.changes, dry_run=True, note=plan.note)

    responses: list[Any] = []
    if action is Action.UPDATED:
        target = _sendable(kind, target)
        calls = plan.calls if plan.calls is not None else kind.updates(plan.changes, held, target.spec)
        responses = send(hook, kind, calls, resource)
        if kind.waiter is not None and kind.wait_after_update:
            kind.waiter(target)
    note = kind.after_update(target, plan, responses) if kind.after_update else plan.note
    if responses:
        held = _described_again(kind, target, responses)
    return kind.result(name, action, held, spec, changes=plan.changes, note=note)
