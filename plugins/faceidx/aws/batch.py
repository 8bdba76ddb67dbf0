"""AWS Batch for faceidx: one hook that counts the active jobs on a queue, finds the jobs a run
submitted, and reads the lines of each worker's CloudWatch log stream."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from airflow.providers.amazon.aws.hooks.batch_client import BatchClientHook
from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook
from botocore.exceptions import ClientError

from faceidx.common.constants import ACTIVE_JOB_STATES

log = logging.getLogger(__name__)

DEFAULT_LOG_GROUP = "/aws/batch/job"

DESCRIBE_JOBS_MAX_IDS = 100


class BatchJobCountError(RuntimeError):
    """Active jobs could not be counted; submitting anyway could pile up workers."""


@dataclass(frozen=True)
class ActiveJobCount:
    """Workers a queue already has: plain jobs plus unfinished array children, by state."""

    job_queue: str
    workers: int
    by_state: dict[str, int]
    array_parents: int
    # one entry per listed job: job_id, job_name, dag_run (its tag), status, workers (its unfinished
    # children for an array parent), source ("described", or "listing": DescribeJobs lacks it yet)
    jobs: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "jobs": [dict(j) for j in self.jobs]}


@dataclass(frozen=True)
class WorkerLog:
    """One worker job as DescribeJobs gave it (a plain job or one array child), and the lines of its
    CloudWatch log stream (none when it has no stream yet, or the stream is gone)."""

    job: dict[str, Any]
    messages: list[str]


class BatchJobsHook(BatchClientHook):
    """Batch for face_indexing: active jobs per queue (array parents count their unfinished children),
    the jobs of one run, and the log lines of each of their workers."""

    @property
    def _batch(self) -> Any:
        return self.client

    def _list_job_summaries(self, job_queue: str, status: str) -> list[dict[str, Any]]:
        summaries: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"jobQueue": job_queue, "jobStatus": status}
        while True:
            response = self._batch.list_jobs(**kwargs)
            summaries.extend(response.get("jobSummaryList", []))
            token = response.get("nextToken")
            if not token:
                return summaries
            kwargs["nextToken"] = token

    def count_active_jobs(self, job_queue: str) -> ActiveJobCount:
        """Jobs in SUBMITTED..RUNNING on ``job_queue``; an array job counts its unfinished children.

        ListJobs by queue returns array parents (AWS) and, on some emulators, the children too: ids
        of the form ``<parent>:<index>`` are skipped and the parents are described (100 ids a call)
        so their ``statusSummary`` gives the children's states.
        """
        try:
            listed: dict[str, dict[str, Any]] = {}
            for status in ACTIVE_JOB_STATES:
                for summary in self._list_job_summaries(job_queue, status):
                    if ":" not in summary["jobId"]:
                        listed.setdefault(summary["jobId"], {**summary, "status": status})
            described: dict[str, dict[str, Any]] = {}
            ids = list(listed)
            for start in range(0, len(ids), DESCRIBE_JOBS_MAX_IDS):
                for job in self._batch.describe_jobs(jobs=ids[start : start + DESCRIBE_JOBS_MAX_IDS]).get(
                    "jobs", []
                ):
                    described[job["jobId"]] = job
        except ClientError as err:
            error = err.response.get("Error", {})
            raise BatchJobCountError(
                f"Could not count active jobs on Batch queue {job_queue} "
                f"({error.get('Code')}: {error.get('Message')}). Nothing was submitted, so no worker "
                "was piled up. Check that the queue exists (run face_infra_bootstrap) and that the "
                "Airflow AWS connection may call batch:ListJobs and batch:DescribeJobs."
            ) from err
        return count_listed_jobs(job_queue, listed, described)

    def describe_jobs(self, job_ids: list[str]) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = []
        client: Any = self.client
        for start in range(0, len(job_ids), DESCRIBE_JOBS_MAX_IDS):
            jobs.extend(client.describe_jobs(jobs=job_ids[start : start + DESCRIBE_JOBS_MAX_IDS])["jobs"])
        return jobs

    def describe_workers(self, job_id: str) -> list[dict[str, Any]]:
        """Described worker jobs for ``job_id``; the array parent itself has no container or logs."""
        (job,) = self.describe_jobs([job_id]) or [{}]
        if not job:
            raise BatchJobCountError(
                f"Batch job {job_id} not found: it may be older than Batch's 7-day history"
            )
        children = child_job_ids(job)
        return self.describe_jobs(children) if children else [job]

    def find_job(self, job_queue: str, job_name: str) -> dict[str, Any] | None:
        """The job (plain or array parent) named ``job_name`` on ``job_queue``, or None."""
        client: Any = self.client
        found = client.list_jobs(
            jobQueue=job_queue, filters=[{"name": "JOB_NAME", "values": [job_name]}]
        ).get("jobSummaryList", [])
        found = [j for j in found if ":" not in j["jobId"] and j["jobName"] == job_name]
        return dict(found[0]) if found else None

    @cached_property
    def _logs(self) -> AwsLogsHook:
        return AwsLogsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    def _messages(self, group: str, stream: str) -> list[str]:
        try:
            return [
                event["message"] for event in self._logs.get_log_events(group, stream, start_from_head=True)
            ]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return []
            raise

    def worker_logs(self, job_id: str) -> list[WorkerLog]:
        """Each worker of ``job_id`` (the job itself, or an array job's children) with its log lines."""
        logs = []
        for job in self.describe_workers(job_id):
            location = log_location(job)
            messages = self._messages(*location) if location else []
            if not messages:
                log.warning(
                    "No log lines for Batch job %s (%s): it may not have started, or its log stream "
                    "%s is not readable with logs:GetLogEvents",
                    job["jobId"],
                    job.get("status"),
                    location,
                )
            logs.append(WorkerLog(job=job, messages=messages))
        return logs


def count_listed_jobs(
    job_queue: str, listed: dict[str, dict[str, Any]], described: dict[str, dict[str, Any]]
) -> ActiveJobCount:
    """Workers of the jobs ListJobs gave (id -> summary with the listed ``status``), read from their
    descriptions where DescribeJobs returned them. Pure.

    Batch reads are eventually consistent: a job just submitted may be listed before DescribeJobs
    returns it. Such a job is counted from its listing, whose ``arrayProperties.size`` says how many
    children an array parent has (all of them unfinished: none can have ended before it is described),
    never as one plain job, which would let the plan submit the other children again.
    """
    by_state = {state: 0 for state in ACTIVE_JOB_STATES}
    parents = 0
    jobs: list[dict[str, Any]] = []
    for job_id, summary in listed.items():
        listed_status = summary["status"]
        job = described.get(job_id)
        source = "described" if job is not None else "listing"
        job = job if job is not None else summary
        array = job.get("arrayProperties") or {}
        if "size" in array or "statusSummary" in array:
            parents += 1
            children = array_active_children(job, listed_status)
            for state, count in children.items():
                by_state[state] += count
            workers = sum(children.values())
        else:
            status = job.get("status", listed_status)
            workers = 1 if status in by_state else 0
            if workers:
                by_state[status] += 1
        jobs.append(
            {
                "job_id": job_id,
                "job_name": summary.get("jobName") or job.get("jobName"),
                # the Airflow run that submitted it (face_indexing tags its jobs; propagated by Batch)
                "dag_run": (job.get("tags") or {}).get("dag_run"),
                "status": job.get("status", listed_status),
                "workers": workers,
                "source": source,
            }
        )
    return ActiveJobCount(
        job_queue=job_queue,
        workers=sum(by_state.values()),
        by_state=by_state,
        array_parents=parents,
        jobs=tuple(jobs),
    )


def array_active_children(parent: dict[str, Any], listed_status: str = "SUBMITTED") -> dict[str, int]:
    """Unfinished children of an array parent, by state: ``size - SUCCEEDED - FAILED`` in all.

    Right after SubmitJob, and for a while after, the parent's ``statusSummary`` is empty or stale
    (AWS fills it asynchronously), so its per-state counts can sum to less than the children that are
    still to run. The children it does not account for are counted in the parent's own state (or the
    state ListJobs gave it), never dropped: dropping them would let the next run submit them again.
    """
    array = parent.get("arrayProperties") or {}
    summary = {k: int(v) for k, v in (array.get("statusSummary") or {}).items()}
    size = int(array.get("size") or sum(summary.values()))
    counts = {state: summary.get(state, 0) for state in ACTIVE_JOB_STATES}
    unfinished = max(0, size - summary.get("SUCCEEDED", 0) - summary.get("FAILED", 0))
    unaccounted = unfinished - sum(counts.values())
    if unaccounted > 0:
        state = parent.get("status", listed_status)
        counts[state if state in counts else "SUBMITTED"] += unaccounted
    return {state: n for state, n in counts.items()}


def child_job_ids(job: dict[str, Any]) -> list[str]:
    """Ids of an array job's children (``<parent>:<index>``); empty for a plain job."""
    size = (job.get("arrayProperties") or {}).get("size")
    if not size or "index" in (job.get("arrayProperties") or {}):
        return []
    return [f"{job['jobId']}:{index}" for index in range(int(size))]


def log_location(job: dict[str, Any]) -> tuple[str, str] | None:
    """(group, stream) of a described container job, from its awslogs configuration."""
    container = job.get("container") or {}
    stream = container.get("logStreamName")
    if not stream:
        return None
    options = (container.get("logConfiguration") or {}).get("options") or {}
    return options.get("awslogs-group", DEFAULT_LOG_GROUP), stream
