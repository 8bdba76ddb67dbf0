"""Every resource kind reconciled against a moto server: create, leave alone, update in place, new revision,
report replacement, repair drift, and plan without changing anything."""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

import pytest

from faceidx.common.constants import (
    JOB_DEFINITION,
    MAINTENANCE_COMPUTE_ENVIRONMENT,
    PRIMARY_COMPUTE_ENVIRONMENT,
    SECONDARY_COMPUTE_ENVIRONMENT,
)
from faceidx.infra.tasks import run_bootstrap
from faceidx.infra.validate import InfraSpecError
from tests.plugins.faceidx.infra.conftest import actions
from tests.support.infra_moto import INPUT_BUCKET, OUTPUT_URI, WORKER_IMAGE

CE_NAMES = (PRIMARY_COMPUTE_ENVIRONMENT, SECONDARY_COMPUTE_ENVIRONMENT, MAINTENANCE_COMPUTE_ENVIRONMENT)
RESOURCE_COUNT = 20


def _edit(spec_dir, name, change):
    path = spec_dir / name
    spec = json.loads(path.read_text())
    change(spec)
    path.write_text(json.dumps(spec))


def _compute_environments(account):
    found = account.client("batch").describe_compute_environments(computeEnvironments=list(CE_NAMES))
    return {ce["computeEnvironmentName"]: ce for ce in found["computeEnvironments"]}


def _worker_job(run):
    """The GPU worker's job definition among the last step's results (the maintenance one is beside it)."""
    (result,) = [r for r in run["steps"][-1]["results"] if r["name"] == JOB_DEFINITION]
    return result


def _queue_url(account, name="faceidx-work"):
    return account.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]


