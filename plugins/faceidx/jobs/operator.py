"""``IndexStepOperator``: an index step (``faceidx.jobs.steps``) placed by its measured needs, and run
either in this task or as an AWS Batch job on the maintenance queue, the way ``face_indexing`` runs
its workers: ``BatchOperator``'s SubmitJob, a deferrable wait in the triggerer (no worker slot is held
while the job works), the job's CloudWatch lines and its outcome read back into the task log.

The task log shows, as tables: the placement (faces in scope from metadata, estimated memory, where it
runs and why), the job (id, queue, what it asked for) and, at the end, the job's outcome (status,
seconds, peak RSS against the memory it had) followed by the step's own summary. The task returns the
step's summary either way, so the tasks downstream (``report``) cannot tell where it ran.

A retried task finds the job its earlier try submitted (same job name, still active) and waits for it
instead of submitting a second one. A failed job fails the task with the job's own error and what to
do. Killing the task (mark failed in the UI) terminates the job, as ``BatchOperator`` does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.providers.amazon.aws.operators.batch import BatchOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from faceidx.common.constants import (
    ACTIVE_JOB_STATES,
    DEFAULT_AWS_CONN_ID,
    MAINTENANCE_JOB_DEFINITION,
    MAINTENANCE_JOB_NAME_PREFIX,
    PROJECT_TAG,
    VAR_MAINTENANCE_JOB_QUEUE,
)
from faceidx.common.tables import format_pairs

POLL_ENV = "FACEIDX_BATCH_POLL_SECONDS"  # read when the DAG is parsed: 30 s on AWS, seconds locally
MAINTENANCE_QUEUE = "{{ var.value.get('" + VAR_MAINTENANCE_JOB_QUEUE + "', '') }}"
SUMMARY_ROWS = 30


class IndexJobFailed(AirflowException):
    """The step's Batch job did not succeed; the message carries its own error and what to do."""


def job_name_for(step: str, dag_id: str, run_id: str) -> str:
    """``face-index-<step>-<dag>-<run>``, in the characters and length Batch accepts. Pure."""
    raw = f"{MAINTENANCE_JOB_NAME_PREFIX}-{step}-{dag_id}-{run_id}"
    return re.sub(r"[^A-Za-z0-9_-]", "-", raw)[:128]


