"""The search benchmark on 2,000 faces: it runs, prints every figure, and its recall is sane."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_search

    return bench_search


def test_a_tiny_run_prints_every_figure(bench, capsys, tmp_path):
    out = tmp_path / "result.json"
    assert (
        bench.main(
            [
                "--n",
                "2000",
                "--queries",
                "20",
                "--exact-queries",
                "5",
                "--settings",
                "16:4:100",
                "--no-real",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    for needle in (
        "same person cosine",
        "IVF-HNSW-SQ build (s)",
        "index size on disk (MiB)",
        "lance ivf_hnsw_sq nprobes=16 refine=4 ef=100 (defaults)",
        "lance flat (exact)",
        "numpy exact",
        "duckdb exact (array_cosine_similarity)",
        "recall@10",
        "p95 ms",
        "queries/s",
        "target recall@10 >= 0.95 at p95 <= 50 ms",
    ):
        assert needle in text, needle
    recalls = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(.+?): recall@10 ([0-9.]+)", text, re.M)}
    assert recalls["numpy exact"] == 1.0
    assert recalls["duckdb exact (array_cosine_similarity)"] == 1.0
    assert recalls["lance flat (exact)"] == 1.0
    assert recalls["lance ivf_hnsw_sq nprobes=16 refine=4 ef=100 (defaults)"] >= 0.9
    assert out.exists()


def test_the_synthetic_faces_have_the_promised_spreads(bench):
    from synthetic_faces import lift, measure_spreads, synthetic_faces

    spreads = measure_spreads(synthetic_faces(20_000, seed=3))
    assert 0.6 <= spreads["intra_mean"] <= 0.7
    assert 0.07 <= spreads["intra_sd"] <= 0.12
    assert abs(spreads["inter_mean"]) < 0.01
    assert 0.045 <= spreads["inter_sd"] <= 0.08
    import numpy as np

    a, b = np.random.default_rng(0).normal(size=(2, 128)).astype(np.float32)
    cosine = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    lifted = lift(np.vstack([a, b]))
    assert lifted.shape == (2, 512)
    assert float(
        lifted[0] @ lifted[1] / np.linalg.norm(lifted[0]) / np.linalg.norm(lifted[1])
    ) == pytest.approx(cosine, abs=1e-6)
    assert sys.modules["bench_search"] is bench