def test_first_run_creates_everything_as_the_specs_say(bootstrap, account):
    run = bootstrap()
    assert set(actions(run).values()) == {"created"}
    assert len(actions(run)) == RESOURCE_COUNT
    iam, sqs, batch = account.client("iam"), account.client("sqs"), account.client("batch")

    # SQS: DLQ, work queue with redrive after 5 receives and a 30-minute visibility, queue policy.
    dlq_arn = sqs.get_queue_attributes(
        QueueUrl=_queue_url(account, "faceidx-work-dlq"), AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    work = sqs.get_queue_attributes(QueueUrl=_queue_url(account), AttributeNames=["All"])["Attributes"]
    assert work["VisibilityTimeout"] == "1800"
    dlq = sqs.get_queue_attributes(QueueUrl=_queue_url(account, "faceidx-work-dlq"), AttributeNames=["All"])
    assert int(dlq["Attributes"]["MessageRetentionPeriod"]) > int(work["MessageRetentionPeriod"])
    assert json.loads(work["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}
    (statement,) = json.loads(work["Policy"])["Statement"]
    assert statement["Resource"] == work["QueueArn"]
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == f"arn:aws:s3:::{INPUT_BUCKET}"
    assert sqs.list_queue_tags(QueueUrl=_queue_url(account))["Tags"] == {"project": "faceidx"}

    # IAM: instance role in its profile with the ECS policy; job role with its inline policy.
    profile = iam.get_instance_profile(InstanceProfileName="faceidx-batch-instance-profile")[
        "InstanceProfile"
    ]
    assert [r["RoleName"] for r in profile["Roles"]] == ["faceidx-batch-instance-role"]
    attached = iam.list_attached_role_policies(RoleName="faceidx-batch-instance-role")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonEC2ContainerServiceforEC2Role"]
    job_role = iam.get_role(RoleName="faceidx-batch-job-role")["Role"]
    assert job_role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "ecs-tasks.amazonaws.com"
    }
    inline = iam.get_role_policy(RoleName="faceidx-batch-job-role", PolicyName="faceidx-worker")[
        "PolicyDocument"
    ]
    resources = {s["Sid"]: s["Resource"] for s in inline["Statement"]}
    assert resources["WorkTheQueue"] == work["QueueArn"]
    assert resources["WriteIndexUnderOutputPrefixOnly"] == "arn:aws:s3:::faceidx-test-index/faces-v1/*"

    # S3: image suffixes of the input bucket go to the work queue.
    notifications = account.client("s3").get_bucket_notification_configuration(Bucket=INPUT_BUCKET)
    configs = notifications["QueueConfigurations"]
    assert {c["Filter"]["Key"]["FilterRules"][0]["Value"] for c in configs} == {
        ".jpg",
        ".jpeg",
        ".png",
        ".JPG",
        ".JPEG",
        ".PNG",
    }
    assert {c["QueueArn"] for c in configs} == {work["QueueArn"]}

    # Batch: two SPOT g4dn.xlarge environments, VALID, tagged; queues; the job definition.
    environments = _compute_environments(account)
    for name, role, max_vcpus, strategy in (
        (PRIMARY_COMPUTE_ENVIRONMENT, "primary", 16, "SPOT_CAPACITY_OPTIMIZED"),
        (SECONDARY_COMPUTE_ENVIRONMENT, "secondary", 256, "SPOT_PRICE_CAPACITY_OPTIMIZED"),
    ):
        ce = environments[name]
        resources = ce["computeResources"]
        assert (ce["type"], ce["state"], ce["status"]) == ("MANAGED", "ENABLED", "VALID")
        assert (resources["type"], resources["allocationStrategy"]) == ("SPOT", strategy)
        assert (resources["minvCpus"], resources["maxvCpus"], resources["bidPercentage"]) == (
            0,
            max_vcpus,
            100,
        )
        assert resources["instanceTypes"] == ["g4dn.xlarge", "g5.xlarge", "g6.xlarge"]
        assert resources["ec2Configuration"] == [{"imageType": "ECS_AL2023_NVIDIA"}]
        assert resources["subnets"] == account.params["subnets"]
        assert resources["securityGroupIds"] == account.params["security_group_ids"]
        assert resources["instanceRole"] == profile["Arn"]
        assert resources["tags"] == ce["tags"] == {"project": "faceidx", "environment": role}
    queues = {q["jobQueueName"]: q for q in batch.describe_job_queues()["jobQueues"]}
    assert {name: q["priority"] for name, q in queues.items()} == {
        "face-recognition-primary-queue": 100,
        "face-recognition-secondary-queue": 50,
        "face-recognition-maintenance-queue": 10,
    }
    for queue in queues.values():
        assert {
            a["reason"]: (a["state"], a["maxTimeSeconds"], a["action"])
            for a in queue["jobStateTimeLimitActions"]
        } == {
            "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY": ("RUNNABLE", 1800, "CANCEL"),
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE": ("RUNNABLE", 600, "CANCEL"),
            "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT": ("RUNNABLE", 600, "CANCEL"),
        }
    assert queues["face-recognition-primary-queue"]["computeEnvironmentOrder"] == [
        {"order": 1, "computeEnvironment": environments[PRIMARY_COMPUTE_ENVIRONMENT]["computeEnvironmentArn"]}
    ]
    (job,) = batch.describe_job_definitions(jobDefinitionName=JOB_DEFINITION, status="ACTIVE")[
        "jobDefinitions"
    ]
    container = job["containerProperties"]
    assert job["revision"] == 1
    assert container["image"] == WORKER_IMAGE
    assert container["jobRoleArn"] == job_role["Arn"]
    assert {r["type"]: r["value"] for r in container["resourceRequirements"]} == {
        "VCPU": "4",
        "MEMORY": "15000",
        "GPU": "1",
    }
    assert {e["name"]: e["value"] for e in container["environment"]} == {
        "FACEIDX_QUEUE_URL": _queue_url(account),
        "FACEIDX_OUTPUT_URI": OUTPUT_URI,
        "FACEIDX_MODEL_DIR": "/opt/models/buffalo_l",
        "FACEIDX_REQUIRE_GPU": "1",
        "FACEIDX_ALLOWED_BUCKETS": INPUT_BUCKET,
    }
    assert (job["propagateTags"], job["tags"]) == (True, {"project": "faceidx"})
    assert job["retryStrategy"]["attempts"] == 3


def test_second_run_reports_every_resource_unchanged(bootstrap, account):
    first = bootstrap()
    second = bootstrap()
    assert set(actions(second).values()) == {"unchanged"}
    assert second["summary"]["counts"]["unchanged"] == RESOURCE_COUNT
    assert [r["arn"] for s in second["steps"] for r in s["results"]] == [
        r["arn"] for s in first["steps"] for r in s["results"]
    ]


def test_image_uploads_reach_the_work_queue(bootstrap, account):
    bootstrap()
    sqs, s3 = account.client("sqs"), account.client("s3")
    url = _queue_url(account)
    for key in ("2026/a b.jpg", "notes.txt", "2026/b.PNG", "index/part.parquet"):
        s3.put_object(Bucket=INPUT_BUCKET, Key=key, Body=b"x")
    bodies = [
        json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    ]
    keys = sorted(unquote_plus(r["s3"]["object"]["key"]) for b in bodies for r in b.get("Records", []))
    assert keys == ["2026/a b.jpg", "2026/b.PNG"]
    assert not any(b.get("Event") == "s3:TestEvent" for b in bodies), "the bootstrap deleted its test event"


def test_notifications_of_other_teams_are_kept(bootstrap, account):
    sqs, s3 = account.client("sqs"), account.client("s3")
    other = sqs.create_queue(QueueName="other-team")["QueueUrl"]
    other_arn = sqs.get_queue_attributes(QueueUrl=other, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    # S3 would refuse one that overlaps ours (see test_bucket_notification.py); this one does not
    foreign = {
        "Id": "other-team-logs",
        "QueueArn": other_arn,
        "Events": ["s3:ObjectRemoved:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": ".log"}]}},
    }
    s3.put_bucket_notification_configuration(
        Bucket=INPUT_BUCKET, NotificationConfiguration={"QueueConfigurations": [foreign]}
    )
    bootstrap()
    again = bootstrap()
    ids = {
        c["Id"] for c in s3.get_bucket_notification_configuration(Bucket=INPUT_BUCKET)["QueueConfigurations"]
    }
    assert "other-team-logs" in ids
    assert len(ids) == 7
    assert actions(again)[f"s3 bucket notification {INPUT_BUCKET}"] == "unchanged"


