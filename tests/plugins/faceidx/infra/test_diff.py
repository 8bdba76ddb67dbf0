"""Diffs between what AWS holds and what a spec wants, and how compute-environment changes apply."""

from __future__ import annotations

import json

import pytest

from faceidx.infra.compute_environment import IN_PLACE, INFRASTRUCTURE_UPDATE, REPLACEMENT, plan_update
from faceidx.infra.diff import (
    canonical_policy,
    canonical_redrive,
    diff,
    normalize_job_definition,
    normalize_job_queue,
    normalize_notifications,
)
from faceidx.infra.results import Action

SLR = "arn:aws:iam::1:role/aws-service-role/batch.amazonaws.com/AWSServiceRoleForBatch"


def test_dicts_compare_on_the_spec_keys_lists_and_scalars_exactly():
    current = {"a": 1, "extra": "added by AWS", "tags": {"project": "faceidx", "owner": "ops"}, "l": [1, 2]}
    assert diff(current, {"a": 1, "tags": {"project": "faceidx"}, "l": [1, 2]}) == []
    changes = diff(current, {"a": 2, "l": [1], "tags": {"project": "other"}})
    assert [(c.path, c.current, c.desired) for c in changes] == [
        ("a", 1, 2),
        ("l", [1, 2], [1]),
        ("tags.project", "faceidx", "other"),
    ]


def test_policies_compare_by_meaning_not_layout():
    a = {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "x"}}
    b = json.dumps(
        {
            "Statement": [{"Resource": ["x"], "Action": ["s3:GetObject"], "Effect": "Allow"}],
            "Version": "2012-10-17",
        }
    )
    assert canonical_policy(a) == canonical_policy(b)
    c = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "x"}],
    }
    assert canonical_policy(a) != canonical_policy(c)


def test_redrive_policy_count_as_text_or_number():
    assert canonical_redrive('{"deadLetterTargetArn":"arn:q","maxReceiveCount":"5"}') == canonical_redrive(
        {"maxReceiveCount": 5, "deadLetterTargetArn": "arn:q"}
    )


def test_job_definition_normalization_ignores_order_case_and_aws_defaults():
    spec = {
        "type": "container",
        "containerProperties": {
            "image": "w:1",
            "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
            "resourceRequirements": [{"type": "VCPU", "value": "4"}, {"type": "GPU", "value": "1"}],
        },
        "retryStrategy": {"attempts": 3, "evaluateOnExit": [{"onReason": "*", "action": "EXIT"}]},
    }
    held = {  # as moto/AWS describe it: defaults added, lists reordered, action lower case
        "jobDefinitionName": "j",
        "revision": 4,
        "type": "container",
        "containerProperties": {
            "image": "w:1",
            "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "resourceRequirements": [{"value": "1", "type": "GPU"}, {"value": "4", "type": "VCPU"}],
            "volumes": [],
            "mountPoints": [],
        },
        "retryStrategy": {"attempts": 3, "evaluateOnExit": [{"onReason": "*", "action": "exit"}]},
    }
    assert diff(normalize_job_definition(held), normalize_job_definition(spec)) == []
    spec["containerProperties"]["environment"].pop()
    assert [c.path for c in diff(normalize_job_definition(held), normalize_job_definition(spec))] == [
        "containerProperties.environment"
    ], "a removed variable is a difference"


