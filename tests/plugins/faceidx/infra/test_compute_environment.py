"""Compute-environment plans: the updatePolicy of infrastructure updates, the GPU AMI (AL2023), and
the GPU instance types with their fall-backs. Pure: described environments in AWS's response shape."""

from __future__ import annotations

import copy

import pytest

from faceidx.infra.checks import ERROR
from faceidx.infra.compute_environment import INFRASTRUCTURE_UPDATE, plan_update, update_policy
from faceidx.infra.results import Action
from faceidx.infra.shape import shape_errors
from faceidx.infra.validate import InfraSpecError, validate_rendered, validate_specs
from faceidx.infra.values import example_params

CE = "batch/compute-environment-primary"
ARN = "arn:aws:batch:us-east-1:123456789012:compute-environment/face-recognition-primary"
PROFILE = "arn:aws:iam::123456789012:instance-profile/faceidx-batch-instance-profile"


@pytest.fixture(scope="module")
def rendered():
    return validate_specs(example_params(), {}).rendered


def _spec(rendered):
    spec = copy.deepcopy(rendered[CE])
    spec["computeResources"]["instanceRole"] = PROFILE
    return spec


def _described(spec, **resources):
    """What DescribeComputeEnvironments answers for ``spec``, with ``resources`` changed (None: absent)."""
    held = copy.deepcopy(spec)
    held.update(computeEnvironmentArn=ARN, status="VALID", statusReason="ComputeEnvironment Healthy")
    held["computeResources"]["desiredvCpus"] = 0
    held["computeResources"]["ec2Configuration"] = [
        {"imageType": "ECS_AL2023_NVIDIA", "batchImageStatus": "LATEST"}
    ]
    for key, value in resources.items():
        if value is None:
            held["computeResources"].pop(key, None)
        else:
            held["computeResources"][key] = value
    return held


def test_shipped_environments_pin_the_al2023_gpu_ami_and_list_fall_back_types(rendered):
    for key in (CE, "batch/compute-environment-secondary"):
        resources = rendered[key]["computeResources"]
        assert resources["ec2Configuration"] == [{"imageType": "ECS_AL2023_NVIDIA"}]
        assert resources["instanceTypes"] == ["g4dn.xlarge", "g5.xlarge", "g6.xlarge"]


def test_what_aws_adds_to_ec2_configuration_is_not_a_difference(rendered):
    spec = _spec(rendered)
    plan = plan_update(_described(spec), spec)
    assert (plan.action, plan.changes, plan.note) == (Action.UNCHANGED, [], "")


@pytest.mark.parametrize(
    ("held", "shown"),
    [
        ([{"imageType": "ECS_AL2_NVIDIA", "batchImageStatus": "LATEST"}], "imageType ECS_AL2_NVIDIA"),
        (None, "no ec2Configuration"),
    ],
)
def test_an_environment_on_al2_is_flagged_and_moved_to_al2023(rendered, held, shown):
    spec = _spec(rendered)
    policy = update_policy(rendered["batch/job-definition"])
    plan = plan_update(_described(spec, ec2Configuration=held), spec, policy)
    assert plan.action is Action.UPDATED
    (change,) = plan.changes
    assert (change.path, change.how) == ("computeResources.ec2Configuration", INFRASTRUCTURE_UPDATE)
    assert f"on Amazon Linux 2 ({shown}" in plan.note
    assert "2026-06-30" in plan.note
    assert plan.update_request == {
        "computeEnvironment": "face-recognition-primary",
        "computeResources": {"ec2Configuration": [{"imageType": "ECS_AL2023_NVIDIA"}]},
        "updatePolicy": {"terminateJobsOnUpdate": False, "jobExecutionTimeoutMinutes": 240},
    }
    assert shape_errors("batch", "UpdateComputeEnvironment", plan.update_request) == []


def test_an_al2_environment_that_cannot_be_updated_is_still_flagged(rendered):
    spec = _spec(rendered)
    held = _described(spec, ec2Configuration=None)
    held["serviceRole"] = "arn:aws:iam::123456789012:role/custom-batch"
    plan = plan_update(held, spec)
    assert plan.action is Action.NEEDS_REPLACEMENT
    assert "on Amazon Linux 2" in plan.note


