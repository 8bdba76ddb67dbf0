"""AWS Batch reads for faceidx: how many workers are already coming or running on a queue."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from airflow.providers.amazon.aws.hooks.batch_client import BatchClientHook
from botocore.exceptions import ClientError

from faceidx.common.constants import ACTIVE_JOB_STATES

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BatchActiveJobsHook(BatchClientHook):
    """Counts active jobs per queue. Array parents count by their unfinished children."""

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
            listed: dict[str, str] = {}
            for status in ACTIVE_JOB_STATES:
                for summary in self._list_job_summaries(job_queue, status):
                    if ":" not in summary["jobId"]:
                        listed.setdefault(summary["jobId"], status)
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

        by_state = {state: 0 for state in ACTIVE_JOB_STATES}
        parents = 0
        for job_id, listed_status in listed.items():
            job = described.get(job_id, {})
            array = job.get("arrayProperties") or {}
            if "size" in array or "statusSummary" in array:
                parents += 1
                for state, count in array_active_children(job, listed_status).items():
                    by_state[state] += count
                continue
            status = job.get("status", listed_status)
            if status in by_state:
                by_state[status] += 1
        return ActiveJobCount(
            job_queue=job_queue, workers=sum(by_state.values()), by_state=by_state, array_parents=parents
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


class BatchWorkerJobsHook(BatchClientHook):
    """The worker processes behind submitted jobs: a plain job is one, an array job one per child."""

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