def summary_rows(summary: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The step's summary as rows: scalars as they are, lists and mappings by their size. Pure."""
    rows: list[tuple[str, Any]] = []
    for key, value in summary.items():
        if isinstance(value, list | tuple | set):
            rows.append((key, f"{len(value)} item(s)"))
        elif isinstance(value, Mapping):
            rows.append((key, ", ".join(f"{k}={v}" for k, v in list(value.items())[:6]) or "-"))
        else:
            rows.append((key, value))
    return rows[:SUMMARY_ROWS]


class IndexStepOperator(BatchOperator):
    """Run index step ``step`` where its measured needs place it (see :mod:`faceidx.jobs.needs`).

    :param step: a name of :data:`faceidx.jobs.steps.STEPS`.
    :param output_uri: the index (templated). :param vectors_uri: the vector index (templated).
    :param step_params: the step's parameters (templated mapping).
    :param context_params: what to add from the run: ``days`` (the data interval's ``indexed_date``
        partitions), ``dag_params`` (the run's Params, under ``params``), ``data_interval_start``,
        ``actor`` (who triggered the run), ``approver`` (who approved it in the ``approve`` task).
    :param compute: ``auto``, ``batch`` or ``airflow`` (templated; a DAG Param).
    """

    template_fields: Sequence[str] = (
        *BatchOperator.template_fields,
        "output_uri",
        "vectors_uri",
        "step_params",
        "compute",
    )

    def __init__(
        self,
        *,
        step: str,
        output_uri: str,
        vectors_uri: str = "",
        step_params: Mapping[str, Any] | None = None,
        context_params: Sequence[str] = (),
        compute: str = "{{ params.compute }}",
        job_queue: str = MAINTENANCE_QUEUE,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("aws_conn_id", DEFAULT_AWS_CONN_ID)
        kwargs.setdefault("poll_interval", int(os.environ.get(POLL_ENV, "30")))
        super().__init__(
            job_name=f"{MAINTENANCE_JOB_NAME_PREFIX}-{step}",
            job_definition=MAINTENANCE_JOB_DEFINITION,
            job_queue=job_queue,
            deferrable=True,
            wait_for_completion=True,
            awslogs_enabled=True,
            **kwargs,
        )
        self.step = step
        self.output_uri = output_uri
        self.vectors_uri = vectors_uri
        self.step_params = dict(step_params or {})
        self.context_params = tuple(context_params)
        self.compute = compute

    # -- where -------------------------------------------------------------------------------------
    def _location(self) -> Any:
        from faceidx.erasure.tasks import location_for

        return location_for(
            self.output_uri, self.vectors_uri, aws_conn_id=self.aws_conn_id or DEFAULT_AWS_CONN_ID
        )

    def _params(self, context: Mapping[str, Any]) -> dict[str, Any]:
        params = {key: value for key, value in self.step_params.items()}
        if "days" in self.context_params:
            from faceidx.maintenance.tasks import interval_days

            params["days"] = interval_days(
                context.get("data_interval_start"), context.get("data_interval_end")
            )
        if "dag_params" in self.context_params:
            params["params"] = {
                key: _plain(value) for key, value in dict(context.get("params") or {}).items()
            }
        if "actor" in self.context_params:  # who asked (an erasure's receipt names them)
            from faceidx.erasure.tasks import run_actor

            params["actor"] = run_actor(context)
        if "approver" in self.context_params:  # who approved in the UI (the approve task's answer)
            from faceidx.erasure.tasks import approval_of

            params["approver"] = approval_of(context["ti"].xcom_pull(task_ids="approve"))
        if "data_interval_start" in self.context_params:
            # an Asset-triggered run has no cadence: its interval is the events' times, not a schedule's
            run_type = str(getattr(context.get("dag_run"), "run_type", ""))
            start = None if "asset" in run_type else context.get("data_interval_start")
            params["data_interval_start"] = start.astimezone(UTC).isoformat() if start else None
        return params

    def execute(self, context: Any) -> Any:
        from faceidx.jobs.needs import PlacementError, measure, model_key, place
        from faceidx.jobs.steps import StepRefused, step_named

        step = step_named(self.step)
        location = self._location()
        params = self._params(context)
        model = model_key(self.step, params)
        size = measure(self.step, location, params)
        compute = str(self.compute or "auto").strip()
        try:
            placement = place(self.step, model, size, compute=compute, job_queue=str(self.job_queue or ""))
        except PlacementError as refused:  # the same answer on every try: no retry
            raise AirflowFailException(str(refused)) from refused
        self.log.info("%s", format_pairs(placement.rows(), title=f"{self.step}: where it runs"))
        if not placement.on_batch:
            try:
                return step.run(location, params)
            except StepRefused as refused:  # the same answer on every try: no retry
                raise AirflowFailException(str(refused)) from refused

        dag_id, run_id = context["dag"].dag_id, context["run_id"]
        self.job_name = job_name_for(self.step, dag_id, run_id)
        command = ["python", "-m", "faceidx.jobs", self.step, "--output-uri", location.output_uri]
        if self.vectors_uri:
            command += ["--vectors-uri", location.vectors_uri]
        import json

        command += ["--params", json.dumps({**params, "expected_mib": placement.estimate_mib}, default=str)]
        self.container_overrides = {
            "command": command,
            "resourceRequirements": [
                {"type": "VCPU", "value": str(placement.vcpus)},
                {"type": "MEMORY", "value": str(placement.memory_mib)},
            ],
        }
        self.tags = {
            "project": PROJECT_TAG,
            "environment": "maintenance",
            "step": self.step,
            "dag_id": dag_id,
            "dag_run": run_id,
        }
        self.log.info(
            "%s",
            format_pairs(
                [
                    ("job name", self.job_name),
                    ("job queue", self.job_queue),
                    ("job definition", self.job_definition),
                    ("command", " ".join(command[:6]) + " ..."),
                    ("asks for", f"{placement.vcpus} vCPU, {placement.memory_mib:,} MiB"),
                ],
                title=f"{self.step}: AWS Batch job",
            ),
        )
        job_id = super().execute(context)  # submits, then defers to the triggerer while the job runs
        return self._outcome(location, str(job_id), success=True)

    def submit_job(self, context: Any) -> None:
        """SubmitJob, unless an earlier try of this task left its job active: then wait for that one."""
        earlier = self._active_job_named(self.job_name)
        if earlier:
            self.job_id = earlier
            self.log.info(
                "%s: job %s (%s) from an earlier try is still active: waiting for it, submitting nothing",
                self.step,
                earlier,
                self.job_name,
            )
            return
        super().submit_job(context)

    def _active_job_named(self, name: str) -> str | None:
        client: Any = self.hook.client
        for status in ACTIVE_JOB_STATES:
            token: str | None = None
            while True:
                kwargs: dict[str, Any] = {"jobQueue": self.job_queue, "jobStatus": status}
                if token:
                    kwargs["nextToken"] = token
                response = client.list_jobs(**kwargs)
                for summary in response.get("jobSummaryList", []):
                    if summary.get("jobName") == name:
                        return str(summary["jobId"])
                token = response.get("nextToken")
                if not token:
                    break
        return None

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        location = self._location()
        job_id = str((event or {}).get("job_id") or self.job_id)
        try:
            super().execute_complete(context, event)
        except AirflowException:
            return self._outcome(location, job_id, success=False)
        return self._outcome(location, job_id, success=True)

    # -- outcome -----------------------------------------------------------------------------------
    def _outcome(self, location: Any, job_id: str, *, success: bool) -> Any:
        outcome = location.read_json(location.job_result_uri(job_id)) or {}
        job = self._describe(job_id)
        rows: list[tuple[str, Any]] = [
            ("job", f"{job_id} ({job.get('jobName', self.job_name)})"),
            (
                "Batch status",
                f"{job.get('status', '?')}" + (f": {job['statusReason']}" if job.get("statusReason") else ""),
            ),
            ("attempts", len(job.get("attempts", []))),
            ("step status", outcome.get("status", "no outcome written")),
            ("seconds", outcome.get("seconds", "-")),
            ("peak RSS", f"{outcome['peak_rss_mib']:,.0f} MiB" if outcome.get("peak_rss_mib") else "-"),
            (
                "container memory",
                f"{outcome['container_mib']:,} MiB" if outcome.get("container_mib") else "no limit",
            ),
        ]
        self.log.info("%s", format_pairs(rows, title=f"{self.step}: the Batch job's outcome"))
        if success and outcome.get("status") == "succeeded":
            summary = outcome.get("summary") or {}
            self.log.info("%s", format_pairs(summary_rows(summary), title=f"{self.step}: what the job did"))
            return summary
        if outcome.get("status") == "refused":  # nothing changed; a retry cannot do better
            raise AirflowFailException(f"{self.step}: {outcome.get('error')}")
        error = outcome.get("error") or job.get("statusReason") or "the job left no outcome"
        raise IndexJobFailed(
            f"{self.step}: Batch job {job_id} did not succeed: {error}. The job's own log (above, and in "
            f"CloudWatch, log group /aws/batch/job) has the details. Nothing is half-written: every step "
            "commits atomically and holds the index lease. Fix the cause and clear the task to run it again."
        )

    def _describe(self, job_id: str) -> dict[str, Any]:
        try:
            jobs = self.hook.client.describe_jobs(jobs=[job_id]).get("jobs", [])
        except Exception:  # the outcome object is the source of truth; the description only adds colour
            self.log.warning("could not describe job %s", job_id, exc_info=True)
            return {}
        return dict(jobs[0]) if jobs else {}


def _plain(value: Any) -> Any:
    """A Param's value as JSON can carry it (datetimes as ISO strings)."""
    if isinstance(value, datetime):
        return value.isoformat()
    return value
