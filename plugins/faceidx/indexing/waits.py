"""How long ``wait_<role>`` waits for a Batch job: as long as the job itself may take. Pure.

A job may sit RUNNABLE until its queue's ``jobStateTimeLimitActions`` cancel it, then run
``retryStrategy.attempts`` attempts of at most ``timeout.attemptDurationSeconds`` each (the job
definition's values, as DescribeJobs returns them for the job). The wait's bound is the sum plus a
margin, so a wait never gives up on a job that can still succeed, and never waits for ever either. An
array job's children run side by side (the planner caps an array at ``secondary_max_array``, within
the secondary environment's capacity), so the same bound holds for each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What the wait allows when the job sets no attempt timeout (Batch then lets an attempt run for ever).
NO_TIMEOUT_FALLBACK_SECONDS = 24 * 3600
MARGIN_SECONDS = 600


@dataclass(frozen=True)
class JobWaitBound:
    """The longest a job may take, from its own description, and the polls that cover it."""

    runnable_seconds: int  # the longest RUNNABLE time limit of its queue (0: none)
    attempts: int
    attempt_seconds: int | None  # None: the job definition sets no timeout
    margin_seconds: int
    seconds: int

    def polls(self, poke_interval: float) -> int:
        return max(1, math.ceil(self.seconds / max(1.0, float(poke_interval))))

    def rows(self) -> list[tuple[str, Any]]:
        return [
            ("RUNNABLE limit of the job queue (s)", self.runnable_seconds or "none"),
            ("attempts (retryStrategy.attempts)", self.attempts),
            (
                "attempt timeout (timeout.attemptDurationSeconds)",
                self.attempt_seconds
                if self.attempt_seconds is not None
                else f"none: assuming {NO_TIMEOUT_FALLBACK_SECONDS} s; set one in the job definition",
            ),
            ("margin (s)", self.margin_seconds),
            ("wait bound (s)", self.seconds),
        ]


def job_wait_bound(
    job: dict[str, Any],
    job_queue: dict[str, Any] | None = None,
    margin_seconds: int = MARGIN_SECONDS,
    definition: dict[str, Any] | None = None,
) -> JobWaitBound:
    """The bound for a described job (DescribeJobs) on its described queue (DescribeJobQueues); the
    job definition (DescribeJobDefinitions) fills what the job's description leaves out."""
    fallback = definition or {}
    retry = job.get("retryStrategy") or fallback.get("retryStrategy") or {}
    attempts = int(retry.get("attempts") or 1)
    raw = (job.get("timeout") or fallback.get("timeout") or {}).get("attemptDurationSeconds")
    attempt_seconds = int(raw) if raw else None
    limits = [
        int(a.get("maxTimeSeconds") or 0)
        for a in (job_queue or {}).get("jobStateTimeLimitActions") or []
        if a.get("state") == "RUNNABLE"
    ]
    runnable = max(limits, default=0)
    per_attempt = attempt_seconds if attempt_seconds is not None else NO_TIMEOUT_FALLBACK_SECONDS
    seconds = runnable + attempts * per_attempt + margin_seconds
    return JobWaitBound(runnable, attempts, attempt_seconds, margin_seconds, seconds)


def shipped_wait_bound(spec_dir: Path | str | None = None) -> JobWaitBound:
    """The bound for a job of the shipped job definition on the slower of the two shipped job queues
    (``infra/batch``): the wait task's ``execution_timeout``, read when the DAG file is parsed (three
    small JSON files, no AWS call). Its literals are per-deployment settings like any other in infra/."""
    import json

    from faceidx.common.specs import default_spec_dir

    batch = Path(spec_dir or default_spec_dir()) / "batch"
    definition = json.loads((batch / "job-definition.json").read_text(encoding="utf-8"))
    queues = [
        json.loads((batch / f"job-queue-{role}.json").read_text(encoding="utf-8"))
        for role in ("primary", "secondary")
    ]
    return max((job_wait_bound({}, q, definition=definition) for q in queues), key=lambda b: b.seconds)
