"""EMF lines: the structure CloudWatch requires, dimensions, and the off switch."""

from __future__ import annotations

from faceidx_worker.metrics import EmfMetrics
from faceidx_worker.rows import ErrorReason


def _metrics(enabled=True):
    lines = []
    metrics = EmfMetrics(
        enabled=enabled,
        namespace="faceidx",
        environment="secondary",
        model_pack="buffalo_l",
        emit=lines.append,
    )
    return metrics, lines


def _valid(line):
    directive = line["_aws"]["CloudWatchMetrics"][0]
    for dimension_set in directive["Dimensions"]:
        assert all(isinstance(line[name], str) for name in dimension_set)
    for metric in directive["Metrics"]:
        assert isinstance(line[metric["Name"]], int | float)
    return directive


def test_batch_lines():
    metrics, lines = _metrics()
    reasons = {ErrorReason.NOT_FOUND: 1, ErrorReason.DECODE_ERROR: 2}
    metrics.batch(images=5, faces=7, errors_by_reason=reasons, stage_seconds={"detect": 0.5})
    main, *per_reason = lines
    directive = _valid(main)
    assert directive["Dimensions"] == [["environment", "model_pack"]]
    assert (main["ImagesIndexed"], main["FacesFound"], main["ErrorRows"]) == (5, 7, 3)
    assert main["DetectSeconds"] == 0.5
    assert main["DownloadSeconds"] == 0
    assert main["environment"] == "secondary"
    assert main["model_pack"] == "buffalo_l"
    assert [(x["reason"], x["ErrorRows"]) for x in per_reason] == [("decode_error", 2), ("not_found", 1)]
    for line in per_reason:
        assert _valid(line)["Dimensions"] == [["environment", "model_pack", "reason"]]


def test_final_and_flush_lines():
    metrics, lines = _metrics()
    metrics.flush(rows=10, seconds=0.25)
    metrics.final(images_per_second=12.5, idle_seconds=60.0, run_seconds=100.0)
    assert lines[0]["WriteSeconds"] == 0.25
    assert lines[0]["RowsWritten"] == 10
    units = {m["Name"]: m["Unit"] for m in _valid(lines[1])["Metrics"]}
    assert units == {"ImagesPerSecond": "Count/Second", "IdleSeconds": "Seconds", "RunSeconds": "Seconds"}


def test_switch_off():
    metrics, lines = _metrics(enabled=False)
    metrics.batch(images=1, faces=1, errors_by_reason={ErrorReason.NOT_FOUND: 1}, stage_seconds={})
    metrics.final(images_per_second=1, idle_seconds=1, run_seconds=1)
    assert lines == []
