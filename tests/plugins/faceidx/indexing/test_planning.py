"""The scaling rule as a table: depth boundaries, with and without active jobs."""

from __future__ import annotations

import pytest

from faceidx.indexing.planning import ARRAY_SIZE_MAX, PolicyError, ScalingPolicy, plan_submissions

# depth, active primary, active secondary -> primary shape, secondary shape
# shape: None (nothing), "plain", or an int (array size)
CASES = [
    # no active jobs: the original design, with array size 1 turned into a plain job
    (0, 0, 0, None, None),
    (1, 0, 0, "plain", None),
    (999, 0, 0, "plain", None),
    (1000, 0, 0, "plain", "plain"),
    (1001, 0, 0, "plain", "plain"),
    (1999, 0, 0, "plain", "plain"),
    (2000, 0, 0, "plain", 2),
    (10999, 0, 0, "plain", 10),
    (11000, 0, 0, "plain", 10),
    (1_000_000, 0, 0, "plain", 10),
    # with active jobs: only the deficit is submitted
    (0, 1, 3, None, None),
    (1, 1, 0, None, None),
    (1000, 1, 0, None, "plain"),
    (1000, 0, 1, "plain", None),
    (1001, 1, 1, None, None),
    (1999, 1, 1, None, None),
    (2000, 1, 1, None, "plain"),
    (2000, 0, 2, "plain", None),
    (10999, 1, 3, None, 7),
    (11000, 1, 9, None, "plain"),
    (11000, 1, 10, None, None),
    (1_000_000, 1, 8, None, 2),
    (1_000_000, 1, 25, None, None),
]


def _shape(submission):
    if submission is None:
        return None
    return "plain" if submission.array_size is None else submission.array_size


@pytest.mark.parametrize(("depth", "active_primary", "active_secondary", "primary", "secondary"), CASES)
def test_plan_table(depth, active_primary, active_secondary, primary, secondary):
    plan = plan_submissions(depth, 0, active_primary, active_secondary)
    assert _shape(plan.primary) == primary
    assert _shape(plan.secondary) == secondary
    assert plan.reasons, "every decision carries a reason for the task log"


@pytest.mark.parametrize("depth", [0, 1, 1000, 1001, 1999, 2000, 10999, 11000, 1_000_000])
@pytest.mark.parametrize("active", [0, 1, 5, 10, 50])
def test_never_array_of_one_and_never_above_target(depth, active):
    plan = plan_submissions(depth, 0, active, active)
    for sub in plan.submissions:
        assert sub.array_size is None or 2 <= sub.array_size <= ARRAY_SIZE_MAX
        assert sub.array_properties == (None if sub.array_size is None else {"size": sub.array_size})
    assert active + (plan.secondary.workers if plan.secondary else 0) <= max(active, plan.secondary_target)
    assert active + (plan.primary.workers if plan.primary else 0) <= max(active, plan.primary_target)


def test_primary_capped_by_environment_capacity():
    policy = ScalingPolicy(primary_workers=10, primary_max_vcpus=16, vcpus_per_job=4)
    plan = plan_submissions(50, 0, 0, 0, policy)
    assert plan.primary_target == 4
    assert plan.primary.array_size == 4
    assert any("capped" in r for r in plan.reasons)
    assert plan_submissions(50, 0, 4, 0, policy).primary is None


def test_secondary_capped_by_environment_capacity():
    policy = ScalingPolicy(secondary_max_array=100, secondary_max_vcpus=32, vcpus_per_job=4)
    plan = plan_submissions(1_000_000, 0, 0, 0, policy)
    assert plan.secondary_target == 8
    assert plan.secondary.array_size == 8


def test_in_flight_without_backlog_submits_nothing():
    plan = plan_submissions(0, 250, 0, 0)
    assert plan.submissions == ()
    assert "250 messages are already being processed" in plan.reasons[0]


def test_min_depth_gates_the_run():
    assert plan_submissions(4, 0, 0, 0, ScalingPolicy(min_depth=5)).submissions == ()
    assert plan_submissions(5, 0, 0, 0, ScalingPolicy(min_depth=5)).primary is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"secondary_threshold": 0}, "secondary_threshold must be >= 1"),
        ({"vcpus_per_job": 0}, "vcpus_per_job must be >= 1"),
        ({"secondary_max_array": 10_001}, "AWS Batch array limit"),
        ({"primary_workers": -1}, "primary_workers must be >= 0"),
    ],
)
def test_invalid_policy_says_what_to_change(kwargs, message):
    with pytest.raises(PolicyError, match=message):
        ScalingPolicy(**kwargs)


def test_negative_inputs_are_rejected():
    with pytest.raises(ValueError, match="visible must be >= 0"):
        plan_submissions(-1, 0, 0, 0)


def test_policy_from_params_ignores_unrelated_keys():
    policy = ScalingPolicy.from_mapping({"secondary_threshold": "500", "dry_run": True, "queue_url": "x"})
    assert policy.secondary_threshold == 500
    assert policy.secondary_max_array == 10


def test_plan_round_trips_to_json_safe_dict():
    import json

    data = plan_submissions(2500, 3, 0, 0).to_dict()
    assert json.loads(json.dumps(data))["secondary"]["array_properties"] == {"size": 2}
    assert data["primary"]["array_properties"] is None
