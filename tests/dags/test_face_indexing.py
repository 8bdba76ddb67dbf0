"""The whole face_indexing DAG under dag.test() against the moto server.

The jobs each Batch queue holds afterwards must be exactly what the planner says for the seeded depth,
and a second run while earlier jobs are still active must submit only the deficit.
"""

from __future__ import annotations

import pytest

from faceidx.common.constants import PRIMARY_JOB_QUEUE, SECONDARY_JOB_QUEUE
from faceidx.indexing.planning import plan_submissions
from tests.support.airflow_dags import FAST, run_dag, xcom
from tests.support.batch import hold_jobs, jobs_submitted_by_dag, submit_held
from tests.support.sqs import seed_messages


@pytest.fixture
def dag(indexing_dag):
    return indexing_dag


def _shape(job):
    return (
        "plain"
        if "arrayProperties" not in job or not job["arrayProperties"].get("size")
        else job["arrayProperties"]["size"]
    )


def _submitted(moto):
    return {
        "primary": [_shape(j) for j in jobs_submitted_by_dag(moto, PRIMARY_JOB_QUEUE)],
        "secondary": [_shape(j) for j in jobs_submitted_by_dag(moto, SECONDARY_JOB_QUEUE)],
    }


def _expected(depth, active_primary=0, active_secondary=0):
    plan = plan_submissions(depth, 0, active_primary, active_secondary)
    out = {}
    for role in ("primary", "secondary"):
        sub = getattr(plan, role)
        out[role] = [] if sub is None else ["plain" if sub.array_size is None else sub.array_size]
    return out


@pytest.mark.parametrize(
    ("depth", "expected"),
    [
        (500, {"primary": ["plain"], "secondary": []}),
        (1500, {"primary": ["plain"], "secondary": ["plain"]}),
        (2500, {"primary": ["plain"], "secondary": [2]}),
        (25000, {"primary": ["plain"], "secondary": [10]}),
    ],
)
def test_jobs_match_the_plan(dag, moto, queue_url, depth, expected):
    seed_messages(queue_url, depth)
    run, states = run_dag(dag, {"queue_url": queue_url, **FAST})
    assert states["sense_depth"] == "success"
    assert states["report"] == "success"
    assert _submitted(moto) == expected == _expected(depth)
    # the run's identity reaches the workers, and the jobs are tagged
    for job in jobs_submitted_by_dag(moto, PRIMARY_JOB_QUEUE) + jobs_submitted_by_dag(
        moto, SECONDARY_JOB_QUEUE
    ):
        assert job["tags"]["project"] == "faceidx"
        assert job["tags"]["dag_run"] == run.run_id
    summary = xcom(run, "report")
    assert summary["depth_before"]["visible"] == depth
    assert set(summary["submitted"]) == {role for role, shapes in expected.items() if shapes}


def test_empty_queue_skips_the_run(dag, moto, queue_url):
    _, states = run_dag(dag, {"queue_url": queue_url, **FAST})
    assert states["sense_depth"] == "skipped"
    assert states["submit_primary"] == states["submit_secondary"] == "skipped"
    assert _submitted(moto) == {"primary": [], "secondary": []}


def test_second_run_submits_only_the_deficit(dag, moto, queue_url):
    seed_messages(queue_url, 25000)
    with hold_jobs("RUNNABLE"):
        # what an earlier run left: its primary worker and a secondary array of 3 still coming
        submit_held(moto, PRIMARY_JOB_QUEUE)
        submit_held(moto, SECONDARY_JOB_QUEUE, array_size=3)
        _, states = run_dag(dag, {"queue_url": queue_url, **FAST})
    assert states["submit_primary"] == "skipped"
    assert _submitted(moto) == {"primary": [], "secondary": [7]} == _expected(25000, 1, 3)


def test_dry_run_submits_nothing_and_consumes_nothing(dag, moto, queue_url):
    seed_messages(queue_url, 2500)
    run, states = run_dag(dag, {"queue_url": queue_url, "dry_run": True, **FAST})
    assert states["nothing_to_submit"] == "success"
    assert _submitted(moto) == {"primary": [], "secondary": []}
    assert xcom(run, "plan")["secondary_array_properties"] == {"size": 2}
    attrs = moto.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "2500"
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_policy_params_change_the_decision(dag, moto, queue_url):
    seed_messages(queue_url, 2500)
    run_dag(dag, {"queue_url": queue_url, "secondary_threshold": 500, "secondary_max_array": 3, **FAST})
    assert _submitted(moto) == {"primary": ["plain"], "secondary": [3]}
