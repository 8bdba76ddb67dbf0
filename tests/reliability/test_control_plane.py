"""Control plane: AccessDenied on Batch ListJobs fails ``face_indexing`` with a message that says what to
fix, and nothing is submitted.

The other control-plane failures (a failing SubmitJob, a missing Batch job queue, a missing SQS queue)
are in tests/dags/test_face_indexing_failures.py; the hook-level AccessDenied (botocore Stubber) is in
tests/plugins/faceidx/hooks/test_batch.py. Here the error comes over HTTP from the fault proxy in front
of moto, so the whole DAG (deferrable sensor, hooks, operators) talks to AWS as it would in production.
"""

from __future__ import annotations

import pytest

from faceidx.common.constants import PRIMARY_JOB_QUEUE, SECONDARY_JOB_QUEUE
from tests.support.airflow_dags import load_dag, run_dag
from tests.support.batch import create_batch_queues, jobs_submitted_by_dag
from tests.support.moto_server import aws_connection_uri_json
from tests.support.sqs import create_queue, seed_messages

pytestmark = pytest.mark.slow


def test_access_denied_on_list_jobs_fails_the_run_and_submits_nothing(
    airflow_db, moto, proxy, monkeypatch, capfd
):
    create_batch_queues(moto)
    url = create_queue(moto)
    seed_messages(url, 1500)  # enough backlog that the planner would submit workers on both queues
    denied = proxy.add("batch", "ListJobs", "access_denied", times=None)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection_uri_json(proxy.url))
    dag = load_dag("face_indexing")
    for task in dag.tasks:  # dag.test() would otherwise wait out the retry delays
        task.retries = 0

    run, states = run_dag(dag, {"queue_url": url, "sensor_timeout_seconds": 1})

    assert denied.hits >= 1
    assert states["sense_depth"] == "success"  # the queue was readable: only Batch refused
    assert states["count_active_jobs"] == "failed"
    assert states["plan"] == "upstream_failed"
    assert states["submit_primary"] == states["submit_secondary"] == "upstream_failed"
    assert str(run.state) == "failed"
    out, err = capfd.readouterr()
    logs = out + err
    assert "not authorized to perform: batch:ListJobs" in logs
    assert "batch:ListJobs and batch:DescribeJobs" in logs  # what to fix
    assert "Nothing was submitted" in logs
    assert proxy.count("SubmitJob") == 0  # never reached Batch, not even refused
    assert not jobs_submitted_by_dag(moto, PRIMARY_JOB_QUEUE)  # read from moto directly
    assert not jobs_submitted_by_dag(moto, SECONDARY_JOB_QUEUE)
