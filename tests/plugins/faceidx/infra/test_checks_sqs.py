"""The dead-letter queue keeps messages longer than the work queue (they keep their enqueue time)."""

from __future__ import annotations

import copy

import pytest

from faceidx.infra.checks import ERROR
from faceidx.infra.checks_sqs import DEFAULT_RETENTION_SECONDS, retention_seconds
from faceidx.infra.validate import validate_rendered, validate_specs
from faceidx.infra.values import example_params


@pytest.fixture(scope="module")
def rendered():
    return validate_specs(example_params(), {}).rendered


def test_shipped_dlq_outlives_the_work_queue(rendered):
    work, dead = rendered["sqs/work-queue"], rendered["sqs/dead-letter-queue"]
    assert retention_seconds(dead) == 1_209_600, "14 days, the SQS maximum"
    assert retention_seconds(work) == 604_800
    assert retention_seconds(dead) > retention_seconds(work)


@pytest.mark.parametrize(
    ("work", "dead", "rejected"),
    [
        ("1209600", "1209600", True),  # equal: a message failing on day 13 has one day in the DLQ
        ("1209600", "604800", True),
        (None, "345600", True),  # the work queue's SQS default (4 days) against a 4-day DLQ
        ("604800", "604801", False),
        (None, "1209600", False),
    ],
)
def test_dlq_retention_must_exceed_the_work_queue(rendered, work, dead, rejected):
    specs = copy.deepcopy(rendered)
    attributes = specs["sqs/work-queue"]["Attributes"]
    if work is None:
        attributes.pop("MessageRetentionPeriod")
    else:
        attributes["MessageRetentionPeriod"] = work
    specs["sqs/dead-letter-queue"]["Attributes"]["MessageRetentionPeriod"] = dead
    errors = [f for f in validate_rendered(specs) if f.severity == ERROR]
    found = [f for f in errors if "original enqueue time" in f.problem]
    assert bool(found) is rejected, [str(f) for f in errors]
    if rejected:
        assert found[0].resource == "sqs queue faceidx-work-dlq"
        assert "longer MessageRetentionPeriod" in found[0].fix


def test_default_retention_is_sqs_default():
    assert DEFAULT_RETENTION_SECONDS == 4 * 24 * 3600
