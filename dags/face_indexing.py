"""
### face_indexing: start GPU workers for the images waiting in SQS

Every few minutes (and at once when `face_reindex` queues a backfill) this DAG:

1. **sense_depth**: reads the work queue's depth with GetQueueAttributes. It never receives a
   message. An empty queue skips the run (shown as *skipped*, not failed).
2. **count_active_jobs**: counts the Batch jobs already SUBMITTED/PENDING/RUNNABLE/STARTING/RUNNING on
   both queues; array jobs count by their unfinished children.
3. **plan**: applies the scaling rule (`faceidx.planning`) and logs a table: depth, active jobs,
   policy, decision and the reason for it.
4. **choose**: branches to `submit_primary` and/or `submit_secondary`, or to `nothing_to_submit`.
5. **submit_primary / submit_secondary**: `BatchOperator`s. A secondary deficit of 1 is a plain job,
   2 or more an array job. They wait for the jobs in the triggerer (deferrable), never in a worker
   slot, and are never retried by Airflow (a retry would submit a second job).
6. **report**: joins every branch and logs what was submitted.

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
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, TriggerRule, dag, task

from faceidx.constants import (
    DEFAULT_AWS_CONN_ID,
    JOB_DEFINITION,
    JOB_NAME_PREFIX,
    PRIMARY_JOB_QUEUE,
    PROJECT_TAG,
    REINDEX_ASSET_URI,
    SECONDARY_JOB_QUEUE,
    VAR_QUEUE_URL,
)
from faceidx.sensors.sqs import SqsQueueDepthSensor

SCHEDULE_CRON = os.environ.get("FACEIDX_INDEXING_SCHEDULE", "*/5 * * * *")

QUEUE_URL = "{{ params.queue_url or var.value.get('" + VAR_QUEUE_URL + "', '') }}"


def _submit(role: str, queue_param: str, array_properties: Any) -> BatchOperator:
    return BatchOperator(
        task_id=f"submit_{role}",
        job_name=f"{JOB_NAME_PREFIX}-{role}-{{{{ ts_nodash }}}}",
        job_queue=f"{{{{ params.{queue_param} }}}}",
        job_definition="{{ params.job_definition }}",
        array_properties=array_properties,
        container_overrides={
            "environment": [
                {"name": "QUEUE_URL", "value": QUEUE_URL},
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
        deferrable=True,
        poll_interval=30,
        # A retry of BatchOperator submits a *new* job: never let Airflow do that.
        retries=0,
        execution_timeout=timedelta(hours=6),
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
    params={
        "queue_url": Param(
            "",
            type="string",
            description=f"SQS work queue URL. Empty: the Airflow Variable {VAR_QUEUE_URL}.",
        ),
        "primary_job_queue": Param(PRIMARY_JOB_QUEUE, type="string", minLength=1),
        "secondary_job_queue": Param(SECONDARY_JOB_QUEUE, type="string", minLength=1),
        "job_definition": Param(JOB_DEFINITION, type="string", minLength=1),
        "min_depth": Param(1, type="integer", minimum=1, description="Visible messages needed to run."),
        "secondary_threshold": Param(
            1000, type="integer", minimum=1, description="Messages per secondary worker."
        ),
        "secondary_max_array": Param(
            10, type="integer", minimum=0, maximum=10000, description="Most secondary workers at once."
        ),
        "primary_workers": Param(1, type="integer", minimum=0, description="Primary workers to keep."),
        "primary_max_vcpus": Param(16, type="integer", minimum=0, description="Primary maxvCpus."),
        "secondary_max_vcpus": Param(256, type="integer", minimum=0, description="Secondary maxvCpus."),
        "vcpus_per_job": Param(4, type="integer", minimum=1, description="VCPU of the job definition."),
        "sensor_timeout_seconds": Param(
            240, type="integer", minimum=0, description="How long to wait for a backlog before skipping."
        ),
        "dry_run": Param(False, type="boolean", description="Plan and log only; submit nothing."),
    },
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
    def count_active_jobs(**context: Any) -> dict[str, Any]:
        from faceidx.tasks.indexing import count_active_jobs as count

        return count(context["params"], DEFAULT_AWS_CONN_ID)

    @task(multiple_outputs=True)
    def plan(depth: dict[str, int], active: dict[str, Any], **context: Any) -> dict[str, Any]:
        from faceidx.tasks.indexing import plan_run

        return plan_run(depth, active, context["params"])

    @task.branch
    def choose(decision: dict[str, Any]) -> list[str]:
        from faceidx.tasks.indexing import choose_branches

        return choose_branches(decision)

    nothing_to_submit = EmptyOperator(task_id="nothing_to_submit")

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def report(decision: dict[str, Any], **context: Any) -> dict[str, Any]:
        from faceidx.tasks.indexing import report_submissions

        return report_submissions(decision, context["ti"])

    active = count_active_jobs()
    decision = plan(depth.output, active)
    depth >> active
    primary = _submit("primary", "primary_job_queue", decision["primary_array_properties"])
    secondary = _submit("secondary", "secondary_job_queue", decision["secondary_array_properties"])
    branches = choose(decision)
    branches >> [primary, secondary, nothing_to_submit]
    [primary, secondary, nothing_to_submit] >> report(decision)


face_indexing()
