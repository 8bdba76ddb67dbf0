"""``BatchDeficitSubmitOperator``: ``BatchOperator`` that submits only the deficit still open.

``plan`` counts the active jobs and decides what to submit; between that count and SubmitJob another
``face_indexing`` run (a manual trigger, an Asset-triggered run, the next tick) may submit for the same
deficit. Each submit task therefore runs one at a time across all runs of the DAG
(``max_active_tis_per_dag=1``), counts the queue's active jobs again right before SubmitJob, and
submits ``min(planned, target - active now)``: a plain job for 1, an array job for 2 or more, nothing
(the task is skipped, saying why) for 0 or less. ListJobs shows a job as soon as SubmitJob returns, so
the second of two racing runs sees the first run's job.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.operators.batch import BatchOperator
from airflow.sdk.exceptions import AirflowSkipException


class BatchDeficitSubmitOperator(BatchOperator):
    template_fields = (*BatchOperator.template_fields, "target", "planned")

    def __init__(self, *, role: str, target: Any, planned: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.role = role
        self.target = target
        self.planned = planned

    def execute(self, context: Any) -> str | None:
        from faceidx.aws.batch import BatchJobsHook
        from faceidx.indexing.planning import still_open

        active = BatchJobsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)
        now = active.count_active_jobs(self.job_queue).workers
        target, planned = int(self.target), int(self.planned)
        left = still_open(self.role, planned, target, now)  # type: ignore[arg-type]
        if left is None:
            raise AirflowSkipException(
                f"{self.role}: target {target} worker(s) and {now} are active on {self.job_queue} now "
                "(another face_indexing run submitted since this run's plan): nothing left to submit"
            )
        if left.workers != planned:
            self.log.info(
                "%s: %d worker(s) became active since the plan; submitting %s instead of %d worker(s)",
                self.role,
                now,
                left.with_article,
                planned,
            )
        self.array_properties = left.array_properties  # type: ignore[assignment]
        return super().execute(context)  # type: ignore[no-any-return]
