"""One source per fact: face_indexing's Params come from ScalingPolicy, and its capacity defaults are
what infra/ creates."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from faceidx.common.constants import (
    JOB_DEFINITION,
    PRIMARY_COMPUTE_ENVIRONMENT,
    PRIMARY_JOB_QUEUE,
    SECONDARY_COMPUTE_ENVIRONMENT,
    SECONDARY_JOB_QUEUE,
)
from faceidx.indexing.params import indexing_params
from faceidx.indexing.planning import ScalingPolicy

INFRA = Path(__file__).resolve().parents[4] / "infra"


def _spec(name: str) -> dict:
    return json.loads((INFRA / "batch" / f"{name}.json").read_text())


def test_every_policy_field_is_a_param_with_its_default_and_bounds():
    params = indexing_params()
    policy = ScalingPolicy()
    for spec in fields(ScalingPolicy):
        param = params[spec.name]
        assert param.value == getattr(policy, spec.name)
        assert param.schema["minimum"] == spec.metadata["minimum"]
        assert param.schema.get("maximum") == spec.metadata.get("maximum")
        assert param.description == spec.metadata["description"]


def test_capacity_defaults_are_what_infra_creates():
    policy = ScalingPolicy()
    assert policy.primary_max_vcpus == _spec("compute-environment-primary")["computeResources"]["maxvCpus"]
    assert (
        policy.secondary_max_vcpus == _spec("compute-environment-secondary")["computeResources"]["maxvCpus"]
    )
    vcpu = {
        r["type"]: r["value"] for r in _spec("job-definition")["containerProperties"]["resourceRequirements"]
    }["VCPU"]
    assert policy.vcpus_per_job == int(vcpu)


def test_resource_names_are_the_specs_names():
    assert _spec("compute-environment-primary")["computeEnvironmentName"] == PRIMARY_COMPUTE_ENVIRONMENT
    assert _spec("compute-environment-secondary")["computeEnvironmentName"] == SECONDARY_COMPUTE_ENVIRONMENT
    assert _spec("job-queue-primary")["jobQueueName"] == PRIMARY_JOB_QUEUE
    assert _spec("job-queue-secondary")["jobQueueName"] == SECONDARY_JOB_QUEUE
    assert _spec("job-definition")["jobDefinitionName"] == JOB_DEFINITION
