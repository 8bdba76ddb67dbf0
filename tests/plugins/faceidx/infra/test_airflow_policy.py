"""The Airflow identity's least-privilege policy (infra/iam/airflow-policy.json) allows every AWS call
that face_infra_bootstrap, face_indexing and face_reindex make, in botocore's own operation names.

Every API call of every botocore client is recorded (``BaseClient._make_api_call``) while the code runs
against moto: a whole bootstrap (first run, rerun, an INVALID environment repaired, an infrastructure
update), and the hooks face_indexing and face_reindex use. Calls made by the Amazon provider's
operators (BatchOperator, BatchSensor), which need a running DAG, are listed from their source.
"""

from __future__ import annotations

import fnmatch
import json

import botocore.client
import botocore.session
import pytest

from faceidx.common.constants import (
    MAINTENANCE_JOB_DEFINITION,
    MAINTENANCE_JOB_QUEUE,
    PRIMARY_COMPUTE_ENVIRONMENT,
    PRIMARY_JOB_QUEUE,
)
from faceidx.infra.airflow_policy import load_policy_template, partition_for_region, render_airflow_policy
from faceidx.infra.render import KNOWN_PLACEHOLDERS, placeholders_in
from tests.support.batch_status import patch_batch_status
from tests.support.infra_moto import INPUT_BUCKET, OUTPUT_URI

