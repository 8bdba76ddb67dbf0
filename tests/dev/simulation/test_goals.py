"""The issue's goal on the four standard traces: our planner drains no slower than the original rule
(within one tick), costs less, and never holds more jobs than the compute environments run.

The tolerance: both rules see the same backlog at the first tick and submit the same first wave; they
part only at later ticks, where the original rule adds workers beyond its own maximum (it does not
count the running ones). Those start a tick plus a start-up later, so on a 50,000 burst it finishes
about 77 s sooner, at 45% more GPU time. A rule that acts every 5 minutes is held to the tick.
"""

from __future__ import annotations

import pytest

from faceidx_dev.simulation.engine import SimulationConfig, simulate
from faceidx_dev.simulation.policies import OriginalDesignRule, PlannerRule
from faceidx_dev.simulation.report import goal_checks, run_matrix, seed_sweep
from faceidx_dev.simulation.traces import burst, standard_traces

CONFIG = SimulationConfig()
TRACES = ["steady trickle", "burst", "daily cycle", "burst + spot"]


@pytest.fixture(scope="module")
def runs():
    results = run_matrix(standard_traces(seed=0), [OriginalDesignRule(), PlannerRule()], CONFIG)
    return {(r.trace, r.rule): r for r in results}


def _pair(runs, trace):
    return runs[(trace, "original rule")], runs[(trace, "our planner")]


@pytest.mark.parametrize("trace", TRACES)
def test_no_message_is_lost(runs, trace):
    for result in _pair(runs, trace):
        assert result.settled, f"{result.rule} did not finish {trace}"
        assert result.messages_done == result.messages > 0


@pytest.mark.parametrize("trace", TRACES)
def test_planner_drains_no_slower(runs, trace):
    original, ours = _pair(runs, trace)
    assert ours.drain_s <= original.drain_s + CONFIG.tick_s


@pytest.mark.parametrize("trace", TRACES)
def test_planner_costs_less(runs, trace):
    original, ours = _pair(runs, trace)
    assert ours.instance_s < original.instance_s
    assert ours.jobs_submitted < original.jobs_submitted


@pytest.mark.parametrize("trace", TRACES)
def test_planner_never_holds_more_jobs_than_the_environments_run(runs, trace):
    _, ours = _pair(runs, trace)
    assert ours.peak_active_primary <= CONFIG.primary_capacity
    assert ours.peak_active_secondary <= CONFIG.secondary_capacity
    assert ours.peak_waiting == 0
    assert ours.jobs_waited == 0
    assert ours.invalid_arrays == 0


def test_the_original_rule_shows_both_faults(runs):
    originals = [runs[(t, "original rule")] for t in TRACES]
    assert sum(r.invalid_arrays for r in originals) >= 1, "an array of size 1 somewhere"
    assert any(r.peak_waiting > 0 for r in originals), "jobs stuck waiting for capacity somewhere"


def test_goal_checks_agree(runs):
    checks = goal_checks(list(runs.values()), "original rule", "our planner", CONFIG)
    assert len(checks) == 3 * len(TRACES)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


def test_spot_reclaims_over_twenty_seeds():
    """Spot luck decides whose worker is reclaimed while holding messages. Over 20 seeds, whatever
    the luck: nothing is lost, our planner costs less and fits the environments. Where it drains more
    than a tick later, one of its workers was reclaimed mid-batch, and the delay is that batch's
    visibility timeout, the next tick and a start-up beyond its drain without reclaims."""
    trace = burst(name="burst + spot", spot_interruption_fraction=0.10)
    calm = simulate(burst(), PlannerRule(), CONFIG).drain_s
    batch_s = CONFIG.receive_max / CONFIG.images_per_s
    bound = calm + CONFIG.visibility_timeout_s + CONFIG.tick_s + CONFIG.primary_startup_s + batch_s
    for original, ours in seed_sweep(trace, OriginalDesignRule(), PlannerRule(), CONFIG, range(20)):
        assert original.messages_done == ours.messages_done == 50_000
        assert ours.instance_s < original.instance_s
        assert ours.peak_waiting == 0
        assert ours.peak_active <= 11
        if ours.drain_s > original.drain_s + CONFIG.tick_s:
            assert ours.messages_redelivered > 0
            assert ours.drain_s <= bound
