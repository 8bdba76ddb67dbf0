"""The printed table, the goal checks and the benchmark's plot."""

from __future__ import annotations

import dataclasses

import pytest

from faceidx_dev.simulation.engine import SimulationConfig, simulate
from faceidx_dev.simulation.policies import OriginalDesignRule, PlannerRule
from faceidx_dev.simulation.report import format_duration, goal_checks, goals_table, results_table
from tests.support.simulation import make_trace


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.1, "0.1s"),
        (9.94, "9.9s"),
        (42.4, "42s"),
        (454, "7m 34s"),
        (3599.6, "1h 00m"),
        (2221, "37m 01s"),
        (90_061, "25h 01m"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@pytest.fixture(scope="module")
def pair():
    trace = make_trace([0.0] * 100, name="tiny")
    return [simulate(trace, OriginalDesignRule()), simulate(trace, PlannerRule())]


def test_results_table_shows_cost_at_the_stated_price(pair):
    text = results_table(pair, spot_usd_per_hour=3.6)
    assert "3.60 USD/h" in text.splitlines()[0]
    ours = next(line for line in text.splitlines() if "our planner" in line)
    # one instance for 190 s at 3.60 USD/h = 0.19 USD
    assert "0.05" in ours.split()
    assert "0.19" in ours.split()
    assert "2m 10s" in ours


def test_goal_checks_flag_a_rule_that_costs_more(pair):
    original, ours = pair
    pricier = dataclasses.replace(ours, instance_s=original.instance_s + 1)
    checks = {
        c.goal: c for c in goal_checks([original, pricier], original.rule, ours.rule, SimulationConfig())
    }
    assert not checks["costs less"].ok
    assert checks["drains no slower"].ok
    assert "FAILED" in goals_table(checks.values())


def test_goal_checks_flag_stuck_jobs_and_late_drains(pair):
    original, ours = pair
    worse = dataclasses.replace(ours, peak_waiting=1, last_done_s=original.last_done_s + 301)
    checks = {c.goal: c for c in goal_checks([original, worse], original.rule, ours.rule, SimulationConfig())}
    assert not checks["fits the environments"].ok
    assert not checks["drains no slower"].ok


def test_benchmark_plot_writes_a_small_png(pair, tmp_path):
    from benchmarks import simulate as simulate_script  # benchmarks/simulate.py, the make target

    path = tmp_path / "scaling.png"
    simulate_script.plot(pair, path)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG")
    assert 5_000 < len(data) < 300_000
