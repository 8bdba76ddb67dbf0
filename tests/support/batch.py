"""Minimal AWS Batch set-up on moto for tests of the indexing DAG, and a way to keep jobs active.

moto's Batch without Docker marks every submitted job SUCCEEDED at once. ``hold_jobs`` patches the
in-process moto server so that jobs whose name starts with ``HELD_PREFIX`` stay in a chosen active
state: they stand for workers an earlier run started that are still coming or running.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from faceidx.common.constants import JOB_DEFINITION, PRIMARY_JOB_QUEUE, SECONDARY_JOB_QUEUE
from tests.support.moto_server import MotoEndpoint

HELD_PREFIX = "held-"


def _unmanaged_environment(moto: MotoEndpoint, name: str) -> str:
    """An unmanaged compute environment ``<name>-ce`` and its service role ``<name>-service``."""
    role = moto.client("iam").create_role(
        RoleName=f"{name}-service",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    return str(
        moto.client("batch").create_compute_environment(
            computeEnvironmentName=f"{name}-ce", type="UNMANAGED", state="ENABLED", serviceRole=role
        )["computeEnvironmentArn"]
    )


def create_batch_queues(moto: MotoEndpoint) -> dict[str, str]:
    """An unmanaged compute environment, both job queues and the job definition, by name."""
    ce = _unmanaged_environment(moto, "faceidx-test")
    batch = moto.client("batch")
    for name, priority in ((PRIMARY_JOB_QUEUE, 100), (SECONDARY_JOB_QUEUE, 50)):
        batch.create_job_queue(
            jobQueueName=name,
            state="ENABLED",
            priority=priority,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
        )
    batch.register_job_definition(
        jobDefinitionName=JOB_DEFINITION,
        type="container",
        containerProperties={
            "image": "faceidx-worker:test",
            "command": ["python", "run_detection_service.py"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "4"},
                {"type": "MEMORY", "value": "15000"},
                {"type": "GPU", "value": "1"},
            ],
        },
    )
    return {"primary": PRIMARY_JOB_QUEUE, "secondary": SECONDARY_JOB_QUEUE}


@contextlib.contextmanager
def hold_jobs(state: str = "RUNNING") -> Iterator[None]:
    """Keep jobs named ``held-*`` (and their array children) in ``state`` instead of finishing them."""
    from moto.batch_simple.models import BatchSimpleBackend

    original = BatchSimpleBackend._mark_job_as_finished

    def mark(self: Any, include_start_attempt: bool, job: Any) -> None:
        if not job.job_name.startswith(HELD_PREFIX):
            original(self, include_start_attempt, job)
            return
        self.backend._jobs[job.job_id] = job
        job.status = "PENDING" if job.array_properties.get("size") else state

    BatchSimpleBackend._mark_job_as_finished = mark  # type: ignore[method-assign]
    try:
        yield
    finally:
        BatchSimpleBackend._mark_job_as_finished = original  # type: ignore[method-assign]


def submit_held(moto: MotoEndpoint, queue: str, array_size: int | None = None) -> str:
    """Submit a job that stays active (inside ``hold_jobs``); an array job when ``array_size``."""
    kwargs: dict[str, Any] = {}
    if array_size:
        kwargs["arrayProperties"] = {"size": array_size}
    return moto.client("batch").submit_job(
        jobName=f"{HELD_PREFIX}{queue}", jobQueue=queue, jobDefinition=JOB_DEFINITION, **kwargs
    )["jobId"]


def jobs_submitted_by_dag(moto: MotoEndpoint, queue: str) -> list[dict[str, Any]]:
    """Jobs on ``queue`` not created by the test itself, described (array size included)."""
    batch = moto.client("batch")
    ids: list[str] = []
    for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"):
        for summary in batch.list_jobs(jobQueue=queue, jobStatus=status)["jobSummaryList"]:
            if ":" not in summary["jobId"] and not summary["jobName"].startswith(HELD_PREFIX):
                ids.append(summary["jobId"])
    if not ids:
        return []
    return batch.describe_jobs(jobs=ids)["jobs"]


def write_job_log(job: Any, lines: list[str], logs_backend: Any) -> None:
    """Put ``lines`` in the job's CloudWatch stream, as the awslogs driver does for a container."""
    import time

    group = "/aws/batch/job"
    if group not in logs_backend.groups:
        logs_backend.create_log_group(group, tags={})
    stream = job._stream_name
    logs_backend.ensure_log_stream(group, stream)
    now = int(time.time() * 1000)
    logs_backend.put_log_events(
        group, stream, [{"timestamp": now + i, "message": line} for i, line in enumerate(lines)]
    )


@contextlib.contextmanager
def fake_worker_logs(lines_for: Any) -> Iterator[None]:
    """Every finished plain job or array child logs ``lines_for(job_name, array_index)`` to moto."""
    from moto.batch_simple.models import BatchSimpleBackend

    original = BatchSimpleBackend._mark_job_as_finished

    def mark(self: Any, include_start_attempt: bool, job: Any) -> None:
        original(self, include_start_attempt, job)
        if "size" not in (job.array_properties or {}):
            index = (job.array_properties or {}).get("index")
            write_job_log(job, lines_for(job.job_name, index), self.backend.logs_backend)

    BatchSimpleBackend._mark_job_as_finished = mark  # type: ignore[method-assign]
    try:
        yield
    finally:
        BatchSimpleBackend._mark_job_as_finished = original  # type: ignore[method-assign]


def create_maintenance_queue(moto: MotoEndpoint) -> str:
    """The maintenance job queue and its job definition (CPU, ``python -m faceidx.jobs``), by name."""
    from faceidx.common.constants import MAINTENANCE_JOB_DEFINITION, MAINTENANCE_JOB_QUEUE

    ce = _unmanaged_environment(moto, "faceidx-test-maintenance")
    batch = moto.client("batch")
    batch.create_job_queue(
        jobQueueName=MAINTENANCE_JOB_QUEUE,
        state="ENABLED",
        priority=10,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )
    batch.register_job_definition(
        jobDefinitionName=MAINTENANCE_JOB_DEFINITION,
        type="container",
        containerProperties={
            "image": "faceidx-maintenance:test",
            "command": ["python", "-m", "faceidx.jobs"],
            "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "15000"}],
        },
    )
    return MAINTENANCE_JOB_QUEUE
