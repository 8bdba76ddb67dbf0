"""The IAM resource kinds: roles, the managed-policy attachment, the instance profile and its role,
and the job role's inline policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from faceidx.aws.errors import MISSING_CODES
from faceidx.infra.diff import canonical_policy, tags_dict
from faceidx.infra.reconcile import Call, Describe, Held, ResourceKind, Spec, Target
from faceidx.infra.results import FieldChange

if TYPE_CHECKING:
    from faceidx.infra.hook_base import InfraReconcileHook

# IAM answers NoSuchEntity for a role, profile or inline policy that does not exist.
NO_SUCH_ENTITY = MISSING_CODES

ROLE_FIELDS = ("AssumeRolePolicyDocument", "Description", "Path", "MaxSessionDuration", "Tags")


def _role_view(role: dict[str, Any], spec: Spec) -> dict[str, Any]:
    """The fields the spec sets, in one form for the described role and the spec."""
    keys = set(spec) - {"RoleName", "PermissionsBoundary"}
    defaults: dict[str, Any] = {"Description": "", "Path": "/", "MaxSessionDuration": None, "Tags": []}
    view: dict[str, Any] = {}
    for key in ROLE_FIELDS:
        if key in keys:
            value = role.get(key, defaults.get(key))
            if key == "AssumeRolePolicyDocument":
                value = canonical_policy(value)
            elif key == "Tags":
                value = tags_dict(value)
            view[key] = value
    return view


def _role_updates(changes: list[FieldChange], held: Held, spec: Spec) -> list[Call]:
    name = spec["RoleName"]
    changed = {c.path.split(".")[0] for c in changes}
    calls = []
    if "AssumeRolePolicyDocument" in changed:
        calls.append(
            Call(
                "update_assume_role_policy",
                {"RoleName": name, "PolicyDocument": spec["AssumeRolePolicyDocument"]},
            )
        )
    update: dict[str, Any] = {k: spec[k] for k in ("Description", "MaxSessionDuration") if k in changed}
    if update:
        calls.append(Call("update_role", {"RoleName": name, **update}))
    if "Tags" in changed:
        calls.append(Call("tag_role", {"RoleName": name, "Tags": spec["Tags"]}))
    return calls


def _iam_waiter(waiter: str, field: str) -> Callable[[Target], None]:
    """IAM's own ``role_exists`` / ``instance_profile_exists`` waiter, after a create."""

    def wait(target: Target) -> None:
        target.hook.wait_iam(waiter, target.resource, **{field: target.spec[field]})

    return wait


ROLE = ResourceKind(
    kind="iam role",
    service="iam",
    name_field="RoleName",
    noun="IAM role",
    describe=Describe(
        "get_role",
        lambda spec: {"RoleName": spec["RoleName"]},
        absent_codes=NO_SUCH_ENTITY,
        pick=lambda response, resource: response["Role"],
    ),
    create=lambda spec, held: [Call("create_role", spec)],
    view=_role_view,
    spec_view=lambda spec: _role_view({**spec, "Tags": spec.get("Tags", [])}, spec),
    replacement_fields=frozenset({"Path"}),
    updates=_role_updates,
    waiter=_iam_waiter("role_exists", "RoleName"),
    arn=lambda held, spec: held["Arn"] if held else None,
    outputs=lambda held: {"arn": held["Arn"]},
)


def _attached(hook: InfraReconcileHook, spec: Spec, role: Held, resource: str) -> Held:
    """The role's attachments of the spec's policy (an empty list: not attached)."""
    attached = hook.paginate(
        "iam", "list_attached_role_policies", resource, "AttachedPolicies", RoleName=spec["RoleName"]
    )
    return [p for p in attached if p.get("PolicyArn") == spec["PolicyArn"]]


