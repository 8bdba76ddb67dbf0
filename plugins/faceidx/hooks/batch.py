"""AWS Batch reads for faceidx: how many workers are already coming or running on a queue."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from airflow.providers.amazon.aws.hooks.batch_client import BatchClientHook
from botocore.exceptions import ClientError

from faceidx.constants import ACTIVE_JOB_STATES

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


def count_array_children(status_summary: dict[str, int]) -> int:
    """Children of an array job that have not finished, from its ``statusSummary``."""
    return sum(int(status_summary.get(state, 0)) for state in ACTIVE_JOB_STATES)


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
        try:
            seen: dict[str, tuple[str, dict[str, Any]]] = {}
            for status in ACTIVE_JOB_STATES:
                for summary in self._list_job_summaries(job_queue, status):
                    seen.setdefault(summary["jobId"], (status, summary))
            parents = [
                job_id
                for job_id, (_, summary) in seen.items()
                if "size" in (summary.get("arrayProperties") or {})
            ]
            children_by_parent: dict[str, dict[str, int]] = {}
            for start in range(0, len(parents), DESCRIBE_JOBS_MAX_IDS):
                batch = parents[start : start + DESCRIBE_JOBS_MAX_IDS]
                for job in self._batch.describe_jobs(jobs=batch).get("jobs", []):
                    summary = (job.get("arrayProperties") or {}).get("statusSummary") or {}
                    children_by_parent[job["jobId"]] = summary
        except ClientError as err:
            error = err.response.get("Error", {})
            raise BatchJobCountError(
                f"Could not count active jobs on Batch queue {job_queue} "
                f"({error.get('Code')}: {error.get('Message')}). Nothing was submitted, so no worker "
                "was piled up. Check that the queue exists (run face_infra_bootstrap) and that the "
                "Airflow AWS connection may call batch:ListJobs and batch:DescribeJobs."
            ) from err

        by_state = {state: 0 for state in ACTIVE_JOB_STATES}
        for job_id, (status, _) in seen.items():
            if job_id in children_by_parent:
                for state in ACTIVE_JOB_STATES:
                    by_state[state] += int(children_by_parent[job_id].get(state, 0))
            else:
                by_state[status] += 1
        return ActiveJobCount(
            job_queue=job_queue,
            workers=sum(by_state.values()),
            by_state=by_state,
            array_parents=len(parents),
        )
