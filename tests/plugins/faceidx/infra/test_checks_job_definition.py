"""The job definition's retry rules: spot reclaims and a stalled worker (exit 4) are retried."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faceidx.infra.checks import check_job_definition, job_resources

SPEC = Path(__file__).resolve().parents[4] / "infra" / "batch" / "job-definition.json"


def _warnings(rules: list[dict]) -> list[str]:
    job = json.loads(SPEC.read_text())
    job["retryStrategy"]["evaluateOnExit"] = rules
    return [f.problem for f in check_job_definition("face-recognition-job", job, job_resources(job))]


def test_the_shipped_spec_retries_both():
    job = json.loads(SPEC.read_text())
    assert [f.problem for f in check_job_definition("j", job, job_resources(job))] == []


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (
            [{"onStatusReason": "Host EC2*", "action": "RETRY"}, {"onReason": "*", "action": "EXIT"}],
            "exit code 4",
        ),
        ([{"onExitCode": "4", "action": "RETRY"}, {"onReason": "*", "action": "EXIT"}], "spot reclaims"),
    ],
)
def test_a_missing_retry_is_flagged(rules, expected):
    problems = _warnings(rules)
    assert len(problems) == 1
    assert expected in problems[0]