def test_job_queue_order_compares_by_environment_name():
    held = {
        "computeEnvironmentOrder": [
            {"order": 1, "computeEnvironment": "arn:aws:batch:r:1:compute-environment/ce"}
        ]
    }
    assert (
        diff(
            normalize_job_queue(held),
            normalize_job_queue({"computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "ce"}]}),
        )
        == []
    )


def test_notification_rule_names_compare_case_insensitively():
    ours = [
        {
            "Id": "faceidx-jpg",
            "QueueArn": "q",
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": ".jpg"}]}},
        }
    ]
    held = [{**ours[0], "Filter": {"Key": {"FilterRules": [{"Name": "Suffix", "Value": ".jpg"}]}}}]
    assert normalize_notifications(held) == normalize_notifications(ours)


def _ce(strategy="SPOT_CAPACITY_OPTIMIZED", role=SLR, **resources):
    base = {
        "type": "SPOT",
        "allocationStrategy": strategy,
        "minvCpus": 0,
        "maxvCpus": 16,
        "instanceTypes": ["g4dn.xlarge"],
        "subnets": ["subnet-a"],
        "securityGroupIds": ["sg-a"],
        "instanceRole": "arn:aws:iam::1:instance-profile/p",
        "bidPercentage": 100,
    }
    ce = {
        "computeEnvironmentName": "ce",
        "type": "MANAGED",
        "state": "ENABLED",
        "computeResources": {**base, **resources},
    }
    if role:
        ce["serviceRole"] = role
    return ce


@pytest.mark.parametrize(
    ("held", "wanted", "action", "how"),
    [
        (_ce(), _ce(maxvCpus=32), Action.UPDATED, IN_PLACE),
        (_ce(), _ce(minvCpus=4), Action.UPDATED, IN_PLACE),
        (_ce(), {**_ce(), "state": "DISABLED"}, Action.UPDATED, IN_PLACE),
        (_ce(), {**_ce(), "tags": {"project": "faceidx"}}, Action.UPDATED, IN_PLACE),
        (_ce(), _ce(subnets=["subnet-b"]), Action.UPDATED, INFRASTRUCTURE_UPDATE),
        (_ce(), _ce(instanceTypes=["g4dn.2xlarge"]), Action.UPDATED, INFRASTRUCTURE_UPDATE),
        (_ce(), _ce(strategy="SPOT_PRICE_CAPACITY_OPTIMIZED"), Action.UPDATED, INFRASTRUCTURE_UPDATE),
        (_ce(role=None), _ce(role=None, bidPercentage=80), Action.UPDATED, INFRASTRUCTURE_UPDATE),
        # Infrastructure updates need an updatable strategy on both sides and the service-linked role.
        (
            _ce(strategy="BEST_FIT"),
            _ce(strategy="BEST_FIT", subnets=["subnet-b"]),
            Action.NEEDS_REPLACEMENT,
            REPLACEMENT,
        ),
        (_ce(), _ce(strategy="BEST_FIT"), Action.NEEDS_REPLACEMENT, REPLACEMENT),
        (
            _ce(role="arn:aws:iam::1:role/custom"),
            _ce(role=None, subnets=["subnet-b"]),
            Action.NEEDS_REPLACEMENT,
            REPLACEMENT,
        ),
        (_ce(), {**_ce(), "type": "UNMANAGED"}, Action.NEEDS_REPLACEMENT, REPLACEMENT),
        (_ce(), _ce(spotIamFleetRole="arn:aws:iam::1:role/fleet"), Action.NEEDS_REPLACEMENT, REPLACEMENT),
        (_ce(), _ce(role="arn:aws:iam::1:role/custom"), Action.NEEDS_REPLACEMENT, REPLACEMENT),
    ],
)
def test_compute_environment_changes(held, wanted, action, how):
    plan = plan_update(held, wanted)
    assert plan.action is action
    assert {c.how for c in plan.changes} == {how}
    if action is Action.NEEDS_REPLACEMENT:
        assert plan.update_request is None, "nothing is attempted"


def test_unchanged_compute_environment_sends_nothing():
    held = {**_ce(), "status": "VALID", "computeResources": {**_ce()["computeResources"], "desiredvCpus": 4}}
    plan = plan_update(held, {k: v for k, v in _ce().items() if k != "serviceRole"})
    assert (plan.action, plan.changes, plan.update_request) == (Action.UNCHANGED, [], None)


def test_in_place_update_sends_only_what_changed():
    policy = {"terminateJobsOnUpdate": False, "jobExecutionTimeoutMinutes": 240}
    plan = plan_update(_ce(), _ce(maxvCpus=32, subnets=["subnet-b", "subnet-a"]), policy)
    assert plan.update_request == {
        "computeEnvironment": "ce",
        "computeResources": {"maxvCpus": 32, "subnets": ["subnet-b", "subnet-a"]},
        "updatePolicy": policy,
    }
