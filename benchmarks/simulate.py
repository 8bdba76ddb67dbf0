"""Scaling simulator: the original design's submit rule against our planner (``make simulate``).

Prints the comparison table and the goal checks, then writes a plot of backlog and workers over time
to bench-output/scaling.png and a copy to docs/img/scaling.png (shown in the README).

    .venv/bin/python benchmarks/simulate.py [--seed 0] [--spot-price 0.21] [--images-per-s 10]

Exits 1 when our planner misses a goal on any trace.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from faceidx.indexing.planning import ScalingPolicy
from faceidx_dev.simulation.engine import SimulationConfig, SimulationResult
from faceidx_dev.simulation.policies import OriginalDesignRule, PlannerRule
from faceidx_dev.simulation.report import (
    DEFAULT_SPOT_USD_PER_HOUR,
    goal_checks,
    goals_table,
    results_table,
    run_matrix,
    seed_sweep,
    sweep_table,
)
from faceidx_dev.simulation.traces import burst, standard_traces

ROOT = Path(__file__).resolve().parents[1]
COLORS = {"original rule": "tab:red", "our planner": "tab:blue"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="trace and spot-reclaim seed (default 0)")
    p.add_argument(
        "--spot-price",
        type=float,
        default=DEFAULT_SPOT_USD_PER_HOUR,
        help=f"g4dn.xlarge spot USD per hour (default {DEFAULT_SPOT_USD_PER_HOUR})",
    )
    p.add_argument("--images-per-s", type=float, default=10.0, help="throughput of one worker (default 10)")
    p.add_argument("--primary-startup", type=float, default=120.0, help="primary launch + pull, s")
    p.add_argument("--secondary-startup", type=float, default=240.0, help="secondary launch + pull, s")
    p.add_argument("--spot-fraction", type=float, default=0.10, help="share of launches reclaimed")
    p.add_argument("--sweep-seeds", type=int, default=20, help="seeds for the spot sweep (default 20)")
    p.add_argument("--out", type=Path, default=ROOT / "bench-output", help="plot folder (git-ignored)")
    p.add_argument(
        "--docs-image",
        type=Path,
        default=ROOT / "docs" / "img" / "scaling.png",
        help="where the README's copy of the plot goes ('' to skip)",
    )
    return p.parse_args(argv)


def plot(results: Sequence[SimulationResult], path: Path) -> None:
    traces = list(dict.fromkeys(r.trace for r in results))
    fig, axes = plt.subplots(len(traces), 2, figsize=(11, 2.5 * len(traces)), squeeze=False)
    for row, trace in enumerate(traces):
        runs = [r for r in results if r.trace == trace]
        end = max(r.end_s for r in runs)
        scale, unit = (3600.0, "h") if end > 3 * 3600 else (60.0, "min")
        backlog_ax, workers_ax = axes[row]
        for r in runs:
            color = COLORS.get(r.rule, "tab:gray")
            t = [s.t / scale for s in r.samples]
            backlog_ax.plot(t, [s.backlog for s in r.samples], color=color, lw=1.2, label=r.rule)
            workers_ax.plot(
                t, [s.running + s.starting for s in r.samples], color=color, lw=1.2, label=f"{r.rule}: up"
            )
            if any(s.waiting for s in r.samples):
                workers_ax.plot(
                    t,
                    [s.waiting for s in r.samples],
                    color=color,
                    lw=1.0,
                    ls="--",
                    label=f"{r.rule}: stuck (RUNNABLE)",
                )
        backlog_ax.set_title(f"{trace}: backlog (visible + in flight)", fontsize=9)
        workers_ax.set_title(f"{trace}: GPU workers", fontsize=9)
        for ax in (backlog_ax, workers_ax):
            ax.set_xlabel(f"time ({unit})", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = SimulationConfig(
        seed=args.seed,
        images_per_s=args.images_per_s,
        primary_startup_s=args.primary_startup,
        secondary_startup_s=args.secondary_startup,
    )
    original, ours = OriginalDesignRule(), PlannerRule()
    started = time.perf_counter()
    traces = standard_traces(seed=args.seed, spot_interruption_fraction=args.spot_fraction)
    results = run_matrix(traces, [original, ours], config)
    for trace in traces:
        print(f"{trace.name}: {trace.description} ({trace.messages:,} messages)")
    print()
    print(results_table(results, args.spot_price))
    print()
    checks = goal_checks(results, original.name, ours.name, config)
    print(goals_table(checks))
    print()

    # Spot luck decides which worker is reclaimed while holding messages: repeat over seeds.
    spot_trace = traces[-1]
    print(sweep_table(seed_sweep(spot_trace, original, ours, config, range(args.sweep_seeds)), config))
    print()

    # What-ifs: the knob that trades cost for drain time, and a worker that releases on SIGTERM.
    knob = [
        PlannerRule(name=f"our planner, max array {n}", policy=ScalingPolicy(secondary_max_array=n))
        for n in (10, 20, 40)
    ]
    what_if = run_matrix([burst()], [original, *knob], config)
    released = replace(config, release_on_reclaim=True)
    what_if += [
        replace(r, rule=f"{r.rule}, release on SIGTERM")
        for r in run_matrix([spot_trace], [original, ours], released)
    ]
    print(results_table(what_if, args.spot_price))
    print(f"\nsimulated in {time.perf_counter() - started:.1f} s")

    plot_path = args.out / "scaling.png"
    plot(results, plot_path)
    print(f"plot: {plot_path}")
    if str(args.docs_image):
        args.docs_image.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plot_path, args.docs_image)
        print(f"plot copy: {args.docs_image} ({args.docs_image.stat().st_size / 1024:.0f} KB)")

    failed = [c for c in checks if not c.ok]
    for c in failed:
        print(f"GOAL MISSED: {c.trace}: {c.goal}: {c.detail}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
