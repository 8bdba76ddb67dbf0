"""``BatchDeficitSubmitOperator``: ``BatchOperator`` that submits only the deficit still open.

``plan`` counts the active jobs and decides what to submit; between that count and SubmitJob another
``face_indexing`` run (a manual trigger, an Asset-triggered run, the next tick) may submit for the same
deficit. Each submit task therefore runs one at a time across all runs of the DAG
(``max_active_tis_per_dag=1``), counts the queue's active jobs again right before SubmitJob, and
submits ``min(planned, target - active now)``: a plain job for 1, an array job for 2 or more.

For 0 or less the deficit is already filled, by another run's workers: nothing is submitted and the
task **succeeds** (it did what the plan needed), returning no job id. Its log shows the recount as a
table (the jobs now active on the queue, the runs that submitted them), and the same facts go to the
``recount`` XCom, which ``report`` shows. ListJobs shows a job as soon as SubmitJob returns, so the
second of two racing runs sees the first run's job.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.operators.batch import BatchOperator

from faceidx.common.tables import format_table

RECOUNT_XCOM_KEY = "recount"


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

        count = BatchJobsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name).count_active_jobs(
            self.job_queue
        )
        now = count.workers
        target, planned = int(self.target), int(self.planned)
        left = still_open(self.role, planned, target, now)  # type: ignore[arg-type]
        recount = {
            "role": self.role,
            "job_queue": self.job_queue,
            "planned": planned,
            "target": target,
            "active_now": now,
            "submitting": left.workers if left else 0,
            "active_jobs": [dict(j) for j in count.jobs],
        }
        self.log.info("%s", recount_table(recount))
        ti = context.get("ti")
        if ti is not None:
            ti.xcom_push(key=RECOUNT_XCOM_KEY, value=recount)
        if left is None:
            self.log.info(
                "%s: nothing left to submit: %s. This is a success: those workers index the same "
                "queue, so no image waits. report shows which run submitted them.",
                self.role,
                filled_by(recount),
            )
            return None
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


def run_of(job_name: str | None) -> str:
    """The Airflow run a face_indexing job name came from (``face-indexing-<role>-<run id>``), or the
    name itself when it is not one of ours. Pure."""
    from faceidx.common.constants import JOB_NAME_PREFIX

    name = job_name or "?"
    for role in ("primary", "secondary"):
        prefix = f"{JOB_NAME_PREFIX}-{role}-"
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def filled_by(recount: dict[str, Any]) -> str:
    """One sentence: who filled the deficit (the active jobs and the runs that submitted them)."""
    jobs = [j for j in recount.get("active_jobs", []) if j.get("workers")]
    if not jobs:
        return f"{recount['active_now']} worker(s) active on {recount['job_queue']}"
    return "; ".join(
        f"run {j.get('dag_run') or run_of(j.get('job_name'))} submitted job {j['job_id']} "
        f"({j['workers']} worker(s), {j.get('status')})"
        for j in jobs
    )


def recount_table(recount: dict[str, Any]) -> str:
    rows: list[tuple[str, Any]] = [
        ("job queue", recount["job_queue"]),
        ("workers planned", recount["planned"]),
        ("target workers", recount["target"]),
        ("active now", recount["active_now"]),
        ("submitting", recount["submitting"] or "nothing: the target is already met"),
    ]
    rows += [
        (
            "active job",
            f"{j['job_id']} {j.get('job_name')} {j.get('status')} ({j['workers']} worker(s)"
            + (", not yet described by Batch: counted from ListJobs" if j.get("source") == "listing" else "")
            + ")",
        )
        for j in recount.get("active_jobs", [])
    ]
    return format_table(("item", "value"), rows, title=f"{recount['role']}: recount before SubmitJob")
