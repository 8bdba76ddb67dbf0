"""The index maintenance jobs' side of face_infra_bootstrap: a CPU compute environment, its job queue,
its job definition and its job role, created in moto, left alone on a rerun, refused by validation
when they could not work, and allowed to the Airflow identity (SubmitJob on the maintenance queue)."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest

from faceidx.common.constants import (
    MAINTENANCE_COMPUTE_ENVIRONMENT,
    MAINTENANCE_JOB_DEFINITION,
    MAINTENANCE_JOB_QUEUE,
    PRIMARY_COMPUTE_ENVIRONMENT,
)
from faceidx.infra.airflow_policy import render_airflow_policy
from faceidx.infra.catalog import SPECS, SPECS_BY_KEY, WORKLOADS
from faceidx.infra.instance_types import largest_allocatable_mib
from faceidx.infra.validate import InfraSpecError, validate_specs
from faceidx.infra.values import (
    DEFAULT_MAINTENANCE_INSTANCE_TYPES,
    MAINTENANCE_JOB_MAX_MEMORY_MIB,
    InvalidValueError,
    example_params,
    maintenance_image_for,
    resolve_values,
)
from tests.plugins.faceidx.infra.conftest import REPO, actions
from tests.support.infra_moto import OUTPUT_BUCKET, OUTPUT_URI, WORKER_IMAGE

CE = "batch/compute-environment-maintenance"
QUEUE = "batch/job-queue-maintenance"
JOB = "batch/job-definition-maintenance"
ROLE = "faceidx-maintenance-job-role"
ACCOUNT = "123456789012"
REGION = "us-east-1"


def _edit(spec_dir: Path, key: str, change) -> None:
    path = spec_dir / f"{key}.json"
    spec = json.loads(path.read_text())
    change(spec)
    path.write_text(json.dumps(spec))


def _refused(spec_dir=None, **params) -> str:
    with pytest.raises(InfraSpecError) as caught:
        validate_specs({**example_params(), **params}, {}, spec_dir)
    return str(caught.value)


def test_every_spec_file_is_in_the_catalog():
    on_disk = {
        str(path.relative_to(REPO / "infra").with_suffix(""))
        for path in (REPO / "infra").rglob("*.json")
        if path.name != "airflow-policy.json"  # attached by hand before bootstrap can run
    }
    assert on_disk == {entry.key for entry in SPECS}


def test_dependency_order_role_before_job_definition_environment_before_queue():
    keys = [entry.key for entry in SPECS]
    assert keys.index("iam/maintenance-job-role") < keys.index(JOB)
    assert keys.index("iam/maintenance-job-role") < keys.index("iam/maintenance-job-role-policy")
    assert keys.index("iam/instance-profile") < keys.index(CE)
    assert keys.index(CE) < keys.index(QUEUE)
    assert SPECS_BY_KEY["iam/maintenance-job-role"].outputs == {"arn": "MAINTENANCE_JOB_ROLE_ARN"}
    assert SPECS_BY_KEY[CE].reads == {"job_definition": JOB}, "its updatePolicy is sized to this job"


def test_bootstrap_creates_the_maintenance_side_in_moto(bootstrap, account):
    run = bootstrap()
    assert actions(run)[f"batch compute environment {MAINTENANCE_COMPUTE_ENVIRONMENT}"] == "created"
    batch, iam = account.client("batch"), account.client("iam")

    (ce,) = batch.describe_compute_environments(computeEnvironments=[MAINTENANCE_COMPUTE_ENVIRONMENT])[
        "computeEnvironments"
    ]
    resources = ce["computeResources"]
    assert (ce["state"], ce["status"]) == ("ENABLED", "VALID")
    assert (resources["type"], resources["allocationStrategy"]) == ("SPOT", "SPOT_PRICE_CAPACITY_OPTIMIZED")
    assert (resources["minvCpus"], resources["maxvCpus"]) == (0, 32)
    assert resources["instanceTypes"] == list(DEFAULT_MAINTENANCE_INSTANCE_TYPES)
    assert {t.split(".")[0] for t in resources["instanceTypes"]} == {"r7i", "r6i", "r5"}
    assert resources["ec2Configuration"] == [{"imageType": "ECS_AL2023"}]
    assert resources["subnets"] == account.params["subnets"]

    (queue,) = batch.describe_job_queues(jobQueues=[MAINTENANCE_JOB_QUEUE])["jobQueues"]
    assert queue["computeEnvironmentOrder"] == [
        {"order": 1, "computeEnvironment": ce["computeEnvironmentArn"]}
    ]
    assert {a["reason"] for a in queue["jobStateTimeLimitActions"]} == {
        "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
    }

    role = iam.get_role(RoleName=ROLE)["Role"]
    (job,) = batch.describe_job_definitions(jobDefinitionName=MAINTENANCE_JOB_DEFINITION, status="ACTIVE")[
        "jobDefinitions"
    ]
    container = job["containerProperties"]
    assert container["image"] == f"{WORKER_IMAGE}-maintenance"
    assert container["command"] == ["python", "-m", "faceidx.jobs"]
    assert container["jobRoleArn"] == role["Arn"]
    assert {r["type"]: r["value"] for r in container["resourceRequirements"]} == {
        "VCPU": "2",
        "MEMORY": "15000",
    }
    assert {e["name"]: e["value"] for e in container["environment"]} == {"FACEIDX_OUTPUT_URI": OUTPUT_URI}
    rules = job["retryStrategy"]["evaluateOnExit"]
    # spot reclaims only: a step that fails on its own is not run again (moto lower-cases the action)
    assert [(r.get("onStatusReason"), r.get("onReason"), r["action"].upper()) for r in rules] == [
        ("Host EC2*", None, "RETRY"),
        (None, "*", "EXIT"),
    ]
    assert job["propagateTags"] is True

    policy = iam.get_role_policy(RoleName=ROLE, PolicyName="faceidx-maintenance")["PolicyDocument"]
    text = json.dumps(policy)
    assert "sqs:" not in text, "maintenance works no queue"
    assert account.params["input_bucket"] not in text, "nor reads the input bucket"
    grants = {s["Sid"]: s for s in policy["Statement"]}
    objects = grants["ReadWriteDeleteTheIndexUnderOutputPrefixOnly"]
    assert objects["Resource"] == f"arn:aws:s3:::{OUTPUT_BUCKET}/faces-v1/*"
    assert set(objects["Action"]) == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
    }
    listing = grants["ListUnderTheOutputPrefixOnlySoMissingKeysRead404"]
    assert listing["Resource"] == f"arn:aws:s3:::{OUTPUT_BUCKET}"
    assert listing["Condition"] == {"StringLikeIfExists": {"s3:prefix": ["faces-v1/*"]}}


def test_a_second_bootstrap_changes_nothing_on_the_maintenance_side(bootstrap, account):
    bootstrap()
    again = actions(bootstrap())
    ours = {k: v for k, v in again.items() if "maintenance" in k}
    assert len(ours) == 5
    assert set(ours.values()) == {"unchanged"}
    revisions = account.client("batch").describe_job_definitions(jobDefinitionName=MAINTENANCE_JOB_DEFINITION)
    assert [d["revision"] for d in revisions["jobDefinitions"]] == [1]


def test_a_new_maintenance_image_is_a_new_revision_and_nothing_else(bootstrap, account):
    bootstrap()
    changed = actions(bootstrap(maintenance_image=f"{WORKER_IMAGE}-maintenance-2"))
    assert changed[f"batch job definition {MAINTENANCE_JOB_DEFINITION}"] == "updated"
    assert {k for k, v in changed.items() if v != "unchanged"} == {
        f"batch job definition {MAINTENANCE_JOB_DEFINITION}"
    }


def test_a_dry_run_plans_the_maintenance_side_and_creates_nothing(bootstrap, account):
    planned = actions(bootstrap(dry_run=True))
    assert planned[f"batch job queue {MAINTENANCE_JOB_QUEUE}"] == "created"
    assert planned[f"iam role {ROLE}"] == "created"
    assert account.client("batch").describe_job_queues()["jobQueues"] == []


# -- validation ------------------------------------------------------------------------------------
def test_validation_refuses_a_gpu_type_in_the_maintenance_environment():
    message = _refused(maintenance_instance_types=["r7i.large", "g4dn.xlarge"])
    assert f"compute environment {MAINTENANCE_COMPUTE_ENVIRONMENT}" in message
    assert "instance type 'g4dn.xlarge' has a GPU" in message
    assert "Drop 'g4dn.xlarge' from maintenance_instance_types" in message


def test_validation_refuses_a_type_that_is_not_memory_optimised():
    message = _refused(maintenance_instance_types=["r6i.large", "g5"])  # a GPU family, expanded
    assert "'g5' has a GPU" in message


def test_the_gpu_environments_keep_refusing_cpu_types():
    message = _refused(instance_types=["g4dn.xlarge", "r7i.large"])
    assert (
        f"job definition face-recognition-job on compute environment {PRIMARY_COMPUTE_ENVIRONMENT}" in message
    )
    assert "asks for 1 GPUs; a r7i.large has 0" in message


@pytest.mark.parametrize(
    ("key", "change", "expected"),
    [
        (
            JOB,
            lambda s: s["containerProperties"]["resourceRequirements"].append({"type": "GPU", "value": "1"}),
            "asks for 1 GPU(s), but it runs the index maintenance steps on CPU instance types",
        ),
        (
            JOB,
            lambda s: s["containerProperties"].update(jobRoleArn="${JOB_ROLE_ARN}"),
            "jobRoleArn is '${JOB_ROLE_ARN}', not ${MAINTENANCE_JOB_ROLE_ARN}",
        ),
        (
            JOB,
            lambda s: s["containerProperties"]["resourceRequirements"].__setitem__(
                1, {"type": "MEMORY", "value": "16384"}
            ),
            "asks for 16384 MiB of memory, but a r7i.large has about 15319 MiB allocatable",
        ),
        (
            QUEUE,
            lambda s: s["computeEnvironmentOrder"].append(
                {"order": 2, "computeEnvironment": PRIMARY_COMPUTE_ENVIRONMENT}
            ),
            f"names compute environment '{PRIMARY_COMPUTE_ENVIRONMENT}', but the jobs submitted to it "
            f"(job definition {MAINTENANCE_JOB_DEFINITION}) run only on {MAINTENANCE_COMPUTE_ENVIRONMENT}",
        ),
        (
            "batch/job-queue-primary",
            lambda s: s["computeEnvironmentOrder"].append(
                {"order": 2, "computeEnvironment": MAINTENANCE_COMPUTE_ENVIRONMENT}
            ),
            f"names compute environment '{MAINTENANCE_COMPUTE_ENVIRONMENT}', but the jobs submitted to it "
            "(job definition face-recognition-job)",
        ),
        (
            CE,
            lambda s: s["computeResources"].update(ec2Configuration=[{"imageType": "ECS_AL2023_NVIDIA"}]),
            "not the CPU AMI faceidx is built and tested on (ECS_AL2023)",
        ),
        (
            CE,
            lambda s: s["computeResources"].update(maxvCpus=1),
            "maxvCpus is 1, less than one job's 2 vCPUs",
        ),
    ],
    ids=["gpu-requirement", "worker-role", "memory", "queue-gpu-env", "gpu-queue-cpu-env", "ami", "maxvcpus"],
)
def test_validation_refuses_a_maintenance_side_that_cannot_work(spec_dir, key, change, expected):
    _edit(spec_dir, key, change)
    assert expected in _refused(spec_dir)


@pytest.mark.parametrize(
    ("types", "largest"),
    [
        (["r7i.large"], 15_319),
        (["r5.large", "r6i.4xlarge"], 122_552),
        (["r6i"], 245_104),  # a whole family: its largest size in the table
        (["x9.huge"], 0),
    ],
)
def test_the_largest_job_a_list_of_types_can_hold(types, largest):
    assert largest_allocatable_mib(types) == largest


def test_a_maintenance_job_may_ask_for_a_4xlarges_memory_by_default():
    assert MAINTENANCE_JOB_MAX_MEMORY_MIB == 122_552


def test_the_shipped_maintenance_job_has_no_gpu_and_no_worker_exit_retry():
    result = validate_specs(example_params(), {})
    assert result.findings == []
    job = result.rendered[JOB]["containerProperties"]
    assert "GPU" not in {r["type"] for r in job["resourceRequirements"]}
    (workload,) = [w for w in WORKLOADS if w.job_definition == JOB]
    assert (workload.hardware, workload.job_role) == ("cpu", "MAINTENANCE_JOB_ROLE_ARN")


@pytest.mark.parametrize(
    ("worker", "maintenance"),
    [
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/faceidx-worker:0.1.0",
            "…/faceidx-worker:0.1.0-maintenance",
        ),
        ("localhost:5000/faceidx-worker:dev", "localhost:5000/faceidx-worker:dev-maintenance"),
        ("localhost:5000/faceidx-worker", "localhost:5000/faceidx-worker:maintenance"),
        ("faceidx-worker", "faceidx-worker:maintenance"),
    ],
)
def test_the_maintenance_image_defaults_to_the_worker_images_tag_plus_maintenance(worker, maintenance):
    expected = maintenance.replace("…", "123456789012.dkr.ecr.us-east-1.amazonaws.com")
    assert maintenance_image_for(worker) == expected


def test_a_worker_image_pinned_by_digest_needs_its_maintenance_image_given():
    params = {
        **example_params(),
        "maintenance_image": "",
        "worker_image": "repo/faceidx-worker@sha256:" + "a" * 64,
    }
    with pytest.raises(InvalidValueError, match="Set the maintenance_image Param"):
        resolve_values(params, {})
    given = resolve_values({**params, "maintenance_image": "repo/m:1"}, {})
    assert given["MAINTENANCE_IMAGE"] == "repo/m:1"
    from_variable = resolve_values(params, {"faceidx_maintenance_image": "repo/m:2"})
    assert from_variable["MAINTENANCE_IMAGE"] == "repo/m:2"


# -- the Airflow identity's policy, resource by resource ----------------------------------------------
def _allows(policy, action: str, resource: str, service: str | None = None) -> bool:
    for statement in policy["Statement"]:
        acts = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        res = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if statement["Effect"] != "Allow" or not any(fnmatch.fnmatchcase(action, a) for a in acts):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in res):
            continue
        passed_to = statement.get("Condition", {}).get("StringEquals", {}).get("iam:PassedToService")
        if passed_to is not None and service not in passed_to:
            continue
        return True
    return False


@pytest.fixture(scope="module")
def policy():
    return render_airflow_policy({"input_bucket": "acme-photos", "output_uri": OUTPUT_URI}, ACCOUNT, REGION)


BATCH = f"arn:aws:batch:{REGION}:{ACCOUNT}"


@pytest.mark.parametrize(
    ("action", "resource", "service"),
    [
        ("batch:SubmitJob", f"{BATCH}:job-queue/{MAINTENANCE_JOB_QUEUE}", None),
        ("batch:SubmitJob", f"{BATCH}:job-definition/{MAINTENANCE_JOB_DEFINITION}:7", None),
        ("batch:TagResource", f"{BATCH}:job/0f1e2d3c-0000-4000-8000-000000000000", None),
        ("batch:TerminateJob", f"{BATCH}:job/0f1e2d3c-0000-4000-8000-000000000000", None),
        ("batch:DescribeJobs", "*", None),
        ("batch:ListJobs", "*", None),
        (
            "batch:CreateComputeEnvironment",
            f"{BATCH}:compute-environment/{MAINTENANCE_COMPUTE_ENVIRONMENT}",
            None,
        ),
        ("batch:UpdateJobQueue", f"{BATCH}:job-queue/{MAINTENANCE_JOB_QUEUE}", None),
        ("batch:RegisterJobDefinition", f"{BATCH}:job-definition/{MAINTENANCE_JOB_DEFINITION}", None),
        ("iam:CreateRole", f"arn:aws:iam::{ACCOUNT}:role/{ROLE}", None),
        ("iam:PutRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/{ROLE}", None),
        # RegisterJobDefinition passes the job role to Batch; SubmitJob passes no role.
        ("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/{ROLE}", "batch.amazonaws.com"),
    ],
)
def test_the_airflow_policy_allows_the_maintenance_calls(policy, action, resource, service):
    assert _allows(policy, action, resource, service)


@pytest.mark.parametrize(
    ("action", "resource", "service"),
    [
        ("batch:SubmitJob", f"{BATCH}:job-definition/someone-elses-job:1", None),
        ("batch:SubmitJob", f"{BATCH}:job-queue/another-team-queue", None),
        ("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/{ROLE}", "lambda.amazonaws.com"),
        ("iam:PutRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/another-role", None),
    ],
)
def test_the_airflow_policy_stays_least_privilege(policy, action, resource, service):
    assert not _allows(policy, action, resource, service)
