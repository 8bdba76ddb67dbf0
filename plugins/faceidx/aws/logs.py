"""Reads each worker's CloudWatch log stream and turns it into per-worker stats (``WorkerStats``)."""

from __future__ import annotations

import logging
from typing import Any

from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook
from botocore.exceptions import ClientError

from faceidx.aws.batch import BatchWorkerJobsHook
from faceidx.indexing.worker_runs import WorkerStats, job_runtime_seconds, parse_worker_log

log = logging.getLogger(__name__)

DEFAULT_LOG_GROUP = "/aws/batch/job"


def log_location(job: dict[str, Any]) -> tuple[str, str] | None:
    """(group, stream) of a described container job, from its awslogs configuration."""
    container = job.get("container") or {}
    stream = container.get("logStreamName")
    if not stream:
        return None
    options = (container.get("logConfiguration") or {}).get("options") or {}
    return options.get("awslogs-group", DEFAULT_LOG_GROUP), stream


class BatchWorkerLogsReader:
    """Collects the stats of every worker behind the jobs a run submitted."""

    def __init__(self, aws_conn_id: str | None, region_name: str | None = None) -> None:
        self.batch = BatchWorkerJobsHook(aws_conn_id=aws_conn_id, region_name=region_name)
        self.logs = AwsLogsHook(aws_conn_id=aws_conn_id, region_name=region_name)

    def _messages(self, group: str, stream: str) -> list[str]:
        try:
            return [
                event["message"] for event in self.logs.get_log_events(group, stream, start_from_head=True)
            ]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return []
            raise

    def worker_stats(self, role: str, job_id: str) -> list[WorkerStats]:
        stats = []
        for job in self.batch.describe_workers(job_id):
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
            parsed = parse_worker_log(messages)
            index = (job.get("arrayProperties") or {}).get("index")
            if index is None and ":" in job["jobId"]:
                index = job["jobId"].rsplit(":", 1)[1]  # child ids are <parent>:<index>
            stats.append(
                WorkerStats(
                    job_id=job["jobId"],
                    role=role,
                    array_index=int(index) if index is not None else None,
                    status=str(job.get("status")),
                    images=parsed["images"],
                    faces=parsed["faces"],
                    errors=parsed["errors"],
                    images_per_s=parsed["images_per_s"],
                    runtime_seconds=job_runtime_seconds(job),
                    log_found=bool(messages),
                    partial=bool(messages) and parsed["partial"],
                )
            )
        return stats