def test_a_scaling_update_sends_no_update_policy(rendered):
    spec = _spec(rendered)
    plan = plan_update(_described(spec, maxvCpus=8), spec, update_policy({}))
    assert plan.update_request == {
        "computeEnvironment": "face-recognition-primary",
        "computeResources": {"maxvCpus": 16},
    }
    assert not plan.infrastructure_update


@pytest.mark.parametrize(
    ("timeout", "minutes"),
    [
        ({"attemptDurationSeconds": 14400}, 240),  # the shipped 4 h: a worker hands over before it
        ({"attemptDurationSeconds": 14401}, 241),  # rounded up: never shorter than the job may run
        ({"attemptDurationSeconds": 30}, 1),
        ({"attemptDurationSeconds": 10**7}, 7200),  # the most AWS allows
        (None, 7200),  # no job timeout: AWS's 30 min default would cut a worker short
    ],
)
def test_update_policy_never_cuts_a_running_job_short(timeout, minutes):
    job = {} if timeout is None else {"timeout": timeout}
    assert update_policy(job) == {"terminateJobsOnUpdate": False, "jobExecutionTimeoutMinutes": minutes}


@pytest.mark.parametrize(
    ("ec2_configuration", "problem"),
    [
        ([{"imageType": "ECS_AL2_NVIDIA"}], "Amazon Linux 2 ECS AMIs lose support"),
        (None, "imageType is not set"),
        ([{"imageType": "ECS_AL2023"}], "not the GPU AMI"),
    ],
)
def test_spec_must_pin_the_al2023_gpu_ami(rendered, ec2_configuration, problem):
    specs = copy.deepcopy(rendered)
    if ec2_configuration is None:
        specs[CE]["computeResources"].pop("ec2Configuration")
    else:
        specs[CE]["computeResources"]["ec2Configuration"] = ec2_configuration
    errors = [f for f in validate_rendered(specs) if f.severity == ERROR]
    assert any(problem in f.problem and "ECS_AL2023_NVIDIA" in f.fix for f in errors), [
        str(f) for f in errors
    ]


# -- GPU instance types: each one checked against the job ------------------------------------------


def test_instance_types_come_from_a_value_with_fall_backs(rendered):
    values = validate_specs({**example_params(), "instance_types": ["g5.xlarge", "g6.2xlarge"]}, {})
    assert values.rendered[CE]["computeResources"]["instanceTypes"] == ["g5.xlarge", "g6.2xlarge"]
    again = validate_specs(example_params(), {}, None)
    assert again.values["INSTANCE_TYPES"] == ["g4dn.xlarge", "g5.xlarge", "g6.xlarge"], "the default"


@pytest.mark.parametrize(
    ("types", "problem"),
    [
        (["g4dn.xlarge", "p3.2xlarge"], "instance type 'p3.2xlarge' is not in faceidx's instance table"),
        (["g4dn.xlarge", "c5.xlarge"], "instance type 'c5.xlarge' is not in faceidx's instance table"),
    ],
)
def test_every_listed_type_is_checked(types, problem):
    with pytest.raises(InfraSpecError) as caught:
        validate_specs({**example_params(), "instance_types": types}, {})
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("requirements", "types", "problem"),
    [
        (
            {"MEMORY": "16000"},
            ["g5.2xlarge", "g6.xlarge"],
            "16000 MiB of memory, but a g6.xlarge has about 15319",
        ),
        ({"GPU": "4"}, ["g5.12xlarge", "g6.xlarge"], "4 GPUs; a g6.xlarge has 1"),
        ({"VCPU": "8"}, ["g4dn.2xlarge", "g5.xlarge"], "8 vCPUs; a g5.xlarge has 4"),
    ],
)
def test_the_job_must_fit_every_fall_back_type(rendered, requirements, types, problem):
    specs = copy.deepcopy(rendered)
    for key in (CE, "batch/compute-environment-secondary"):
        specs[key]["computeResources"]["instanceTypes"] = types
    for requirement in specs["batch/job-definition"]["containerProperties"]["resourceRequirements"]:
        requirement["value"] = requirements.get(requirement["type"], requirement["value"])
    errors = [f for f in validate_rendered(specs) if f.severity == ERROR]
    assert any(problem in f.problem for f in errors), [str(f) for f in errors]
