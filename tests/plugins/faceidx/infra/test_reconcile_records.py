"""The generic reconcile and its records: every catalog entry is reconciled by one ResourceKind,
the diff view and replacement fields decide the action (pure), and a dry run never reaches a
mutating call, whatever the account holds."""

from __future__ import annotations

import json

import pytest

from faceidx.infra import kinds_iam, kinds_sqs
from faceidx.infra.catalog import SPECS
from faceidx.infra.hook_base import InfraReconcileHook
from faceidx.infra.reconcile import REPLACEMENT, ResourceKind, plan_changes
from faceidx.infra.results import Action
from tests.plugins.faceidx.infra.conftest import actions


def test_every_catalog_entry_names_a_record_whose_service_it_is_shaped_for():
    for entry in SPECS:
        assert isinstance(entry.resource_kind, ResourceKind), entry.key
        assert entry.service == entry.resource_kind.service
        assert entry.name_field == entry.resource_kind.name_field


ROLE = {"RoleName": "r", "AssumeRolePolicyDocument": json.dumps({"Statement": []}), "Path": "/"}


@pytest.mark.parametrize(
    ("held", "action", "paths"),
    [
        ({"AssumeRolePolicyDocument": {"Statement": []}, "Path": "/"}, Action.UNCHANGED, []),
        ({"AssumeRolePolicyDocument": {"Statement": []}, "Path": "/x/"}, Action.NEEDS_REPLACEMENT, ["Path"]),
        (
            {"AssumeRolePolicyDocument": {"Statement": [{"Effect": "Allow"}]}, "Path": "/"},
            Action.UPDATED,
            ["AssumeRolePolicyDocument"],
        ),
    ],
)
def test_the_role_view_and_replacement_fields_decide_the_action(held, action, paths):
    plan = plan_changes(kinds_iam.ROLE, held, ROLE, {})
    assert (plan.action, [c.path for c in plan.changes]) == (action, paths)
    if action is Action.UPDATED:
        assert [c.operation for c in kinds_iam.ROLE.updates(plan.changes, held, ROLE)] == [
            "update_assume_role_policy"
        ]


def test_a_fifo_change_on_a_queue_needs_replacement():
    spec = {"QueueName": "q", "Attributes": {"FifoQueue": "true", "VisibilityTimeout": "30"}}
    held = {"QueueUrl": "u", "Attributes": {"VisibilityTimeout": "30"}, "tags": {}}
    plan = plan_changes(kinds_sqs.QUEUE, held, spec, {})
    assert [(c.path, c.how) for c in plan.changes] == [("Attributes.FifoQueue", REPLACEMENT)]


@pytest.fixture
def no_changes(monkeypatch):
    """Fail the test on any mutating call the reconcile would send."""

    def change(self, service, operation, resource, **kwargs):
        pytest.fail(f"dry run sent {service}:{operation} on {resource}")

    monkeypatch.setattr(InfraReconcileHook, "change", change)


def test_a_dry_run_sends_nothing_on_an_empty_account(bootstrap, account, no_changes):
    assert set(actions(bootstrap(dry_run=True)).values()) == {"created"}


def test_a_dry_run_sends_nothing_on_a_drifted_account(bootstrap, account, spec_dir, monkeypatch):
    bootstrap()
    account.client("iam").update_role(RoleName="faceidx-batch-job-role", Description="drift")
    path = spec_dir / "batch/job-queue-primary.json"
    queue = json.loads(path.read_text())
    queue["priority"] = 90
    path.write_text(json.dumps(queue))

    def change(self, service, operation, resource, **kwargs):
        pytest.fail(f"dry run sent {service}:{operation} on {resource}")

    monkeypatch.setattr(InfraReconcileHook, "change", change)
    planned = actions(bootstrap(spec_dir=spec_dir, dry_run=True))
    assert planned["batch job queue face-recognition-primary-queue"] == "updated"
    assert set(planned.values()) <= {"unchanged", "updated"}
