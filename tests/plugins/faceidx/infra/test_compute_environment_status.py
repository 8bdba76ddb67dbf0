"""A compute environment that AWS reports INVALID or UPDATING: created again while IAM propagates,
repaired when it matches its spec, and an infrastructure update in progress reported as such.

moto is scripted (tests/support/batch_status.py) to report the statuses and refuse the deletes that
AWS does; the assertions are on the state moto then holds.
"""

from __future__ import annotations

import json

import pytest

from faceidx.common.constants import (
    PRIMARY_COMPUTE_ENVIRONMENT,
    PRIMARY_JOB_QUEUE,
    SECONDARY_COMPUTE_ENVIRONMENT,
)
from faceidx.infra.results import InfraReconcileError
from tests.plugins.faceidx.infra.conftest import actions
from tests.support.batch_status import patch_batch_status

PROFILE_NOT_READY = (
    "CLIENT_ERROR - Invalid IamInstanceProfile: "
    "arn:aws:iam::123456789012:instance-profile/faceidx-batch-instance-profile"
)
NO_SUBNET = "CLIENT_ERROR - The subnet ID 'subnet-0a1b2c3d' does not exist"
CE_KEY = f"batch compute environment {PRIMARY_COMPUTE_ENVIRONMENT}"


@pytest.fixture
def status(account, monkeypatch):
    return patch_batch_status(monkeypatch)


def _environment(account, name=PRIMARY_COMPUTE_ENVIRONMENT):
    found = account.client("batch").describe_compute_environments(computeEnvironments=[name])
    return found["computeEnvironments"][0] if found["computeEnvironments"] else None


def _result(run, name=PRIMARY_COMPUTE_ENVIRONMENT):
    (result,) = [r for s in run["steps"] for r in s["results"] if r["name"] == name]
    return result


def _edit(spec_dir, name, change):
    path = spec_dir / name
    spec = json.loads(path.read_text())
    change(spec)
    path.write_text(json.dumps(spec))


def test_first_bootstrap_recreates_an_environment_iam_had_not_propagated_to(bootstrap, account, status):
    status.script(PRIMARY_COMPUTE_ENVIRONMENT, [("INVALID", PROFILE_NOT_READY), ("VALID", "")])
    run = bootstrap()
    result = _result(run)
    assert result["action"] == "created"
    assert "created on attempt 2" in result["note"]
    assert "Invalid IamInstanceProfile" in result["note"]
    assert (status.creates[PRIMARY_COMPUTE_ENVIRONMENT], status.deletes[PRIMARY_COMPUTE_ENVIRONMENT]) == (
        2,
        1,
    )
    ce = _environment(account)
    assert (ce["status"], ce["state"]) == ("VALID", "ENABLED")
    queue = account.client("batch").describe_job_queues(jobQueues=[PRIMARY_JOB_QUEUE])["jobQueues"][0]
    assert queue["computeEnvironmentOrder"][0]["computeEnvironment"] == ce["computeEnvironmentArn"]
    assert set(actions(run).values()) == {"created"}


def test_iam_that_never_settles_fails_after_a_bounded_number_of_creates(bootstrap, account, status):
    status.script(PRIMARY_COMPUTE_ENVIRONMENT, [("INVALID", PROFILE_NOT_READY)])
    with pytest.raises(InfraReconcileError) as caught:
        bootstrap()
    assert status.creates[PRIMARY_COMPUTE_ENVIRONMENT] == 3
    assert "still INVALID after 3 creates" in str(caught.value)
    assert "iam:PassRole" in str(caught.value)


def test_a_cause_that_waiting_cannot_fix_fails_at_once_and_says_so(bootstrap, account, status):
    status.script(PRIMARY_COMPUTE_ENVIRONMENT, [("INVALID", NO_SUBNET)])
    with pytest.raises(InfraReconcileError) as caught:
        bootstrap()
    assert status.creates[PRIMARY_COMPUTE_ENVIRONMENT] == 1, "not recreated"
    message = str(caught.value)
    assert NO_SUBNET in message
    assert "Waiting or recreating does not fix this" in message
    assert "a changed spec is applied as an update, an unchanged one is deleted and created again" in message