# IAM's service prefix where it differs from botocore's endpoint prefix.
IAM_PREFIX = {"monitoring": "cloudwatch"}
# botocore operations whose IAM action has another name (the AWS service authorization reference).
ACTION_OF = {
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "s3:HeadBucket": "s3:ListBucket",
    "s3:GetBucketNotificationConfiguration": "s3:GetBucketNotification",
    "s3:PutBucketNotificationConfiguration": "s3:PutBucketNotification",
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
# Actions that are permissions, not API operations.
PERMISSION_ONLY = {"iam:PassRole"}
# The provider's operators: BatchOperator submits (and terminates on kill), BatchSensor describes,
# awslogs reading follows the job's log stream.
PROVIDER_CALLS = {"batch:SubmitJob", "batch:TerminateJob", "batch:DescribeJobs", "logs:GetLogEvents"}


def action_of(service_model, operation: str) -> str:
    prefix = service_model.metadata.get("signingName") or service_model.endpoint_prefix
    action = f"{IAM_PREFIX.get(prefix, prefix)}:{operation}"
    return ACTION_OF.get(action, action)


@pytest.fixture
def recorded(monkeypatch):
    calls: set[str] = set()
    original = botocore.client.BaseClient._make_api_call

    def record(self, operation_name, api_params):
        calls.add(action_of(self.meta.service_model, operation_name))
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    return calls


@pytest.fixture(scope="module")
def policy():
    return render_airflow_policy(
        {"input_bucket": INPUT_BUCKET, "output_uri": OUTPUT_URI}, "123456789012", "us-east-1"
    )


def allowed(policy, action: str) -> bool:
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if statement["Effect"] == "Allow" and any(fnmatch.fnmatchcase(action, a) for a in actions):
            return True
    return False


def policy_actions(policy) -> set[str]:
    return {
        a
        for s in policy["Statement"]
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }


def test_placeholders_are_the_specs_own():
    assert placeholders_in(load_policy_template()) <= KNOWN_PLACEHOLDERS


def test_every_action_names_a_botocore_operation(policy):
    session = botocore.session.get_session()
    known: set[str] = set(PERMISSION_ONLY)
    for service in ("batch", "iam", "sqs", "s3", "logs", "cloudwatch", "kms"):
        model = session.get_service_model(service)
        known.update(action_of(model, op) for op in model.operation_names)
    assert policy_actions(policy) - known == set()
    assert not [a for a in policy_actions(policy) if "*" in a], "no wildcard actions"


@pytest.mark.parametrize(("region", "partition"), [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")])
def test_the_policy_is_rendered_in_the_regions_partition(region, partition):
    rendered = json.dumps(
        render_airflow_policy({"input_bucket": "b", "output_uri": "s3://o/p/"}, "1" * 12, region)
    )
    assert partition_for_region(region) == partition
    assert "arn:aws:" not in rendered
    assert f"arn:{partition}:s3:::b" in rendered


def test_the_kms_statement_only_when_the_index_is_kms_encrypted():
    key = "arn:aws:kms:us-east-1:123456789012:key/0987dcba-09fe-87dc-65ba-ab0987654321"
    base = {"input_bucket": "b", "output_uri": "s3://o/p/"}
    without = render_airflow_policy(base, "123456789012", "us-east-1")
    assert "kms:Decrypt" not in json.dumps(without)
    with_key = render_airflow_policy({**base, "output_kms_key_arn": key}, "123456789012", "us-east-1")
    (statement,) = [s for s in with_key["Statement"] if s["Action"] == "kms:Decrypt"]
    assert statement["Resource"] == key


def test_every_call_the_dags_make_is_allowed(bootstrap, account, recorded, policy, monkeypatch, spec_dir):
    from faceidx.aws.batch import BatchJobsHook
    from faceidx.aws.s3 import ReindexS3Hook
    from faceidx.aws.sqs import SqsWorkQueueHook
    from faceidx.indexing.monitoring import read_queue_health
    from faceidx.reindex.index import parse_output_uri

    status = patch_batch_status(monkeypatch)
    # face_infra_bootstrap: first run, a rerun, an INVALID environment repaired, an infrastructure update.
    status.script(
        PRIMARY_COMPUTE_ENVIRONMENT, [("INVALID", "CLIENT_ERROR - Invalid IamInstanceProfile"), ("VALID", "")]
    )
    bootstrap()
    # an upload waits in the queue while a notification is put back: the bootstrap deletes S3's test
    # event and releases the upload's message
    sqs = account.client("sqs")
    sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName="faceidx-work")["QueueUrl"], MessageBody="{}")
    s3_client = account.client("s3")
    held = s3_client.get_bucket_notification_configuration(Bucket=INPUT_BUCKET)
    s3_client.put_bucket_notification_configuration(
        Bucket=INPUT_BUCKET,
        NotificationConfiguration={"QueueConfigurations": held["QueueConfigurations"][1:]},
    )
    bootstrap()
    account.client("iam").update_role(RoleName="faceidx-batch-job-role", Description="drifted")
    account.client("sqs").tag_queue(
        QueueUrl=account.client("sqs").get_queue_url(QueueName="faceidx-work")["QueueUrl"],
        Tags={"project": "x"},
    )
    path = spec_dir / "batch/compute-environment-secondary.json"
    spec = json.loads(path.read_text())
    spec["computeResources"]["bidPercentage"] = 80
    spec["tags"]["team"] = "vision"
    path.write_text(json.dumps(spec))
    path = spec_dir / "batch/job-queue-primary.json"
    queue = json.loads(path.read_text())
    queue["priority"], queue["tags"]["team"] = 90, "vision"
    path.write_text(json.dumps(queue))
    bootstrap(spec_dir=spec_dir)

    # face_indexing's own hooks; face_reindex's hooks.
    url = account.client("sqs").get_queue_url(QueueName="faceidx-work")["QueueUrl"]
    SqsWorkQueueHook(aws_conn_id="aws_default").get_queue_depth(url)
    read_queue_health(url, 3600, "aws_default")
    BatchJobsHook(aws_conn_id="aws_default").count_active_jobs(PRIMARY_JOB_QUEUE)
    job = account.client("batch").submit_job(
        jobName="w",
        jobQueue=PRIMARY_JOB_QUEUE,
        jobDefinition="face-recognition-job",
        arrayProperties={"size": 2},
    )
    batch = BatchJobsHook(aws_conn_id="aws_default")
    batch.describe_workers(job["jobId"])
    batch.find_job(PRIMARY_JOB_QUEUE, "w")  # worker_logs: this run's job by name
    # the index maintenance jobs: the bootstrap created their queue and definition (recorded above); a
    # submitted step is found, described and its log read with the same calls
    step = account.client("batch").submit_job(
        jobName="face-index-compact", jobQueue=MAINTENANCE_JOB_QUEUE, jobDefinition=MAINTENANCE_JOB_DEFINITION
    )
    batch.find_job(MAINTENANCE_JOB_QUEUE, "face-index-compact")
    batch.describe_workers(step["jobId"])
    batch.worker_logs(job["jobId"])  # ... and each worker's log stream
    from airflow.sdk.exceptions import TaskDeferred

    from faceidx.indexing.sensors import BatchJobWaitSensor

    with pytest.raises(TaskDeferred):  # wait_<role> reads the job, its queue and its definition
        BatchJobWaitSensor(
            task_id="wait_primary",
            role="primary",
            job_id=job["jobId"],
            aws_conn_id="aws_default",
            deferrable=True,
        ).execute({})
    s3 = ReindexS3Hook(aws_conn_id="aws_default")
    account.client("s3").put_object(Bucket=INPUT_BUCKET, Key="a/1.jpg", Body=b"x")
    list(s3.iter_objects(INPUT_BUCKET, "a/"))
    location = parse_output_uri(OUTPUT_URI)
    account.client("s3").put_object(
        Bucket=location.bucket, Key=f"{location.faces_prefix}p.parquet", Body=b"x"
    )
    assert location.bucket is not None
    for key, size in s3.list_index_files(location.bucket, location.faces_prefix):
        s3.open_index_file(location.bucket, key, size).read()
    SqsWorkQueueHook(aws_conn_id="aws_default").send_batch(url, [{"Id": "1", "MessageBody": "{}"}])

    ours = {c for c in recorded if not c.startswith(("ec2:", "sts:"))}
    # What the tests themselves did to set the account up (not the DAGs' calls).
    test_setup = {
        "s3:PutObject",
        "batch:SubmitJob",
        "iam:UpdateRole",
        "sqs:TagQueue",
        "sqs:SendMessage",
        "s3:PutBucketNotification",
    }
    assert {"batch:DeleteComputeEnvironment", "batch:UpdateJobQueue", "batch:TagResource"} <= ours
    denied = sorted(c for c in ours | PROVIDER_CALLS if not allowed(policy, c) and c not in test_setup)
    assert denied == []
    # Least privilege: every action granted is one the code calls. Those moto's run did not reach:
    not_reached = {
        "iam:CreateServiceLinkedRole": "Batch's own role, on its first use in an account",
        "iam:RemoveRoleFromInstanceProfile": "only when another role sits in the instance profile",
        "iam:TagInstanceProfile": "only when the instance profile's tags drift",
        "iam:TagRole": "only when a role's tags drift",
        "iam:UpdateAssumeRolePolicy": "only when a trust policy drifts",
    }
    assert policy_actions(policy) - ours - PROVIDER_CALLS - PERMISSION_ONLY == set(not_reached)
