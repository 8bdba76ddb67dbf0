"""An error on a describe is never read as "absent": AWS's message is raised and nothing is created.

Errors are injected with botocore's Stubber on the hook's own clients; every API call the clients
make is recorded, so a fall-through to a create would show.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from faceidx.infra import kinds_batch, kinds_compute, kinds_iam, kinds_s3, kinds_sqs
from faceidx.infra.hook_base import InfraReconcileHook
from faceidx.infra.reconcile import reconcile
from faceidx.infra.results import InfraReconcileError
from faceidx.infra.validate import validate_specs
from faceidx.infra.values import example_params
from tests.support.moto_server import aws_connection_uri_json

DENIED = "User: arn:aws:sts::123456789012:assumed-role/airflow/worker is not authorized to perform: {op}"


@pytest.fixture
def hook(monkeypatch):
    # Nothing listens there: every call must be answered by the Stubber.
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection_uri_json("http://127.0.0.1:9"))
    return InfraReconcileHook(aws_conn_id="aws_default")


@pytest.fixture(scope="module")
def specs():
    return validate_specs(example_params(), {}).rendered


@pytest.mark.parametrize(
    ("kind", "key", "service", "operation", "code"),
    [
        (kinds_iam.ROLE, "iam/job-role", "iam", "get_role", "AccessDenied"),
        (kinds_iam.INSTANCE_PROFILE, "iam/instance-profile", "iam", "get_instance_profile", "AccessDenied"),
        (kinds_iam.ROLE_INLINE_POLICY, "iam/job-role-policy", "iam", "get_role_policy", "AccessDenied"),
        (kinds_sqs.QUEUE, "sqs/work-queue", "sqs", "get_queue_url", "AccessDenied"),
        (
            kinds_s3.BUCKET_NOTIFICATION,
            "s3/input-bucket-notification",
            "s3",
            "get_bucket_notification_configuration",
            "AccessDenied",
        ),
        (
            kinds_compute.COMPUTE_ENVIRONMENT,
            "batch/compute-environment-primary",
            "batch",
            "describe_compute_environments",
            "AccessDeniedException",
        ),
        (
            kinds_compute.COMPUTE_ENVIRONMENT,
            "batch/compute-environment-primary",
            "batch",
            "describe_compute_environments",
            "TooManyRequestsException",
        ),
        (
            kinds_batch.JOB_QUEUE,
            "batch/job-queue-primary",
            "batch",
            "describe_job_queues",
            "AccessDeniedException",
        ),
        (
            kinds_batch.JOB_DEFINITION,
            "batch/job-definition",
            "batch",
            "describe_job_definitions",
            "AccessDeniedException",
        ),
    ],
)
def test_describe_error_fails_with_aws_message_and_creates_nothing(
    hook, specs, kind, key, service, operation, code
):
    client = hook.client_for(service)
    called: list[str] = []
    client.meta.events.register("before-parameter-build", lambda model, **_: called.append(model.name))
    action = f"{service}:{client.meta.method_to_api_mapping[operation]}"
    message = DENIED.format(op=action)
    with Stubber(client) as stubber:
        stubber.add_client_error(
            operation, service_error_code=code, service_message=message, http_status_code=403
        )
        with pytest.raises(InfraReconcileError) as caught:
            reconcile(hook, kind, specs[key])
        stubber.assert_no_pending_responses()
    text = str(caught.value)
    assert f"{code}: {message}" in text, "AWS's own code and message"
    assert "Nothing more was changed" in text
    assert isinstance(caught.value.__cause__, ClientError)
    assert len(called) == 1, f"only the describe was called, no create: {called}"
    if code.startswith("AccessDenied") and service != "s3":
        assert f"Grant {action} to the identity of the Airflow AWS connection" in text
    if service == "s3":
        assert "s3:GetBucketNotification" in text


def test_missing_input_bucket_says_it_must_exist(hook, specs):
    client = hook.client_for("s3")
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "get_bucket_notification_configuration",
            service_error_code="NoSuchBucket",
            service_message="The specified bucket does not exist",
            http_status_code=404,
        )
        with pytest.raises(InfraReconcileError, match="input bucket must exist before bootstrap"):
            reconcile(hook, kinds_s3.BUCKET_NOTIFICATION, specs["s3/input-bucket-notification"])