def test_rerun_repairs_an_invalid_environment_that_matches_its_spec(bootstrap, account, status):
    # The first run leaves the environment INVALID (the queues are never created) ...
    status.script(PRIMARY_COMPUTE_ENVIRONMENT, [("INVALID", NO_SUBNET), ("VALID", "")])
    with pytest.raises(InfraReconcileError):
        bootstrap()
    assert _environment(account)["status"] == "INVALID"
    # ... the rerun finds it matching its spec, so it is disabled, deleted and created again.
    run = bootstrap()
    result = _result(run)
    assert result["action"] == "created"
    assert result["note"].startswith(f"replaced: it was INVALID ({NO_SUBNET}) although it matched its spec")
    assert [(c["path"], c["current"], c["desired"]) for c in result["changes"]] == [
        ("status", "INVALID", "VALID")
    ]
    ce = _environment(account)
    assert (ce["status"], ce["state"]) == ("VALID", "ENABLED")
    assert status.deletes[PRIMARY_COMPUTE_ENVIRONMENT] == 1
    assert actions(bootstrap())[CE_KEY] == "unchanged"


def test_dry_run_plans_the_repair_and_changes_nothing(bootstrap, account, status):
    status.script(PRIMARY_COMPUTE_ENVIRONMENT, [("INVALID", NO_SUBNET)])
    with pytest.raises(InfraReconcileError):
        bootstrap()
    result = _result(bootstrap(dry_run=True))
    assert (result["action"], result["dry_run"]) == ("created", True)
    assert "would be disabled, deleted and created again" in result["note"]
    assert _environment(account)["state"] == "ENABLED"
    assert status.deletes[PRIMARY_COMPUTE_ENVIRONMENT] == 0


def test_an_invalid_environment_in_a_job_queue_is_not_deleted_and_the_error_says_what_to_do(
    bootstrap, account, status
):
    bootstrap()
    status.set(PRIMARY_COMPUTE_ENVIRONMENT, "INVALID", PROFILE_NOT_READY)
    with pytest.raises(InfraReconcileError) as caught:
        bootstrap()
    message = str(caught.value)
    assert "rerunning face_infra_bootstrap alone does not repair it" in message
    assert PRIMARY_JOB_QUEUE in message
    assert "Set those queues DISABLED and delete them" in message
    ce = _environment(account)
    assert (ce["status"], ce["state"]) == ("INVALID", "ENABLED"), "nothing was touched"
    assert status.deletes[PRIMARY_COMPUTE_ENVIRONMENT] == 0


def test_an_infrastructure_update_in_progress_is_reported_with_its_update_policy(
    bootstrap, account, status, spec_dir, monkeypatch
):
    from moto.batch.models import BatchBackend

    bootstrap()
    _edit(
        spec_dir,
        "batch/compute-environment-primary.json",
        lambda s: s["computeResources"].update(bidPercentage=80),
    )
    update = BatchBackend.update_compute_environment

    def update_then_updating(self, **kwargs):
        # AWS: an infrastructure update leaves the environment UPDATING while old instances drain.
        result = update(self, **kwargs)
        status.set(kwargs["compute_environment_name"], "UPDATING", "Infrastructure update in progress")
        return result

    monkeypatch.setattr(BatchBackend, "update_compute_environment", update_then_updating)
    run = bootstrap(spec_dir=spec_dir)
    result = _result(run)
    assert result["action"] == "updated"
    assert [(c["path"], c["how"]) for c in result["changes"]] == [
        ("computeResources.bidPercentage", "infrastructure update")
    ]
    assert result["note"].startswith("infrastructure update in progress (status UPDATING)")
    assert "at most 240 min" in result["note"]
    assert status.update_policies[PRIMARY_COMPUTE_ENVIRONMENT] == {
        "terminateJobsOnUpdate": False,
        "jobExecutionTimeoutMinutes": 240,
    }
    assert _environment(account)["computeResources"]["bidPercentage"] == 80

    # A rerun while AWS is still UPDATING reports it, without waiting for VALID.
    again = _result(bootstrap(spec_dir=spec_dir))
    assert again["action"] == "unchanged"
    assert again["note"] == "an update is still in progress (status UPDATING)."


def test_another_change_during_an_update_is_not_sent(bootstrap, account, status, spec_dir):
    bootstrap()
    status.set(SECONDARY_COMPUTE_ENVIRONMENT, "UPDATING", "Infrastructure update in progress")
    _edit(
        spec_dir,
        "batch/compute-environment-secondary.json",
        lambda s: s["computeResources"].update(maxvCpus=128),
    )
    with pytest.raises(InfraReconcileError) as caught:
        bootstrap(spec_dir=spec_dir)
    assert "accepts no other update until it is VALID. Nothing was sent." in str(caught.value)
    assert _environment(account, SECONDARY_COMPUTE_ENVIRONMENT)["computeResources"]["maxvCpus"] == 256
