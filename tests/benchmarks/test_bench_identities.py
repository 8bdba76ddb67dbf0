"""A smoke run of benchmarks/bench_identities.py: a tiny synthetic set, the table it prints."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_tiny_synthetic_run_prints_scores(capsys, monkeypatch):
    # the bench measures in forkserver children, which import it by name: it must be importable
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    monkeypatch.delitem(sys.modules, "bench_identities", raising=False)
    bench = importlib.import_module("bench_identities")
    assert bench.main(["--sizes", "3000", "--no-labelled"]) == 0  # 512-d: the targets hold at any size
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("synthetic 3,000, full re-cluster"))
    pairwise_f = float(row.split()[6])
    assert pairwise_f >= 0.9
