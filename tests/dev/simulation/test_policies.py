"""The two submit rules as tables: what each submits for a given observation."""

from __future__ import annotations

import pytest

from faceidx.indexing.planning import ScalingPolicy, plan_submissions
from faceidx_dev.simulation.policies import Decision, Observation, OriginalDesignRule, PlannerRule

# visible -> primary jobs, secondary jobs, SubmitJob calls, arrays of size 1 (rejected by AWS)
ORIGINAL = [
    (0, 0, 0, 0, 0),
    (1, 1, 0, 1, 0),
    (1000, 1, 0, 1, 0),  # "depth > 1000": 1000 itself is not enough
    (1001, 1, 1, 2, 1),  # min(1001 // 1000, 10) = 1: an array of size 1
    (1999, 1, 1, 2, 1),
    (2000, 1, 2, 2, 0),
    (10_999, 1, 10, 2, 0),
    (50_000, 1, 10, 2, 0),
]


@pytest.mark.parametrize(("visible", "primary", "secondary", "calls", "invalid"), ORIGINAL)
@pytest.mark.parametrize("active", [0, 3, 64])
def test_original_rule_ignores_active_jobs(visible, primary, secondary, calls, invalid, active):
    decision = OriginalDesignRule().decide(Observation(visible, 5, active, active))
    assert decision == Decision(primary, secondary, calls, invalid)


@pytest.mark.parametrize(
    ("observation", "expected"),
    [
        (Observation(0, 100, 0, 0), Decision(0, 0, 0, 0)),
        (Observation(1, 0, 0, 0), Decision(1, 0, 1, 0)),
        (Observation(1500, 0, 0, 0), Decision(1, 1, 2, 0)),  # a deficit of 1 is a plain job
        (Observation(50_000, 0, 0, 0), Decision(1, 10, 2, 0)),
        (Observation(50_000, 0, 1, 10), Decision(0, 0, 0, 0)),  # already at target: nothing
        (Observation(50_000, 0, 1, 7), Decision(0, 3, 1, 0)),  # only the deficit
    ],
)
def test_planner_rule_submits_the_deficit(observation, expected):
    assert PlannerRule().decide(observation) == expected


@pytest.mark.parametrize("visible", [0, 1, 999, 1000, 2000, 9999, 10_000, 1_000_000])
@pytest.mark.parametrize(("active_primary", "active_secondary"), [(0, 0), (1, 0), (0, 4), (2, 12)])
def test_planner_rule_is_plan_submissions(visible, active_primary, active_secondary):
    policy = ScalingPolicy(secondary_max_array=12)
    plan = plan_submissions(visible, 0, active_primary, active_secondary, policy)
    decision = PlannerRule(policy=policy).decide(Observation(visible, 0, active_primary, active_secondary))
    assert decision.primary_jobs == (plan.primary.workers if plan.primary else 0)
    assert decision.secondary_jobs == (plan.secondary.workers if plan.secondary else 0)
    assert decision.submit_calls == len(plan.submissions)
    assert decision.invalid_arrays == 0
