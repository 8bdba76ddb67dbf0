"""Waiting for VALID goes through botocore waiters (never a sleep loop) and explains a failure.
Batch answers are scripted with botocore's Stubber: moto's environments are VALID at once."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from faceidx.infra.hook_base import InfraReconcileHook
from faceidx.infra.kinds_compute import COMPUTE_ENVIRONMENT
from faceidx.infra.reconcile import reconcile
from faceidx.infra.results import InfraReconcileError
from faceidx.infra.validate import validate_specs
from faceidx.infra.values import example_params
from tests.support.moto_server import aws_connection_uri_json

ARN = "arn:aws:batch:us-east-1:123456789012:compute-environment/face-recognition-primary"


@pytest.fixture
def hook(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection_uri_json("http://127.0.0.1:9"))
    return InfraReconcileHook(aws_conn_id="aws_default", waiter_delay=0, waiter_max_attempts=5)


def _ce(status, reason="", **extra):
    return {
        "computeEnvironmentName": "face-recognition-primary",
        "computeEnvironmentArn": ARN,
        "status": status,
        "statusReason": reason,
        **extra,
    }


def _describe(stubber, *environments):
    stubber.add_response(
        "describe_compute_environments",
        {"computeEnvironments": list(environments)},
        {"computeEnvironments": ["face-recognition-primary"]},
    )


def test_waits_through_creating_until_valid(hook):
    client = hook.client_for("batch")
    with Stubber(client) as stubber:
        for status in ("CREATING", "UPDATING", "VALID"):
            _describe(stubber, _ce(status))
        hook.wait_compute_environment_valid("face-recognition-primary")
        stubber.assert_no_pending_responses()


def test_invalid_environment_fails_with_its_status_reason(hook):
    client = hook.client_for("batch")
    reason = "CLIENT_ERROR - Instance profile faceidx-batch-instance-profile does not exist"
    with Stubber(client) as stubber:
        _describe(stubber, _ce("INVALID", reason))
        _describe(stubber, _ce("INVALID", reason))
        with pytest.raises(InfraReconcileError) as caught:
            hook.wait_compute_environment_valid("face-recognition-primary")
    assert f"status INVALID: {reason}" in str(caught.value)
    assert "did not become VALID" in str(caught.value)


def test_job_queue_waiter(hook):
    client = hook.client_for("batch")
    with Stubber(client) as stubber:
        for status in ("CREATING", "VALID"):
            stubber.add_response(
                "describe_job_queues",
                {
                    "jobQueues": [
                        {
                            "jobQueueName": "q",
                            "jobQueueArn": "arn:q",
                            "state": "ENABLED",
                            "status": status,
                            "priority": 1,
                            "computeEnvironmentOrder": [],
                        }
                    ]
                },
                {"jobQueues": ["q"]},
            )
        hook.wait_job_queue_valid("q")
        stubber.assert_no_pending_responses()


def _held(status):
    spec = validate_specs({**example_params(), "service_role_arn": ""}, {}).rendered[
        "batch/compute-environment-primary"
    ]
    spec["computeResources"]["instanceRole"] = "arn:aws:iam::123456789012:instance-profile/p"
    held = _ce(
        status,
        type="MANAGED",
        state="ENABLED",
        computeResources=dict(spec["computeResources"]),
        tags=spec["tags"],
    )
    return spec, held


def test_an_existing_environment_still_being_created_is_waited_for(hook):
    spec, held = _held("CREATING")
    client = hook.client_for("batch")
    with Stubber(client) as stubber:
        _describe(stubber, held)  # ensure: describe
        _describe(stubber, {**held, "status": "VALID"})  # waiter
        result = reconcile(hook, COMPUTE_ENVIRONMENT, spec)
        stubber.assert_no_pending_responses()
    assert str(result.action) == "unchanged"


def test_an_existing_environment_being_updated_is_reported_not_waited_for(hook):
    # An infrastructure update stays UPDATING while running jobs drain (hours): waiting for VALID
    # would fail the task although nothing is wrong.
    spec, held = _held("UPDATING")
    client = hook.client_for("batch")
    with Stubber(client) as stubber:
        _describe(stubber, held)
        result = reconcile(hook, COMPUTE_ENVIRONMENT, spec)
        stubber.assert_no_pending_responses()
    assert (str(result.action), result.note) == (
        "unchanged",
        "an update is still in progress (status UPDATING).",
    )


def test_an_environment_being_deleted_is_not_recreated(hook):
    spec = validate_specs(example_params(), {}).rendered["batch/compute-environment-primary"]
    client = hook.client_for("batch")
    with Stubber(client) as stubber:
        _describe(stubber, _ce("DELETING"))
        with pytest.raises(InfraReconcileError, match="status DELETING"):
            reconcile(hook, COMPUTE_ENVIRONMENT, spec)
        stubber.assert_no_pending_responses()
