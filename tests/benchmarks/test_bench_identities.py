"""A smoke run of benchmarks/bench_identities.py: a tiny synthetic set, the table it prints."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_tiny_synthetic_run_prints_scores(capsys):
    spec = importlib.util.spec_from_file_location(
        "bench_identities", REPO / "benchmarks" / "bench_identities.py"
    )
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--sizes", "3000", "--dim", "64", "--no-labelled"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("synthetic 3,000, full re-cluster"))
    pairwise_f = float(row.split()[6])
    assert pairwise_f >= 0.9
