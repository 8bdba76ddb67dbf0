"""How long wait_<role> waits: as long as the Batch job may take, read from the job itself.

The bound is checked on the project's own infra specs (a job definition with 3 attempts of 4 h, a job
queue that cancels a job stuck RUNNABLE for 30 min) and through the sensor the DAG uses, on moto for the
job and its queue and with botocore's Stubber for the DescribeJobs shape AWS really returns.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from airflow.providers.amazon.aws.triggers.batch import BatchJobTrigger
from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred
from botocore.stub import Stubber

from faceidx.indexing.sensors import BatchJobWaitSensor
from faceidx.indexing.waits import MARGIN_SECONDS, NO_TIMEOUT_FALLBACK_SECONDS, job_wait_bound

INFRA = Path(__file__).resolve().parents[4] / "infra" / "batch"
OLD_FIXED_WAIT = 6 * 3600  # what the wait allowed before: less than one job's 3 attempts of 4 h


def _spec(name: str) -> dict:
    return json.loads((INFRA / f"{name}.json").read_text())


def test_the_bound_covers_every_attempt_of_the_shipped_job_definition():
    definition, queue = _spec("job-definition"), _spec("job-queue-primary")
    bound = job_wait_bound({}, queue, definition=definition)
    assert bound.attempts == 3
    assert bound.attempt_seconds == 4 * 3600
    assert bound.runnable_seconds == 1800
    assert bound.seconds == 1800 + 3 * 4 * 3600 + MARGIN_SECONDS
    assert bound.seconds > OLD_FIXED_WAIT


def test_the_job_s_own_values_win_over_its_definition():
    job = {"retryStrategy": {"attempts": 2}, "timeout": {"attemptDurationSeconds": 600}}
    bound = job_wait_bound(job, None, definition=_spec("job-definition"), margin_seconds=0)
    assert (bound.attempts, bound.attempt_seconds, bound.seconds) == (2, 600, 1200)


def test_a_job_without_a_timeout_gets_the_fallback_and_says_so():
    bound = job_wait_bound({"retryStrategy": {"attempts": 1}}, None, margin_seconds=0)
    assert bound.seconds == NO_TIMEOUT_FALLBACK_SECONDS
    assert "set one in the job definition" in str(dict(bound.rows()))


def _sensor(job_id: str) -> BatchJobWaitSensor:
    return BatchJobWaitSensor(
        task_id="wait_primary",
        role="primary",
        job_id=job_id,
        aws_conn_id="aws_default",
        region_name="us-east-1",
        deferrable=True,
        poke_interval=30,
    )


def test_a_run_that_submitted_nothing_skips_its_wait():
    with pytest.raises(AirflowSkipException, match="submitted no job"):
        _sensor("None").execute({})


def test_the_sensor_defers_for_as_long_as_the_job_may_take(moto):
    """DescribeJobs as AWS answers it (the job's effective retryStrategy and timeout), and the queue's
    RUNNABLE limit from DescribeJobQueues."""
    sensor = _sensor("5d1f0000-0000-4000-8000-00000000000c")
    queue = {**_spec("job-queue-primary"), "jobQueueArn": "arn:aws:batch:us-east-1:1:job-queue/q"}
    queue.pop("tags")
    job = {
        "jobArn": "arn:aws:batch:us-east-1:123456789012:job/5d1f0000-0000-4000-8000-00000000000c",
        "jobName": "face-indexing-primary-manual__2026-12-06",
        "jobId": "5d1f0000-0000-4000-8000-00000000000c",
        "jobQueue": "face-recognition-primary-queue",
        "status": "RUNNABLE",
        "startedAt": 0,
        "jobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/face-recognition-job:3",
        "retryStrategy": {
            "attempts": 3,
            "evaluateOnExit": _spec("job-definition")["retryStrategy"]["evaluateOnExit"],
        },
        "timeout": {"attemptDurationSeconds": 14400},
    }
    queue["state"], queue["status"] = "ENABLED", "VALID"
    with Stubber(sensor.hook.client) as stub:
        stub.add_response("describe_jobs", {"jobs": [job]}, {"jobs": [job["jobId"]]})
        stub.add_response(
            "describe_job_queues", {"jobQueues": [queue]}, {"jobQueues": ["face-recognition-primary-queue"]}
        )
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute({})
    expected = 1800 + 3 * 14400 + MARGIN_SECONDS
    trigger = deferred.value.trigger
    assert isinstance(trigger, BatchJobTrigger)
    assert trigger.attempts == math.ceil(expected / 30)
    assert deferred.value.timeout.total_seconds() >= expected


def test_the_wait_task_s_timeout_covers_the_shipped_job(airflow_db):
    from tests.support.airflow_dags import load_dag

    dag = load_dag("face_indexing")
    expected = 1800 + 3 * 14400 + MARGIN_SECONDS
    for role in ("primary", "secondary"):
        task = dag.get_task(f"wait_{role}")
        assert isinstance(task, BatchJobWaitSensor)
        assert task.execution_timeout.total_seconds() == expected > OLD_FIXED_WAIT
