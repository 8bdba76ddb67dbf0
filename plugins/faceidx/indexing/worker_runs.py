"""What the GPU workers of one ``face_indexing`` run did, and what it cost: pure functions.

The worker prints one JSON object per line; CloudWatch Logs keeps each line as one event. The lines
read here are ``{"event": "batch", ...}`` (one per processed batch) and the final
``{"event": "summary", "images": .., "faces": .., "errors": .., "images_per_s": .., ...}``. A worker that
was killed before its summary is reconstructed from its batch lines and flagged ``partial``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# g4dn.xlarge has 4 vCPUs and one GPU; the job asks for all 4, so one job occupies one instance.


@dataclass(frozen=True)
class WorkerStats:
    """One worker process (a plain job or one array child)."""

    job_id: str
    role: str
    array_index: int | None
    status: str
    images: int
    faces: int
    errors: int
    images_per_s: float | None
    runtime_seconds: float | None
    log_found: bool
    partial: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_worker_log(messages: Iterable[str]) -> dict[str, Any]:
    """Totals from a worker's log lines: the summary line when present, else the batch lines."""
    batches = {"images": 0, "faces": 0, "errors": 0, "seconds": 0.0}
    summary: dict[str, Any] | None = None
    for message in messages:
        line = message.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        if record.get("event") == "summary":
            summary = record
        elif record.get("event") == "batch":
            for key in ("images", "faces", "errors"):
                batches[key] += int(record.get(key, 0) or 0)
            batches["seconds"] += float(record.get("seconds", 0) or 0)
    if summary is not None:
        return {
            "images": int(summary.get("images", 0) or 0),
            "faces": int(summary.get("faces", 0) or 0),
            "errors": int(summary.get("errors", 0) or 0),
            "images_per_s": summary.get("images_per_s"),
            "partial": False,
        }
    rate = batches["images"] / batches["seconds"] if batches["seconds"] else None
    return {
        "images": int(batches["images"]),
        "faces": int(batches["faces"]),
        "errors": int(batches["errors"]),
        "images_per_s": rate,
        "partial": True,
    }


def worker_stats(role: str, job: Mapping[str, Any], messages: Sequence[str]) -> WorkerStats:
    """One worker's stats from its described Batch job and its log lines (``BatchJobsHook.worker_logs``)."""
    parsed = parse_worker_log(messages)
    index = (job.get("arrayProperties") or {}).get("index")
    if index is None and ":" in job["jobId"]:
        index = job["jobId"].rsplit(":", 1)[1]  # child ids are <parent>:<index>
    return WorkerStats(
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


def job_runtime_seconds(job: Mapping[str, Any]) -> float | None:
    """Seconds between ``startedAt`` and ``stoppedAt`` (epoch milliseconds) of a described job."""
    started, stopped = job.get("startedAt"), job.get("stoppedAt")
    if not started or not stopped:
        return None
    return max(0.0, (int(stopped) - int(started)) / 1000.0)


def estimate_cost(workers: Iterable[WorkerStats], spot_price_per_hour: float) -> dict[str, dict[str, Any]]:
    """GPU cost per environment: instance-seconds x spot price; plus cost per 1,000 images."""
    out: dict[str, dict[str, Any]] = {}
    for worker in workers:
        env = out.setdefault(
            worker.role,
            {"workers": 0, "instance_seconds": 0.0, "images": 0, "usd": 0.0, "usd_per_1000": None},
        )
        env["workers"] += 1
        env["instance_seconds"] += worker.runtime_seconds or 0.0
        env["images"] += worker.images
    for env in out.values():
        env["usd"] = env["instance_seconds"] / 3600.0 * spot_price_per_hour
        env["usd_per_1000"] = env["usd"] / env["images"] * 1000.0 if env["images"] else None
    return out


def totals(workers: Iterable[WorkerStats]) -> dict[str, int]:
    result = {"workers": 0, "images": 0, "faces": 0, "errors": 0}
    for worker in workers:
        result["workers"] += 1
        result["images"] += worker.images
        result["faces"] += worker.faces
        result["errors"] += worker.errors
    return result