def test_max_vcpus_change_is_an_in_place_update(bootstrap, account, spec_dir):
    bootstrap()
    arn_before = _compute_environments(account)[PRIMARY_COMPUTE_ENVIRONMENT]["computeEnvironmentArn"]
    _edit(
        spec_dir,
        "batch/compute-environment-primary.json",
        lambda s: s["computeResources"].update(maxvCpus=32),
    )
    run = bootstrap(spec_dir=spec_dir)
    (result,) = [r for s in run["steps"] for r in s["results"] if r["name"] == PRIMARY_COMPUTE_ENVIRONMENT]
    assert result["action"] == "updated"
    assert [(c["path"], c["current"], c["desired"], c["how"]) for c in result["changes"]] == [
        ("computeResources.maxvCpus", 16, 32, "in place")
    ]
    ce = _compute_environments(account)[PRIMARY_COMPUTE_ENVIRONMENT]
    assert ce["computeEnvironmentArn"] == arn_before, "same environment, not a new one"
    assert ce["computeResources"]["maxvCpus"] == 32
    others = {k: v for k, v in actions(run).items() if not k.endswith(PRIMARY_COMPUTE_ENVIRONMENT)}
    assert set(others.values()) == {"unchanged"}
    assert actions(bootstrap(spec_dir=spec_dir))[
        f"batch compute environment {PRIMARY_COMPUTE_ENVIRONMENT}"
    ] == ("unchanged")


def test_job_memory_change_registers_a_new_revision(bootstrap, account, spec_dir):
    bootstrap()

    def memory(spec):
        for requirement in spec["containerProperties"]["resourceRequirements"]:
            if requirement["type"] == "MEMORY":
                requirement["value"] = "14000"

    _edit(spec_dir, "batch/job-definition.json", memory)
    run = bootstrap(spec_dir=spec_dir)
    result = _worker_job(run)
    assert result["action"] == "updated"
    assert result["arn"].endswith(f"{JOB_DEFINITION}:2")
    assert result["changes"][0]["path"] == "containerProperties.resourceRequirements"
    assert result["changes"][0]["how"] == "new revision"
    revisions = account.client("batch").describe_job_definitions(
        jobDefinitionName=JOB_DEFINITION, status="ACTIVE"
    )
    latest = max(revisions["jobDefinitions"], key=lambda d: d["revision"])
    assert sorted(d["revision"] for d in revisions["jobDefinitions"]) == [1, 2]
    assert {r["type"]: r["value"] for r in latest["containerProperties"]["resourceRequirements"]}[
        "MEMORY"
    ] == "14000"
    again = bootstrap(spec_dir=spec_dir)
    assert _worker_job(again)["action"] == "unchanged", "compared with the latest ACTIVE revision"


def test_a_new_model_pack_is_a_new_job_definition_revision(bootstrap, account):
    def latest_environment():
        revisions = account.client("batch").describe_job_definitions(
            jobDefinitionName=JOB_DEFINITION, status="ACTIVE"
        )["jobDefinitions"]
        latest = max(revisions, key=lambda d: d["revision"])
        return latest["revision"], {
            e["name"]: e["value"] for e in latest["containerProperties"]["environment"]
        }

    bootstrap()
    assert "FACEIDX_MODEL_PACK" not in latest_environment()[1], "empty: the worker names the pack itself"

    run = bootstrap(model_pack="antelopev2", face_model_dir="/opt/models/antelopev2")
    result = _worker_job(run)
    assert result["action"] == "updated"
    assert result["arn"].endswith(f"{JOB_DEFINITION}:2")
    revision, environment = latest_environment()
    assert revision == 2
    assert environment["FACEIDX_MODEL_PACK"] == "antelopev2"
    assert environment["FACEIDX_MODEL_DIR"] == "/opt/models/antelopev2"

    again = bootstrap(model_pack="antelopev2", face_model_dir="/opt/models/antelopev2")
    assert _worker_job(again)["action"] == "unchanged"
    back = bootstrap(model_pack="buffalo_l")
    assert _worker_job(back)["arn"].endswith(f"{JOB_DEFINITION}:3")
    assert latest_environment()[1]["FACEIDX_MODEL_PACK"] == "buffalo_l"


