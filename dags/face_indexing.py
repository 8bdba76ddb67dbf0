"""
### face_indexing: start GPU workers for the images waiting in SQS

Every few minutes (and at once when `face_reindex` queues a backfill) this DAG:

1. **sense_depth**: reads the work queue's depth with GetQueueAttributes. It never receives a
   message. An empty queue skips the run (shown as *skipped*, not failed).
2. **count_active_jobs**: counts the Batch jobs already SUBMITTED/PENDING/RUNNABLE/STARTING/RUNNING on
   both queues; array jobs count by their unfinished children.
3. **plan**: applies the scaling rule (`faceidx.indexing.planning`) and logs a table: depth, active jobs,
   policy, decision and the reason for it.
4. **choose**: branches to `submit_primary` and/or `submit_secondary`, or to `nothing_to_submit`.
5. **submit_primary / submit_secondary**: `BatchOperator`s that only submit. A secondary deficit of
   1 is a plain job, 2 or more an array job. Each runs one at a time across runs and counts the
   queue's active jobs again right before SubmitJob, so two runs never submit for the same deficit.
   They are never retried by Airflow (a retry would submit a second job). When the recount finds
   the target already met by another run's workers, the submit **succeeds** without submitting and
   logs the recount table (the active jobs and the runs that submitted them); `report` shows it too.
   **wait_primary / wait_secondary** (`BatchSensor`, deferrable) then wait for the jobs in the
   triggerer, never in a worker slot, as long as the job may take (its queue's RUNNABLE limit plus
   attempts x `attemptDurationSeconds`, read from the job); they may be retried safely, and are
   skipped when the run submitted nothing.
6. **worker_logs**: reads every worker's CloudWatch log stream (each array child: the parent has
   none) and logs a table (job, array index, status, images, faces, errors, images/s) plus the
   estimated GPU cost per environment.
7. **report**: joins every branch and logs the run summary (depth before, jobs submitted, images,
   faces, error rows, cost, oldest message age); it is also the run's XCom.

**Queue health** (`queue_health`, beside the sensor): the oldest message's age (CloudWatch) and the
dead-letter queue's depth, logged in the decision table; a warning (and the optional
`queue_health_callback`) fires when the age exceeds `max_message_age_seconds` or the DLQ is not empty.

**Scaling rule** (defaults): primary gets 1 worker when the backlog is >= 1 and none is active;
secondary gets `min(visible // 1000, 10)` workers minus those already active.

**Manual runs**: trigger with Params to override the queue, the names or the policy; `dry_run`
plans and logs without submitting anything.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.amazon.aws.operators.batch import BatchOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, TriggerRule, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from faceidx.common.constants import (
    DEFAULT_AWS_CONN_ID,
    PROJECT_TAG,
    REINDEX_ASSET_URI,
    VAR_QUEUE_URL,
)
from faceidx.indexing.operators import BatchDeficitSubmitOperator
from faceidx.indexing.params import indexing_params
from faceidx.indexing.sensors import BatchJobWaitSensor, SqsQueueDepthSensor
from faceidx.indexing.waits import shipped_wait_bound

SCHEDULE_CRON = os.environ.get("FACEIDX_INDEXING_SCHEDULE", "*/5 * * * *")
BATCH_POLL_SECONDS = int(os.environ.get("FACEIDX_BATCH_POLL_SECONDS", "30"))

WAIT_TIMEOUT = timedelta(seconds=shipped_wait_bound().seconds)

QUEUE_URL = "{{ params.queue_url or var.value.get('" + VAR_QUEUE_URL + "', '') }}"


def _submit(role: str, decision: Any) -> BatchOperator:
    return BatchDeficitSubmitOperator(
        task_id=f"submit_{role}",
        role=role,
        target=decision[f"{role}_target"],
        planned=decision[f"{role}_workers"],
        job_name=decision[f"{role}_job_name"],
        job_queue=decision[f"{role}_job_queue"],
        job_definition="{{ params.job_definition }}",
        array_properties=decision[f"{role}_array_properties"],
        container_overrides={
            "environment": [
                {"name": "FACEIDX_QUEUE_URL", "value": QUEUE_URL},
                {"name": "FACEIDX_QUEUE_ROLE", "value": role},
                {"name": "FACEIDX_DAG_ID", "value": "{{ dag.dag_id }}"},
                {"name": "FACEIDX_DAG_RUN_ID", "value": "{{ run_id }}"},
            ]
        },
        tags={
            "project": PROJECT_TAG,
            "environment": role,
            "dag_id": "{{ dag.dag_id }}",
            "dag_run": "{{ run_id }}",
        },
        aws_conn_id=DEFAULT_AWS_CONN_ID,
        # Submit only: waiting is wait_<role>'s job. A retry of BatchOperator submits a *new* job, so
        # this task is never retried, while the wait (which submits nothing) can be.
        wait_for_completion=False,
        deferrable=False,
        retries=0,
        # Count-then-submit runs one run at a time per queue: the operator recounts before SubmitJob.
        max_active_tis_per_dag=1,
        execution_timeout=timedelta(minutes=5),
    )


def _wait(role: str) -> BatchJobWaitSensor:
    return BatchJobWaitSensor(
        task_id=f"wait_{role}",
        role=role,
        job_id=f"{{{{ ti.xcom_pull(task_ids='submit_{role}') }}}}",
        aws_conn_id=DEFAULT_AWS_CONN_ID,
        deferrable=True,  # waits in the triggerer: no worker slot is held while GPUs work
        poke_interval=BATCH_POLL_SECONDS,
        # As long as a job of infra/batch's job definition may take (its queue's RUNNABLE limit +
        # attempts x attemptDurationSeconds, faceidx.indexing.waits); the sensor also reads the job's own.
        execution_timeout=WAIT_TIMEOUT,
    )


@dag(
    dag_id="face_indexing",
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(SCHEDULE_CRON, timezone="UTC"),
        assets=[Asset(REINDEX_ASSET_URI)],
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=16,
    tags=["faceidx", "indexing", "aws-batch"],
    default_args={
        "owner": "faceidx",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(minutes=10),
    },
    params=indexing_params(),
)
def face_indexing() -> None:
    depth = SqsQueueDepthSensor(
        task_id="sense_depth",
        queue_url=QUEUE_URL,
        min_depth="{{ params.min_depth }}",
        wait_timeout="{{ params.sensor_timeout_seconds }}",
        aws_conn_id=DEFAULT_AWS_CONN_ID,
        poke_interval=30,
        deferrable=True,
    )

    @task
    def queue_health(queue_url: str, **context: Any) -> dict[str, Any]:
        from faceidx.indexing.tasks import check_queue_health

        return check_queue_health(context["params"], queue_url, DEFAULT_AWS_CONN_ID, context)

    @task
    def count_active_jobs(**context: Any) -> dict[str, Any]:
        from faceidx.indexing.tasks import count_active_jobs as count

        return count(context["params"], DEFAULT_AWS_CONN_ID)

    @task(multiple_outputs=True)
    def plan(
        depth: dict[str, int], active: dict[str, Any], health: dict[str, Any], **context: Any
    ) -> dict[str, Any]:
        from faceidx.indexing.tasks import plan_run

        return plan_run(depth, active, context["params"], context["run_id"], health)

    @task.branch
    def choose(decision: dict[str, Any]) -> list[str]:
        from faceidx.indexing.tasks import choose_branches

        return choose_branches(decision)

    nothing_to_submit = EmptyOperator(task_id="nothing_to_submit")

    # Runs even when a job failed, so the failed worker's log lines are in this run's logs.
    @task(trigger_rule=TriggerRule.ALL_DONE)
    def worker_logs(**context: Any) -> dict[str, Any]:
        from faceidx.indexing.tasks import collect_worker_logs

        decision = context["ti"].xcom_pull(task_ids="plan")
        if not decision:
            raise AirflowSkipException("no plan in this run (empty queue or an earlier failure)")
        # the job ids are the submit tasks' outputs (None for a branch that did not run)
        job_ids = {
            role: context["ti"].xcom_pull(task_ids=f"submit_{role}") for role in ("primary", "secondary")
        }
        # what each submit found when it recounted (no job id: another run's workers met the target)
        recounts = {
            role: context["ti"].xcom_pull(task_ids=f"submit_{role}", key="recount")
            for role in ("primary", "secondary")
        }
        return collect_worker_logs(decision, context["params"], DEFAULT_AWS_CONN_ID, job_ids, recounts)

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def report(decision: dict[str, Any], workers: dict[str, Any]) -> dict[str, Any]:
        from faceidx.indexing.tasks import report_run

        return report_run(decision, workers)

    health = queue_health(QUEUE_URL)  # op_args are templated
    active = count_active_jobs()
    decision = plan(depth.output, active, health)
    depth >> active
    primary = _submit("primary", decision)
    secondary = _submit("secondary", decision)
    choose(decision) >> [primary, secondary, nothing_to_submit]
    waits = [primary >> _wait("primary"), secondary >> _wait("secondary"), nothing_to_submit]
    logs = worker_logs()
    waits >> logs
    waits >> report(decision, logs)


face_indexing()
