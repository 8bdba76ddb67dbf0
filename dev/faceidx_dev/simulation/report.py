"""Run traces x rules and render what the README shows: the comparison table and the goal checks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from faceidx.common.constants import DEFAULT_SPOT_PRICE_PER_HOUR
from faceidx.common.tables import format_table
from faceidx_dev.simulation.engine import SimulationConfig, SimulationResult, simulate
from faceidx_dev.simulation.policies import SubmitRule
from faceidx_dev.simulation.traces import Trace

# g4dn.xlarge spot, us-east-1, a typical price; pass your own with ``--spot-price``.
DEFAULT_SPOT_USD_PER_HOUR = DEFAULT_SPOT_PRICE_PER_HOUR

RESULT_HEADERS = (
    "trace",
    "rule",
    "jobs",
    "size-1 arrays",
    "peak active",
    "stuck (peak)",
    "reclaims",
    "GPU h",
    "cost USD",
    "drain",
    "wait p50",
    "wait p95",
)


def run_matrix(
    traces: Iterable[Trace], rules: Sequence[SubmitRule], config: SimulationConfig | None = None
) -> list[SimulationResult]:
    """Every rule on every trace, trace by trace."""
    return [simulate(trace, rule, config) for trace in traces for rule in rules]


def format_duration(seconds: float) -> str:
    """``0.1s``, ``42s``, ``7m 34s``, ``1h 05m``."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {(whole % 3600) // 60:02d}m"


def results_table(results: Iterable[SimulationResult], spot_usd_per_hour: float) -> str:
    rows = [
        (
            r.trace,
            r.rule,
            r.jobs_submitted,
            r.invalid_arrays,
            r.peak_active,
            r.peak_waiting,
            r.spot_interruptions,
            f"{r.gpu_hours:.2f}",
            f"{r.cost_usd(spot_usd_per_hour):.2f}",
            format_duration(r.drain_s) + ("" if r.settled else " (not settled)"),
            format_duration(r.wait_p50_s),
            format_duration(r.wait_p95_s),
        )
        for r in results
    ]
    return format_table(
        RESULT_HEADERS,
        rows,
        title=f"Scaling simulation: g4dn.xlarge spot at {spot_usd_per_hour:.2f} USD/h",
    )


@dataclass(frozen=True)
class GoalCheck:
    trace: str
    goal: str
    ok: bool
    detail: str


def drain_tolerance_s(config: SimulationConfig) -> float:
    """How much later than the original rule our planner may finish a drain: one DAG tick.

    Both rules see the same backlog at the first tick and submit the same first wave; they part only
    at later ticks, where the original rule adds workers beyond its own maximum (it does not count the
    ones already running), which start a tick plus a start-up later. A rule that acts every ``tick_s``
    cannot be told apart on less than one tick.
    """
    return config.tick_s


def goal_checks(
    results: Sequence[SimulationResult],
    baseline: str,
    candidate: str,
    config: SimulationConfig,
) -> list[GoalCheck]:
    """The issue's goal, trace by trace: ``candidate`` drains no slower than ``baseline`` (within
    :func:`drain_tolerance_s`), costs less, and never holds more jobs than the environments run."""
    by_key = {(r.trace, r.rule): r for r in results}
    tolerance = drain_tolerance_s(config)
    checks: list[GoalCheck] = []
    for trace in dict.fromkeys(r.trace for r in results):
        base, ours = by_key[(trace, baseline)], by_key[(trace, candidate)]
        late = ours.drain_s - base.drain_s
        checks.append(
            GoalCheck(
                trace,
                "drains no slower",
                ours.settled and late <= tolerance,
                f"{format_duration(ours.drain_s)} vs {format_duration(base.drain_s)}"
                + (f" ({format_duration(late)} later, tolerance one tick)" if late > 0 else ""),
            )
        )
        checks.append(
            GoalCheck(
                trace,
                "costs less",
                ours.instance_s < base.instance_s,
                f"{ours.gpu_hours:.2f} vs {base.gpu_hours:.2f} GPU h",
            )
        )
        checks.append(
            GoalCheck(
                trace,
                "fits the environments",
                ours.peak_active_primary <= config.primary_capacity
                and ours.peak_active_secondary <= config.secondary_capacity
                and ours.peak_waiting == 0,
                f"peak {ours.peak_active_primary}/{config.primary_capacity} primary, "
                f"{ours.peak_active_secondary}/{config.secondary_capacity} secondary, "
                f"{ours.peak_waiting} stuck",
            )
        )
    return checks


def goals_table(checks: Iterable[GoalCheck]) -> str:
    return format_table(
        ("trace", "goal", "result", "detail"),
        [(c.trace, c.goal, "ok" if c.ok else "FAILED", c.detail) for c in checks],
        title="Goal: our planner against the original rule",
    )


def seed_sweep(
    trace: Trace,
    baseline: SubmitRule,
    candidate: SubmitRule,
    config: SimulationConfig,
    seeds: Iterable[int],
) -> list[tuple[SimulationResult, SimulationResult]]:
    """``(baseline, candidate)`` results on ``trace`` for each spot-reclaim seed."""
    return [
        (
            simulate(trace, baseline, replace(config, seed=s)),
            simulate(trace, candidate, replace(config, seed=s)),
        )
        for s in seeds
    ]


def sweep_table(pairs: Sequence[tuple[SimulationResult, SimulationResult]], config: SimulationConfig) -> str:
    """How often the candidate drained later or earlier than the baseline, beyond one tick."""
    tick = drain_tolerance_s(config)
    late = [ours.drain_s - base.drain_s for base, ours in pairs]
    n = len(pairs)
    fits = sum(
        ours.peak_waiting == 0
        and ours.peak_active_primary <= config.primary_capacity
        and ours.peak_active_secondary <= config.secondary_capacity
        for _, ours in pairs
    )
    base_hours = sum(base.gpu_hours for base, _ in pairs) / max(n, 1)
    our_hours = sum(ours.gpu_hours for _, ours in pairs) / max(n, 1)
    rows = [
        ("seeds", n),
        (
            "drained later by more than one tick",
            f"{sum(d > tick for d in late)} (worst {format_duration(max(late, default=0.0))})",
        ),
        (
            "drained earlier by more than one tick",
            f"{sum(d < -tick for d in late)} (best {format_duration(-min(late, default=0.0))})",
        ),
        ("costs less", f"{sum(o.instance_s < b.instance_s for b, o in pairs)} of {n}"),
        ("never more jobs than the environments run", f"{fits} of {n}"),
        ("messages lost (both rules)", sum(r.messages - r.messages_done for pair in pairs for r in pair)),
        ("mean GPU h: original / ours", f"{base_hours:.2f} / {our_hours:.2f}"),
    ]
    trace = pairs[0][0].trace if pairs else "-"
    return format_table(
        ("item", "value"), rows, title=f"{trace}: our planner against the original rule, seed by seed"
    )