def test_a_change_that_needs_replacement_is_reported_not_attempted(bootstrap, account):
    iam, ec2 = account.client("iam"), account.client("ec2")
    custom = iam.create_role(RoleName="custom-batch-service-role", AssumeRolePolicyDocument="{}")["Role"][
        "Arn"
    ]
    bootstrap(service_role_arn=custom)
    vpc = ec2.describe_subnets(SubnetIds=account.params["subnets"])["Subnets"][0]["VpcId"]
    new_subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.2.0/24")["Subnet"]["SubnetId"]
    run = bootstrap(service_role_arn=custom, subnets=[new_subnet])
    for name in CE_NAMES:
        (result,) = [r for s in run["steps"] for r in s["results"] if r["name"] == name]
        assert result["action"] == "needs-replacement"
        assert {c["how"] for c in result["changes"]} == {"replacement"}
        assert "delete it" in result["note"]
        assert (
            _compute_environments(account)[name]["computeResources"]["subnets"] == account.params["subnets"]
        )
    assert sorted(run["summary"]["needs_replacement"]) == sorted(
        f"batch compute environment {n}" for n in CE_NAMES
    )


def test_drift_in_iam_and_sqs_is_repaired(bootstrap, account):
    bootstrap()
    iam, sqs = account.client("iam"), account.client("sqs")
    iam.put_role_policy(
        RoleName="faceidx-batch-job-role",
        PolicyName="faceidx-worker",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )
    sqs.set_queue_attributes(QueueUrl=_queue_url(account), Attributes={"VisibilityTimeout": "30"})
    run = actions(bootstrap())
    assert run["iam inline policy faceidx-batch-job-role/faceidx-worker"] == "updated"
    assert run["sqs queue faceidx-work"] == "updated"
    inline = iam.get_role_policy(RoleName="faceidx-batch-job-role", PolicyName="faceidx-worker")[
        "PolicyDocument"
    ]
    assert "s3:*" not in json.dumps(inline)
    attributes = sqs.get_queue_attributes(QueueUrl=_queue_url(account), AttributeNames=["VisibilityTimeout"])
    assert attributes["Attributes"]["VisibilityTimeout"] == "1800"


def test_dry_run_on_an_empty_account_plans_everything_and_changes_nothing(bootstrap, account):
    run = bootstrap(dry_run=True)
    assert set(actions(run).values()) == {"created"}
    assert all(r["dry_run"] for s in run["steps"] for r in s["results"])
    assert account.client("sqs").list_queues().get("QueueUrls", []) == []
    assert [
        r["RoleName"] for r in account.client("iam").list_roles()["Roles"] if "faceidx" in r["RoleName"]
    ] == []
    assert _compute_environments(account) == {}
    assert account.client("batch").describe_job_definitions()["jobDefinitions"] == []
    notifications = account.client("s3").get_bucket_notification_configuration(Bucket=INPUT_BUCKET)
    assert "QueueConfigurations" not in notifications


def test_dry_run_plans_an_update_without_applying_it(bootstrap, account, spec_dir):
    bootstrap()
    _edit(
        spec_dir,
        "batch/compute-environment-secondary.json",
        lambda s: s["computeResources"].update(maxvCpus=128),
    )
    run = bootstrap(spec_dir=spec_dir, dry_run=True)
    assert actions(run)[f"batch compute environment {SECONDARY_COMPUTE_ENVIRONMENT}"] == "updated"
    assert (
        _compute_environments(account)[SECONDARY_COMPUTE_ENVIRONMENT]["computeResources"]["maxvCpus"] == 256
    )


def test_invalid_spec_fails_before_any_aws_call(account, spec_dir):
    _edit(
        spec_dir, "batch/compute-environment-primary.json", lambda s: s["computeResources"].update(maxvCpus=2)
    )
    built = []
    with pytest.raises(InfraSpecError, match="maxvCpus is 2"):
        run_bootstrap(account.params, {}, lambda: built.append("hook") or pytest.fail("hook built"), spec_dir)
    assert built == []
    assert account.client("sqs").list_queues().get("QueueUrls", []) == []
    assert _compute_environments(account) == {}