ROLE_MANAGED_POLICY = ResourceKind(
    kind="iam policy attachment",
    service="iam",
    name_field="RoleName",
    noun="managed policy attachment",
    display_name=lambda spec: f"{spec['RoleName']} <- {spec['PolicyArn'].rsplit('/', 1)[-1]}",
    describe=Describe(
        "get_role",
        lambda spec: {"RoleName": spec["RoleName"]},
        absent_codes=NO_SUCH_ENTITY,
        more=_attached,
    ),
    # The role is described (it may not exist yet in a dry run), then its attached policies.
    exists=lambda attached, spec: bool(attached),
    create=lambda spec, held: [Call("attach_role_policy", spec)],
    after_change=lambda held, responses: held,
    arn=lambda held, spec: spec["PolicyArn"],
)


INSTANCE_PROFILE = ResourceKind(
    kind="iam instance profile",
    service="iam",
    name_field="InstanceProfileName",
    noun="IAM instance profile",
    describe=Describe(
        "get_instance_profile",
        lambda spec: {"InstanceProfileName": spec["InstanceProfileName"]},
        absent_codes=NO_SUCH_ENTITY,
        pick=lambda response, resource: response["InstanceProfile"],
    ),
    create=lambda spec, held: [Call("create_instance_profile", spec)],
    view=lambda side, spec: {"Tags": tags_dict(side.get("Tags"))},
    updates=lambda changes, held, spec: [
        Call(
            "tag_instance_profile",
            {"InstanceProfileName": spec["InstanceProfileName"], "Tags": spec["Tags"]},
        )
    ],
    waiter=_iam_waiter("instance_profile_exists", "InstanceProfileName"),
    arn=lambda held, spec: held["Arn"] if held else None,
    outputs=lambda held: {"arn": held["Arn"]},
)


def _profile_roles(profile: Held | None) -> list[str]:
    return [r["RoleName"] for r in (profile or {}).get("Roles", [])]


def _profile_role_updates(changes: list[FieldChange], held: Held, spec: Spec) -> list[Call]:
    """Remove every other role (a profile holds one), then add the spec's role if it is not there."""
    roles, role = _profile_roles(held), spec["RoleName"]
    profile = spec["InstanceProfileName"]
    calls = [
        Call("remove_role_from_instance_profile", {"InstanceProfileName": profile, "RoleName": other})
        for other in roles
        if other != role
    ]
    if role not in roles:
        calls.append(Call("add_role_to_instance_profile", spec))
    return calls


INSTANCE_PROFILE_ROLE = ResourceKind(
    kind="iam instance profile role",
    service="iam",
    name_field="InstanceProfileName",
    noun="IAM instance profile",
    display_name=lambda spec: f"{spec['InstanceProfileName']} <- {spec['RoleName']}",
    describe=Describe(
        "get_instance_profile",
        lambda spec: {"InstanceProfileName": spec["InstanceProfileName"]},
        absent_codes=NO_SUCH_ENTITY,
        pick=lambda response, resource: response["InstanceProfile"],
    ),
    exists=lambda profile, spec: bool(_profile_roles(profile)),
    create=lambda spec, held: [Call("add_role_to_instance_profile", spec)],
    view=lambda side, spec: {"Roles": _profile_roles(side)},
    spec_view=lambda spec: {"Roles": [spec["RoleName"]]},
    updates=_profile_role_updates,
    after_change=lambda held, responses: held,
)


ROLE_INLINE_POLICY = ResourceKind(
    kind="iam inline policy",
    service="iam",
    name_field="RoleName",
    noun="inline policy",
    display_name=lambda spec: f"{spec['RoleName']}/{spec['PolicyName']}",
    describe=Describe(
        "get_role_policy",
        lambda spec: {"RoleName": spec["RoleName"], "PolicyName": spec["PolicyName"]},
        absent_codes=NO_SUCH_ENTITY,
    ),
    create=lambda spec, held: [Call("put_role_policy", spec)],
    view=lambda side, spec: {"PolicyDocument": canonical_policy(side["PolicyDocument"])},
    updates=lambda changes, held, spec: [Call("put_role_policy", spec)],
    after_change=lambda held, responses: held,
)
