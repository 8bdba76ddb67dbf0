"""Offline validation: botocore's request shapes plus our own checks, each failure with its fix."""

from __future__ import annotations

import copy
import json

import pytest

from faceidx.common.constants import (
    JOB_DEFINITION,
    PRIMARY_COMPUTE_ENVIRONMENT,
    PRIMARY_JOB_QUEUE,
    PROJECT_TAG,
    SECONDARY_COMPUTE_ENVIRONMENT,
    SECONDARY_JOB_QUEUE,
)
from faceidx.infra.checks import ERROR, WARNING
from faceidx.infra.validate import InfraSpecError, stand_in, validate_rendered, validate_specs
from faceidx.infra.values import MissingValuesError, example_params

# The partition is read from the first queue ARN, so offline it is a stand-in.
PARTITION = stand_in("PARTITION")
CE_PRIMARY = "batch/compute-environment-primary"
CE_SECONDARY = "batch/compute-environment-secondary"
JOB = "batch/job-definition"

# The original design's job definition: 16 GiB on a 16 GiB instance, and no GPU requested.
ORIGINAL_DESIGN_JOB = {
    "jobDefinitionName": "face-recognition-job",
    "type": "container",
    "containerProperties": {
        "image": "face-recognition:latest",
        "vcpus": 4,
        "memory": 16384,
        "command": ["python", "run_detection_service.py"],
    },
}


@pytest.fixture(scope="module")
def rendered():
    return validate_specs(example_params(), {}).rendered


def _errors(findings):
    return [f for f in findings if f.severity == ERROR]


def test_shipped_specs_are_valid_without_warnings(rendered):
    assert validate_rendered(rendered) == []


def test_specs_use_the_shared_names_and_tags(rendered):
    assert rendered[CE_PRIMARY]["computeEnvironmentName"] == PRIMARY_COMPUTE_ENVIRONMENT
    assert rendered[CE_SECONDARY]["computeEnvironmentName"] == SECONDARY_COMPUTE_ENVIRONMENT
    assert rendered["batch/job-queue-primary"]["jobQueueName"] == PRIMARY_JOB_QUEUE
    assert rendered["batch/job-queue-secondary"]["jobQueueName"] == SECONDARY_JOB_QUEUE
    assert rendered[JOB]["jobDefinitionName"] == JOB_DEFINITION
    for key, role in ((CE_PRIMARY, "primary"), (CE_SECONDARY, "secondary")):
        ce = rendered[key]
        assert ce["tags"] == {"project": PROJECT_TAG, "environment": role}
        assert ce["computeResources"]["tags"] == {"project": PROJECT_TAG, "environment": role}
        assert "serviceRole" not in ce, "AWS specs name no custom service role"
    assert rendered[JOB]["propagateTags"] is True
    assert rendered[JOB]["tags"] == {"project": PROJECT_TAG}


def test_job_definition_matches_the_worker_contract(rendered):
    job = rendered[JOB]
    container = job["containerProperties"]
    assert {r["type"]: r["value"] for r in container["resourceRequirements"]} == {
        "VCPU": "4",
        "MEMORY": "15000",
        "GPU": "1",
    }
    assert container["command"] == ["python", "run_detection_service.py"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["FACEIDX_REQUIRE_GPU"] == "1"
    worker = {"FACEIDX_QUEUE_URL", "FACEIDX_OUTPUT_URI", "FACEIDX_MODEL_DIR", "FACEIDX_ALLOWED_BUCKETS"}
    assert worker <= set(env)
    assert job["retryStrategy"] == {
        "attempts": 3,
        "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"},
            {"onExitCode": "4", "action": "RETRY"},  # the worker's stalled-lane exit
            {"onReason": "*", "action": "EXIT"},
        ],
    }
    assert job["timeout"]["attemptDurationSeconds"] > 0
    assert container["logConfiguration"] == {"logDriver": "awslogs"}


def test_job_role_policy_is_least_privilege(rendered):
    policy = json.loads(rendered["iam/job-role-policy"]["PolicyDocument"])
    grants = {s["Sid"]: (s["Action"], s["Resource"]) for s in policy["Statement"]}
    assert grants["ReadInputImages"] == ("s3:GetObject", f"arn:{PARTITION}:s3:::acme-photos/*")
    assert grants["WriteIndexUnderOutputPrefixOnly"] == (
        "s3:PutObject",
        f"arn:{PARTITION}:s3:::acme-face-index/faces-v1/*",
    )
    assert sorted(grants["WorkTheQueue"][0]) == sorted(
        ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
    )
    assert all(s["Effect"] == "Allow" and "*" not in s["Action"] for s in policy["Statement"])


