"""Control-plane failures fail face_indexing with a message that says what to fix, and never fall
through to a wrong submission."""

from __future__ import annotations

import pytest

from faceidx.common.constants import PRIMARY_JOB_QUEUE, SECONDARY_JOB_QUEUE
from tests.support.airflow_dags import FAST, run_dag
from tests.support.batch import create_batch_queues, jobs_submitted_by_dag
from tests.support.sqs import create_queue, seed_messages


@pytest.fixture
def dag(indexing_dag):
    dag = indexing_dag
    for task in dag.tasks:  # dag.test() would wait out the retry delays of the real DAG
        task.retries = 0
    return dag


def _output(capfd) -> str:
    """What the task logs printed (task logs go to stdout/stderr under dag.test)."""
    out, err = capfd.readouterr()
    return out + err


def _no_jobs(moto):
    return not jobs_submitted_by_dag(moto, PRIMARY_JOB_QUEUE) and not jobs_submitted_by_dag(
        moto, SECONDARY_JOB_QUEUE
    )


def test_missing_work_queue_fails_the_sensor(dag, moto, capfd):
    create_batch_queues(moto)
    _, states = run_dag(dag, {"queue_url": f"{moto.url}/123456789012/no-such-queue", **FAST})
    assert states["sense_depth"] == "failed"
    assert states["submit_primary"] == states["submit_secondary"] == "upstream_failed"
    assert "Run the face_infra_bootstrap DAG" in _output(capfd)
    assert _no_jobs(moto)


def test_missing_job_queue_fails_before_any_submission(dag, moto, capfd):
    url = create_queue(moto)
    seed_messages(url, 5000)
    _, states = run_dag(dag, {"queue_url": url, **FAST})
    assert states["count_active_jobs"] == "failed"
    assert states["plan"] == "upstream_failed"
    assert "Nothing was submitted, so no worker was piled up" in _output(capfd)


def test_failing_submit_job_fails_the_run(dag, moto, capfd):
    create_batch_queues(moto)
    url = create_queue(moto)
    seed_messages(url, 1500)
    run, states = run_dag(dag, {"queue_url": url, "job_definition": "no-such-definition", **FAST})
    assert states["submit_primary"] == states["submit_secondary"] == "failed"
    assert states["worker_logs"] == "success"  # still reports what it could find
    assert states["report"] == "upstream_failed"
    assert str(run.state) == "failed"
    assert "no-such-definition" in _output(capfd)
    assert _no_jobs(moto)
