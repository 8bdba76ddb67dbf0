"""Queue-health verdicts: the thresholds and the advice they give."""

from __future__ import annotations

import pytest

from faceidx.indexing.health import assess_queue_health


@pytest.mark.parametrize(
    ("age", "dlq_depth", "checks"),
    [
        (None, None, []),
        (100.0, 0, []),
        (3600.0, 0, []),
        (3601.0, 0, ["oldest_message"]),
        (10.0, 3, ["dead_letter_queue"]),
        (9999.0, 1, ["oldest_message", "dead_letter_queue"]),
    ],
)
def test_warnings(age, dlq_depth, checks):
    health = assess_queue_health(age, "https://dlq", dlq_depth, 3600)
    assert [w["check"] for w in health.warnings] == checks


def test_warnings_say_what_to_do():
    health = assess_queue_health(7200.0, "https://dlq", 2, 3600)
    text = " ".join(w["message"] for w in health.warnings)
    assert "RUNNABLE" in text
    assert "redrive" in text