def test_queue_policy_lets_only_the_input_bucket_send(rendered):
    policy = json.loads(rendered["sqs/work-queue-policy"]["Attributes"]["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"]["ArnEquals"] == {"aws:SourceArn": f"arn:{PARTITION}:s3:::acme-photos"}


def test_original_design_job_definition_is_rejected_with_both_explanations(spec_dir):
    (spec_dir / f"{JOB}.json").write_text(json.dumps(ORIGINAL_DESIGN_JOB))
    with pytest.raises(InfraSpecError) as caught:
        validate_specs(example_params(), {}, spec_dir)
    message = str(caught.value)
    assert "asks for 16384 MiB of memory, but a g4dn.xlarge has about 15319 MiB allocatable" in message
    assert "sit in RUNNABLE forever" in message
    assert "Ask for at most 15319 MiB" in message
    assert "asks for no GPU" in message
    assert 'Add {"type": "GPU", "value": "1"}' in message
    assert "nothing was sent to AWS" in message


@pytest.mark.parametrize(
    ("requirements", "expect_memory", "expect_gpu"),
    [
        ([("VCPU", "4"), ("MEMORY", "16384")], True, True),
        ([("VCPU", "4"), ("MEMORY", "16384"), ("GPU", "1")], True, False),
        ([("VCPU", "4"), ("MEMORY", "15000")], False, True),
        ([("VCPU", "4"), ("MEMORY", "15319"), ("GPU", "1")], False, False),  # the exact limit fits
        ([("VCPU", "4"), ("MEMORY", "15320"), ("GPU", "1")], True, False),
    ],
)
def test_memory_and_gpu_boundaries(rendered, requirements, expect_memory, expect_gpu):
    specs = copy.deepcopy(rendered)
    specs[JOB]["containerProperties"]["resourceRequirements"] = [
        {"type": t, "value": v} for t, v in requirements
    ]
    problems = " ".join(f.problem for f in _errors(validate_rendered(specs)))
    assert ("MiB of memory" in problems) is expect_memory
    assert ("asks for no GPU" in problems) is expect_gpu


def _mutate(rendered, key, path, value):
    specs = copy.deepcopy(rendered)
    node = specs[key]
    *parents, last = path
    for part in parents:
        node = node[part]
    if value is None:
        node.pop(last)
    else:
        node[last] = value
    return specs


@pytest.mark.parametrize(
    ("key", "path", "value", "problem", "fix"),
    [
        (
            CE_PRIMARY,
            ["computeResources", "maxvCpus"],
            2,
            "maxvCpus is 2, less than one job's 4",
            "at least 4",
        ),
        (
            CE_PRIMARY,
            ["computeResources", "allocationStrategy"],
            "BEST_FIT",
            "cannot be updated in place",
            "SPOT_PRICE_CAPACITY_OPTIMIZED",
        ),
        (CE_PRIMARY, ["computeResources", "allocationStrategy"], None, "BEST_FIT is the default", "one of"),
        (
            CE_PRIMARY,
            ["computeResources", "allocationStrategy"],
            "SPOT_CAPACITY_OPTIMIZED_PRIORITIZED",
            "cannot be updated in place",
            "one of",
        ),
        (
            CE_PRIMARY,
            ["computeResources", "instanceTypes"],
            ["p3.2xlarge"],
            "not in faceidx's instance table",
            "INSTANCE_TYPES",
        ),
        (CE_PRIMARY, ["computeResources", "bidPercentage"], 150, "outside 1-100", "Use 100"),
        (
            JOB,
            ["containerProperties", "resourceRequirements"],
            [
                {"type": "VCPU", "value": "8"},
                {"type": "MEMORY", "value": "15000"},
                {"type": "GPU", "value": "1"},
            ],
            "8 vCPUs; a g4dn.xlarge has 4",
            "at most 4 vCPUs",
        ),
        (
            JOB,
            ["containerProperties", "resourceRequirements"],
            [
                {"type": "VCPU", "value": "4"},
                {"type": "MEMORY", "value": "15000"},
                {"type": "GPU", "value": "2"},
            ],
            "2 GPUs; a g4dn.xlarge has 1",
            "at most 1 GPU",
        ),
        (
            "batch/job-queue-primary",
            ["computeEnvironmentOrder"],
            [{"order": 1, "computeEnvironment": "face-recognition-tertiary"}],
            "names compute environment 'face-recognition-tertiary'",
            "face-recognition-primary",
        ),
    ],
)
def test_our_checks(rendered, key, path, value, problem, fix):
    errors = _errors(validate_rendered(_mutate(rendered, key, path, value)))
    assert any(problem in f.problem and fix in f.fix for f in errors), [str(f) for f in errors]


def test_spot_strategy_on_ec2_is_rejected(rendered):
    specs = _mutate(rendered, CE_PRIMARY, ["computeResources", "type"], "EC2")
    assert any("valid only for SPOT" in f.problem for f in _errors(validate_rendered(specs)))


def test_a_family_allows_its_smallest_size(rendered):
    specs = _mutate(rendered, CE_SECONDARY, ["computeResources", "instanceTypes"], ["g4dn"])
    assert _errors(validate_rendered(specs)) == []
    specs[JOB]["containerProperties"]["resourceRequirements"][1]["value"] = "20000"
    assert any("g4dn.xlarge" in f.problem for f in _errors(validate_rendered(specs)))


@pytest.mark.parametrize(
    ("key", "path", "value", "problem"),
    [
        (
            CE_PRIMARY,
            ["computeResources", "maxVcpus"],
            16,
            'Unknown parameter in computeResources: "maxVcpus"',
        ),
        (
            CE_PRIMARY,
            ["computeResources", "maxvCpus"],
            "16",
            "Invalid type for parameter computeResources.maxvCpus",
        ),
        (CE_PRIMARY, ["type"], "MANAGD", "'MANAGD' is not one of ['MANAGED', 'UNMANAGED']"),
        (CE_PRIMARY, ["computeResources", "allocationStrategy"], "SPOT_CAPACITY_OPTIMISED", "is not one of"),
        ("sqs/work-queue", ["QueueName"], None, "Missing required parameter"),
        (
            JOB,
            ["retryStrategy", "evaluateOnExit"],
            [{"onReason": "*", "action": "STOP"}],
            "'STOP' is not one of",
        ),
    ],
)
def test_request_shapes_from_botocore(rendered, key, path, value, problem):
    errors = _errors(validate_rendered(_mutate(rendered, key, path, value)))
    assert any(problem in f.problem and "generate-cli-skeleton" in f.fix for f in errors), [
        str(f) for f in errors
    ]


def test_custom_service_role_warns_about_in_place_updates(rendered):
    specs = copy.deepcopy(rendered)
    specs[CE_PRIMARY]["serviceRole"] = "arn:aws:iam::123456789012:role/my-batch-role"
    (finding,) = validate_rendered(specs)
    assert finding.severity == WARNING
    assert "refuses in-place infrastructure updates" in finding.problem
    assert "leave the service_role_arn Param empty" in finding.fix
    specs[CE_PRIMARY]["serviceRole"] = (
        "arn:aws:iam::123456789012:role/aws-service-role/batch.amazonaws.com/AWSServiceRoleForBatch"
    )
    assert validate_rendered(specs) == [], "the service-linked role itself is fine"


def test_missing_values_fail_before_rendering():
    with pytest.raises(MissingValuesError, match="missing 5 value"):
        validate_specs({"dry_run": True}, {})


def test_unknown_placeholder_in_a_spec_fails(spec_dir):
    path = spec_dir / "sqs/dead-letter-queue.json"
    spec = json.loads(path.read_text())
    spec["QueueName"] = "${DLQ_NAME}"
    path.write_text(json.dumps(spec))
    with pytest.raises(InfraSpecError, match="DLQ_NAME"):
        validate_specs(example_params(), {}, spec_dir)


def test_broken_json_names_the_file(spec_dir):
    (spec_dir / "batch/job-queue-primary.json").write_text("{ not json")
    with pytest.raises(ValueError, match=r"job-queue-primary.json: not valid JSON"):
        validate_specs(example_params(), {}, spec_dir)


@pytest.mark.parametrize(
    ("param", "value", "problem"),
    [
        ("subnets", ["vpc-123"], "'vpc-123' is not subnet-... id(s)"),
        ("security_group_ids", ["sg-1", "default"], "'default' is not sg-... id(s)"),
        ("input_bucket", "s3://acme-photos", "is not a valid S3 bucket name"),
        ("input_bucket", "Acme_Photos", "is not a valid S3 bucket name"),
        ("output_uri", "s3://X/y", "'X' is not a valid S3 bucket name"),
        ("worker_image", "faceidx worker:1", "contains whitespace"),
    ],
)
def test_values_with_a_known_form_are_checked(param, value, problem):
    with pytest.raises(InfraSpecError) as caught:
        validate_specs({**example_params(), param: value}, {})
    assert problem in str(caught.value)
    assert f"Param {param}" in str(caught.value)
