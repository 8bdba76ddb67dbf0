"""ensure_* for IAM: roles, the managed-policy attachment, the instance profile and its role, and
the job role's inline policy."""

from __future__ import annotations

from typing import Any

from faceidx.infra.diff import canonical_policy, diff, tags_dict
from faceidx.infra.hook_base import InfraHookBase
from faceidx.infra.results import Action, FieldChange, ResourceResult, action_for

NO_SUCH_ENTITY = ("NoSuchEntity", "NoSuchEntityException")


def _role_view(role: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    view: dict[str, Any] = {}
    if "AssumeRolePolicyDocument" in keys:
        view["AssumeRolePolicyDocument"] = canonical_policy(role.get("AssumeRolePolicyDocument"))
    if "Description" in keys:
        view["Description"] = role.get("Description", "")
    if "Path" in keys:
        view["Path"] = role.get("Path", "/")
    if "MaxSessionDuration" in keys:
        view["MaxSessionDuration"] = role.get("MaxSessionDuration")
    if "Tags" in keys:
        view["Tags"] = tags_dict(role.get("Tags"))
    return view


class IamReconcileMixin(InfraHookBase):
    def ensure_role(self, spec: dict[str, Any], dry_run: bool = False) -> ResourceResult:
        name = spec["RoleName"]
        resource = f"IAM role {name}"
        found = self.describe("iam", "get_role", resource, NO_SUCH_ENTITY, RoleName=name)
        if found is None:
            if dry_run:
                return ResourceResult("iam role", name, Action.CREATED, dry_run=True)
            role = self.change("iam", "create_role", resource, **spec)["Role"]
            self.wait_iam("role_exists", resource, RoleName=name)
            return ResourceResult("iam role", name, Action.CREATED, role["Arn"], outputs={"arn": role["Arn"]})
        role = found["Role"]
        keys = set(spec) - {"RoleName", "PermissionsBoundary"}
        desired = {**spec, "Tags": spec.get("Tags", [])}
        changes = [
            FieldChange(c.path, c.current, c.desired, "replacement" if c.path == "Path" else "in place")
            for c in diff(_role_view(role, keys), _role_view(desired, keys))
        ]
        action = action_for(True, changes)
        if action is Action.UPDATED and not dry_run:
            changed = {c.path.split(".")[0] for c in changes}
            if "AssumeRolePolicyDocument" in changed:
                self.change(
                    "iam",
                    "update_assume_role_policy",
                    resource,
                    RoleName=name,
                    PolicyDocument=spec["AssumeRolePolicyDocument"],
                )
            update = {k: spec[k] for k in ("Description", "MaxSessionDuration") if k in changed}
            if update:
                self.change("iam", "update_role", resource, RoleName=name, **update)
            if "Tags" in changed:
                self.change("iam", "tag_role", resource, RoleName=name, Tags=spec["Tags"])
        return ResourceResult("iam role", name, action, role["Arn"], changes, {"arn": role["Arn"]}, dry_run)

    def ensure_role_managed_policy(self, spec: dict[str, Any], dry_run: bool = False) -> ResourceResult:
        role, policy_arn = spec["RoleName"], spec["PolicyArn"]
        name = f"{role} <- {policy_arn.rsplit('/', 1)[-1]}"
        resource = f"managed policy attachment {name}"
        role_found = self.describe("iam", "get_role", f"IAM role {role}", NO_SUCH_ENTITY, RoleName=role)
        attached = (
            self.paginate("iam", "list_attached_role_policies", resource, "AttachedPolicies", RoleName=role)
            if role_found
            else []
        )
        if any(p.get("PolicyArn") == policy_arn for p in attached):
            return ResourceResult(
                "iam policy attachment", name, Action.UNCHANGED, policy_arn, dry_run=dry_run
            )
        if not dry_run:
            self.change("iam", "attach_role_policy", resource, **spec)
        return ResourceResult("iam policy attachment", name, Action.CREATED, policy_arn, dry_run=dry_run)

    def ensure_instance_profile(self, spec: dict[str, Any], dry_run: bool = False) -> ResourceResult:
        name = spec["InstanceProfileName"]
        resource = f"IAM instance profile {name}"
        found = self.describe(
            "iam", "get_instance_profile", resource, NO_SUCH_ENTITY, InstanceProfileName=name
        )
        if found is None:
            if dry_run:
                return ResourceResult("iam instance profile", name, Action.CREATED, dry_run=True)
            profile = self.change("iam", "create_instance_profile", resource, **spec)["InstanceProfile"]
            self.wait_iam("instance_profile_exists", resource, InstanceProfileName=name)
            arn = profile["Arn"]
            return ResourceResult("iam instance profile", name, Action.CREATED, arn, outputs={"arn": arn})
        profile = found["InstanceProfile"]
        arn = profile["Arn"]
        changes = diff({"Tags": tags_dict(profile.get("Tags"))}, {"Tags": tags_dict(spec.get("Tags"))})
        action = action_for(True, changes)
        if action is Action.UPDATED and not dry_run:
            self.change("iam", "tag_instance_profile", resource, InstanceProfileName=name, Tags=spec["Tags"])
        return ResourceResult("iam instance profile", name, action, arn, changes, {"arn": arn}, dry_run)

    def ensure_instance_profile_role(self, spec: dict[str, Any], dry_run: bool = False) -> ResourceResult:
        profile_name, role = spec["InstanceProfileName"], spec["RoleName"]
        name = f"{profile_name} <- {role}"
        resource = f"IAM instance profile {profile_name}"
        found = self.describe(
            "iam", "get_instance_profile", resource, NO_SUCH_ENTITY, InstanceProfileName=profile_name
        )
        roles = [r["RoleName"] for r in (found or {}).get("InstanceProfile", {}).get("Roles", [])]
        if roles == [role]:
            return ResourceResult("iam instance profile role", name, Action.UNCHANGED, dry_run=dry_run)
        changes = [FieldChange("Roles", roles, [role])] if roles else []
        if not dry_run:
            for other in roles:
                if other != role:
                    self.change(
                        "iam",
                        "remove_role_from_instance_profile",
                        resource,
                        InstanceProfileName=profile_name,
                        RoleName=other,
                    )
            if role not in roles:
                self.change("iam", "add_role_to_instance_profile", resource, **spec)
        action = Action.UPDATED if roles else Action.CREATED
        return ResourceResult("iam instance profile role", name, action, changes=changes, dry_run=dry_run)

    def ensure_role_inline_policy(self, spec: dict[str, Any], dry_run: bool = False) -> ResourceResult:
        role, policy = spec["RoleName"], spec["PolicyName"]
        name = f"{role}/{policy}"
        resource = f"inline policy {name}"
        found = self.describe(
            "iam", "get_role_policy", resource, NO_SUCH_ENTITY, RoleName=role, PolicyName=policy
        )
        current = canonical_policy(found["PolicyDocument"]) if found else None
        changes = diff(current, canonical_policy(spec["PolicyDocument"]), "PolicyDocument") if found else []
        action = action_for(found is not None, changes)
        if action in (Action.CREATED, Action.UPDATED) and not dry_run:
            self.change("iam", "put_role_policy", resource, **spec)
        return ResourceResult("iam inline policy", name, action, changes=changes, dry_run=dry_run)
