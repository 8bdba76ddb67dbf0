"""face_infra_bootstrap end to end under dag.test() against moto. Few runs: each costs seconds; the
ensure_* details are tested at hook level in tests/plugins/faceidx/infra/."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.stub import Stubber

from faceidx.common.constants import (
    MAINTENANCE_COMPUTE_ENVIRONMENT,
    MAINTENANCE_JOB_QUEUE,
    PRIMARY_COMPUTE_ENVIRONMENT,
    SECONDARY_COMPUTE_ENVIRONMENT,
    VAR_MAINTENANCE_JOB_QUEUE,
    VAR_OUTPUT_URI,
    VAR_QUEUE_URL,
)
from faceidx.infra.values import VALUES
from tests.support.airflow_dags import load_dag, run_dag, xcom
from tests.support.infra_moto import OUTPUT_URI, prepare_infra_account

DAG_ID = "face_infra_bootstrap"
REPO = Path(__file__).resolve().parents[2]
RESOURCE_COUNT = 20  # every spec under infra/ but the Airflow policy is one resource
TASKS = [
    "validate",
    "ensure_sqs",
    "ensure_iam",
    "ensure_bucket_notification",
    "ensure_compute_environments",
    "ensure_job_queues",
    "ensure_job_definition",
    "publish_variables",
    "summary",
]
DENIED = (
    "User: arn:aws:sts::123456789012:assumed-role/airflow/x is not authorized to perform: "
    "batch:DescribeComputeEnvironments"
)


def _variable(key):
    from airflow.models.variable import Variable

    return Variable.get(key, default_var=None)


def _clear_variables():
    from airflow.models.variable import Variable

    # the maintenance queue's Variable would send every later test's index steps to a Batch that is
    # not there: the metadata DB lives for the whole session
    for key in (VAR_QUEUE_URL, VAR_OUTPUT_URI, VAR_MAINTENANCE_JOB_QUEUE):
        Variable.delete(key)


@pytest.fixture
def account(airflow_db, moto, monkeypatch):
    _clear_variables()
    yield prepare_infra_account(moto, monkeypatch)
    _clear_variables()


@pytest.fixture(scope="module")
def dag(airflow_db):
    dag = load_dag(DAG_ID)
    for task in dag.tasks:
        task.retries = 0  # a failing test must not wait for retry_delay
    return dag


def test_manual_only_with_a_param_per_value(dag):
    assert dag.schedule is None
    assert type(dag.timetable).__name__ == "NullTimetable"
    assert {t.value for t in dag.allowed_run_types} == {"manual"}
    assert set(dag.params) == {v.param for v in VALUES} | {"dry_run"}
    assert dag.params["dry_run"] is True, "a trigger without thought changes nothing"
    assert sorted(t.task_id for t in dag.tasks) == sorted(TASKS)
    assert dag.get_task("validate").upstream_task_ids == set()
    assert load_dag(DAG_ID).get_task("validate").retries == 0
    summary = dag.get_task("summary")
    assert summary.downstream_task_ids == set()
    assert {"publish_variables", "ensure_job_definition", "ensure_job_queues"} <= summary.upstream_task_ids


def _states(run):
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_dry_run_plans_and_changes_nothing(dag, account):
    run, states = run_dag(dag, {**account.params, "dry_run": True})
    assert set(states.values()) == {"success"}, states
    summary = xcom(run, "summary")
    assert summary["dry_run"] is True
    assert summary["counts"]["created"] == RESOURCE_COUNT
    assert account.client("sqs").list_queues().get("QueueUrls", []) == []
    assert account.client("batch").describe_compute_environments()["computeEnvironments"] == []
    assert _variable(VAR_QUEUE_URL) is None
    assert _variable(VAR_MAINTENANCE_JOB_QUEUE) is None, "a dry run leaves the index steps in Airflow"

    from airflow.exceptions import DagRunTypeNotAllowed
    from airflow.models.backfill import _create_backfill

    with pytest.raises(DagRunTypeNotAllowed, match="does not allow backfill runs"):
        _create_backfill(
            dag_id=DAG_ID,
            from_date=datetime(2026, 1, 1, tzinfo=UTC),
            to_date=datetime(2026, 1, 3, tzinfo=UTC),
            max_active_runs=1,
            reverse=False,
            dag_run_conf={},
            triggering_user_name="test",
        )


def test_real_run_creates_everything_sets_variables_and_repeats_unchanged(dag, account):
    run, states = run_dag(dag, account.params)
    assert set(states.values()) == {"success"}, states
    assert xcom(run, "summary")["counts"]["created"] == RESOURCE_COUNT
    queue_url = account.client("sqs").get_queue_url(QueueName="faceidx-work")["QueueUrl"]
    # face_indexing reads `params.queue_url or var faceidx_queue_url`: it now needs no configuration.
    assert _variable(VAR_QUEUE_URL) == queue_url
    assert _variable(VAR_OUTPUT_URI) == OUTPUT_URI
    # the index steps submit their Batch jobs to the maintenance queue once this is set
    assert _variable(VAR_MAINTENANCE_JOB_QUEUE) == MAINTENANCE_JOB_QUEUE
    ces = account.client("batch").describe_compute_environments()["computeEnvironments"]
    assert {ce["computeEnvironmentName"] for ce in ces} == {
        PRIMARY_COMPUTE_ENVIRONMENT,
        SECONDARY_COMPUTE_ENVIRONMENT,
        MAINTENANCE_COMPUTE_ENVIRONMENT,
    }
    assert {ce["status"] for ce in ces} == {"VALID"}
    (queue,) = account.client("batch").describe_job_queues(jobQueues=[MAINTENANCE_JOB_QUEUE])["jobQueues"]
    assert queue["state"] == "ENABLED"

    again, states = run_dag(dag, account.params)
    assert set(states.values()) == {"success"}, states
    summary = xcom(again, "summary")
    assert summary["counts"] == {
        "created": 0,
        "updated": 0,
        "unchanged": RESOURCE_COUNT,
        "needs-replacement": 0,
    }


def test_invalid_spec_fails_validate_before_any_aws_call(dag, account, tmp_path, monkeypatch, capfd):
    spec_dir = tmp_path / "infra"
    shutil.copytree(REPO / "infra", spec_dir)
    path = spec_dir / "batch/job-definition.json"
    spec = json.loads(path.read_text())
    spec["containerProperties"]["resourceRequirements"] = [
        {"type": "VCPU", "value": "4"},
        {"type": "MEMORY", "value": "16384"},
    ]
    path.write_text(json.dumps(spec))
    monkeypatch.setenv("FACEIDX_INFRA_DIR", str(spec_dir))
    _, states = run_dag(dag, account.params)
    assert states["validate"] == "failed"
    task_log = "".join(capfd.readouterr())
    assert "asks for 16384 MiB of memory" in task_log
    assert "asks for no GPU" in task_log
    assert {s for task, s in states.items() if task != "validate"} == {"upstream_failed"}
    assert account.client("sqs").list_queues().get("QueueUrls", []) == []
    assert [
        r["RoleName"] for r in account.client("iam").list_roles()["Roles"] if "faceidx" in r["RoleName"]
    ] == []


def test_access_denied_on_a_describe_fails_the_task_with_aws_message(dag, account, monkeypatch, capfd):
    from faceidx.infra.hook_base import InfraReconcileHook

    original = InfraReconcileHook.client_for

    def client_for(self, service):
        client = original(self, service)
        if service == "batch" and not hasattr(client, "faceidx_stub"):
            client.faceidx_stub = Stubber(client)
            client.faceidx_stub.add_client_error(
                "describe_compute_environments",
                service_error_code="AccessDeniedException",
                service_message=DENIED,
                http_status_code=403,
            )
            client.faceidx_stub.activate()
        return client

    monkeypatch.setattr(InfraReconcileHook, "client_for", client_for)
    _, states = run_dag(dag, account.params)
    assert states["ensure_compute_environments"] == "failed"
    assert states["ensure_sqs"] == states["ensure_iam"] == "success"
    assert states["summary"] == "upstream_failed"
    task_log = "".join(capfd.readouterr())  # dag.test() prints the task logs
    assert "InfraReconcileError: batch:DescribeComputeEnvironments on compute environment" in task_log
    assert f"AccessDeniedException: {DENIED}" in task_log
    assert "Grant batch:DescribeComputeEnvironments" in task_log
    found = account.client("batch").describe_compute_environments(
        computeEnvironments=[PRIMARY_COMPUTE_ENVIRONMENT]
    )
    assert found["computeEnvironments"] == [], "never fell through to a create"
    assert _variable(VAR_QUEUE_URL) is None
