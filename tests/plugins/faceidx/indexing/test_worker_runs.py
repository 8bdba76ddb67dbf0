"""Parsing worker log lines and estimating GPU cost: pure functions, hand-checkable numbers."""

from __future__ import annotations

import json

import pytest

from faceidx.indexing.worker_runs import (
    WorkerStats,
    estimate_cost,
    job_runtime_seconds,
    parse_worker_log,
    totals,
    worker_stats,
)


def _w(role, images, seconds, faces=0, errors=0):
    return WorkerStats("j", role, None, "SUCCEEDED", images, faces, errors, None, seconds, True, False)


def test_summary_line_wins_over_batch_lines():
    lines = [
        json.dumps({"event": "batch", "images": 10, "faces": 3, "errors": 0, "seconds": 5}),
        json.dumps({"event": "summary", "images": 12, "faces": 4, "errors": 1, "images_per_s": 2.0}),
    ]
    assert parse_worker_log(lines) == {
        "images": 12,
        "faces": 4,
        "errors": 1,
        "images_per_s": 2.0,
        "partial": False,
    }


def test_killed_worker_is_rebuilt_from_batches_and_flagged_partial():
    lines = [
        "Traceback (most recent call last):",
        "{not json",
        json.dumps(["a list"]),
        json.dumps({"event": "batch", "images": 10, "faces": 3, "errors": 1, "seconds": 4}),
        json.dumps({"event": "batch", "images": 6, "faces": 2, "errors": 0, "seconds": 4}),
    ]
    parsed = parse_worker_log(lines)
    assert parsed == {"images": 16, "faces": 5, "errors": 1, "images_per_s": 2.0, "partial": True}


def test_no_lines_is_zero():
    assert parse_worker_log([])["images"] == 0


@pytest.mark.parametrize(
    ("job", "expected"),
    [({"startedAt": 1_000, "stoppedAt": 61_000}, 60.0), ({"startedAt": 1_000}, None), ({}, None)],
)
def test_runtime(job, expected):
    assert job_runtime_seconds(job) == expected


def test_worker_stats_of_an_array_child_and_of_a_job_without_log():
    child = {"jobId": "p:3", "status": "SUCCEEDED", "startedAt": 1_000, "stoppedAt": 31_000}
    summary = json.dumps({"event": "summary", "images": 12, "faces": 4, "errors": 1, "images_per_s": 2.0})
    stats = worker_stats("secondary", child, [summary])
    assert (stats.role, stats.array_index, stats.images, stats.runtime_seconds) == ("secondary", 3, 12, 30.0)
    assert (stats.log_found, stats.partial) == (True, False)
    plain = worker_stats("primary", {"jobId": "j", "status": "FAILED"}, [])
    assert (plain.array_index, plain.images, plain.log_found, plain.partial) == (None, 0, False, False)
    indexed = worker_stats("secondary", {"jobId": "p", "arrayProperties": {"index": 7}}, [])
    assert indexed.array_index == 7


def test_cost_per_environment_and_per_thousand_images():
    cost = estimate_cost(
        [_w("primary", 1000, 3600), _w("secondary", 3000, 1800), _w("secondary", 1000, 1800)], 0.5
    )
    assert cost["primary"]["usd"] == pytest.approx(0.5)
    assert cost["primary"]["usd_per_1000"] == pytest.approx(0.5)
    assert cost["secondary"]["instance_seconds"] == 3600
    assert cost["secondary"]["usd"] == pytest.approx(0.5)
    assert cost["secondary"]["usd_per_1000"] == pytest.approx(0.125)


def test_cost_without_images_has_no_per_thousand_figure():
    assert estimate_cost([_w("primary", 0, 60)], 0.21)["primary"]["usd_per_1000"] is None


def test_totals():
    assert totals([_w("primary", 5, 1, faces=7, errors=1), _w("secondary", 2, 1, faces=1)]) == {
        "workers": 2,
        "images": 7,
        "faces": 8,
        "errors": 1,
    }
