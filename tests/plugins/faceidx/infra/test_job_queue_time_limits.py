"""Jobs stuck in RUNNABLE: both job queues cancel them after a bounded time for the reasons AWS Batch
can act on; validated offline and reconciled (moto stores the actions through the test bridge)."""

from __future__ import annotations

import copy

import pytest

from faceidx.common.constants import PRIMARY_JOB_QUEUE, SECONDARY_JOB_QUEUE
from faceidx.infra.checks import ERROR, TIME_LIMIT_REASONS
from faceidx.infra.diff import diff, normalize_job_queue
from faceidx.infra.validate import validate_rendered, validate_specs
from faceidx.infra.values import example_params
from tests.plugins.faceidx.infra.conftest import actions

QUEUES = ("batch/job-queue-primary", "batch/job-queue-secondary")
EXPECTED = {
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY": ("RUNNABLE", 1800, "CANCEL"),
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE": ("RUNNABLE", 600, "CANCEL"),
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT": ("RUNNABLE", 600, "CANCEL"),
}


@pytest.fixture(scope="module")
def rendered():
    return validate_specs(example_params(), {}).rendered


def _by_reason(queue):
    return {
        a["reason"]: (a["state"], a["maxTimeSeconds"], a["action"]) for a in queue["jobStateTimeLimitActions"]
    }


def test_both_queues_cancel_stuck_jobs(rendered):
    for key in QUEUES:
        assert _by_reason(rendered[key]) == EXPECTED
        assert set(_by_reason(rendered[key])) <= TIME_LIMIT_REASONS


@pytest.mark.parametrize(
    ("action", "problem"),
    [
        ({"reason": "MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS"}, "is not one AWS Batch acts on"),
        ({"reason": "MISCONFIGURATION:*"}, "is not one AWS Batch acts on"),
        ({"maxTimeSeconds": 599}, "AWS takes 600 to 86400"),
        ({"maxTimeSeconds": 86401}, "AWS takes 600 to 86400"),
    ],
)
def test_bad_time_limit_actions_are_rejected(rendered, action, problem):
    specs = copy.deepcopy(rendered)
    specs[QUEUES[0]]["jobStateTimeLimitActions"][0].update(action)
    errors = [f for f in validate_rendered(specs) if f.severity == ERROR]
    assert any(problem in f.problem for f in errors), [str(f) for f in errors]


def test_bad_enum_values_are_caught_by_botocores_model(rendered):
    specs = copy.deepcopy(rendered)
    specs[QUEUES[0]]["jobStateTimeLimitActions"][0].update(state="STARTING", action="TERMINATED")
    problems = " ".join(f.problem for f in validate_rendered(specs) if f.severity == ERROR)
    assert "'STARTING' is not one of ['RUNNABLE']" in problems
    assert "'TERMINATED' is not one of ['CANCEL', 'TERMINATE']" in problems


def test_a_repeated_reason_is_rejected(rendered):
    specs = copy.deepcopy(rendered)
    first = specs[QUEUES[0]]["jobStateTimeLimitActions"][0]
    specs[QUEUES[0]]["jobStateTimeLimitActions"].append(dict(first))
    assert any("more than once" in f.problem for f in validate_rendered(specs))


def test_order_of_actions_is_not_a_difference(rendered):
    spec = rendered[QUEUES[0]]
    held = {**spec, "jobStateTimeLimitActions": list(reversed(spec["jobStateTimeLimitActions"]))}
    assert diff(normalize_job_queue(held), normalize_job_queue(spec)) == []
    without = {k: v for k, v in spec.items() if k != "jobStateTimeLimitActions"}
    (change,) = diff(normalize_job_queue(without), normalize_job_queue(spec))
    assert change.path == "jobStateTimeLimitActions"


def test_queues_without_the_actions_are_updated(bootstrap, account):
    bootstrap()
    batch = account.client("batch")
    batch.update_job_queue(jobQueue=PRIMARY_JOB_QUEUE, jobStateTimeLimitActions=[])
    assert (
        batch.describe_job_queues(jobQueues=[PRIMARY_JOB_QUEUE])["jobQueues"][0]["jobStateTimeLimitActions"]
        == []
    )
    run = bootstrap()
    assert actions(run)[f"batch job queue {PRIMARY_JOB_QUEUE}"] == "updated"
    assert actions(run)[f"batch job queue {SECONDARY_JOB_QUEUE}"] == "unchanged"
    (queue,) = batch.describe_job_queues(jobQueues=[PRIMARY_JOB_QUEUE])["jobQueues"]
    assert _by_reason(queue) == EXPECTED
