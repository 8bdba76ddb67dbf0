"""``python -m faceidx.jobs STEP --output-uri URI [--vectors-uri URI] [--params JSON]``: one index step,
as a Batch job of the maintenance image (or a local process of the Batch stand-in).

It checks first that the container has the memory the step's measured needs call for (the task passes
its estimate as ``expected_mib``); with less it refuses at once (exit 3), saying how much it needs and
how much it has. Then it runs the step (which holds the writer lease while it writes and logs its
tables to the job's CloudWatch stream) and leaves its outcome, the step's summary, seconds and peak
RSS, at ``<output>/jobs/<job id>.json``, where the Airflow task reads it back into its own log.

Exit codes: 0 done; 1 the step failed (the outcome says why; Batch does not retry it); 2 bad
arguments; 3 not enough memory for the step (raise the job's memory or split the work); 4 the step
refused (a target not in the index: nothing changed, a retry cannot do better).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from faceidx.common.tables import format_pairs
from faceidx.jobs.steps import STEPS, StepRefused, step_named
from faceidx.store.location import IndexLocation

log = logging.getLogger("faceidx.jobs")

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TOO_LITTLE_MEMORY = 3
EXIT_REFUSED = 4
CGROUP_MEMORY_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def container_memory_mib(files: tuple[str, ...] = CGROUP_MEMORY_FILES) -> int | None:
    """The container's memory limit (cgroup v2, else v1), or None when unlimited or unknown."""
    for name in files:
        try:
            raw = Path(name).read_text().strip()
        except OSError:
            continue
        if raw == "max" or not raw.isdigit() or int(raw) >= 2**60:
            return None
        return int(raw) // 2**20
    return None


def peak_rss_mib() -> float:
    """This process's peak RSS: ``VmHWM`` (the high-water mark of its own memory since exec), else
    ``ru_maxrss``, which Linux carries over from the parent across exec (a job started by a large
    process would report the parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m faceidx.jobs", description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=sorted(STEPS), help="the index step to run")
    p.add_argument("--output-uri", default="", help="the index (default: FACEIDX_OUTPUT_URI)")
    p.add_argument("--vectors-uri", default="", help="the vector index (default: <output>/vectors)")
    p.add_argument("--params", default="{}", help="the step's parameters, a JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    try:
        args = parser().parse_args(argv)
        params: dict[str, Any] = json.loads(args.params)
        location = IndexLocation.from_env(args.output_uri or None, args.vectors_uri or None)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else 0
    except (ValueError, TypeError) as error:
        print(f"faceidx.jobs: {error}", file=sys.stderr)
        return EXIT_USAGE
    job_id = os.environ.get("AWS_BATCH_JOB_ID") or f"local-{uuid.uuid4().hex[:12]}"
    return run_step(args.step, location, params, job_id)


def run_step(name: str, location: IndexLocation, params: dict[str, Any], job_id: str) -> int:
    step = step_named(name)
    expected = params.pop("expected_mib", None)
    outcome: dict[str, Any] = {
        "job_id": job_id,
        "step": name,
        "output_uri": location.output_uri,
        "started_at": time.time(),
        "expected_mib": expected,
        "container_mib": container_memory_mib(),
    }
    limit = outcome["container_mib"]
    if expected and limit and int(expected) > limit:
        outcome.update(
            status="refused",
            error=f"{name} needs about {int(expected):,} MiB by its measured needs and this container has "
            f"{limit:,} MiB: nothing was changed. Submit it with more memory (the task does so by itself "
            "from its estimate), or raise the maintenance job definition's MEMORY.",
        )
        return _finish(location, outcome, EXIT_TOO_LITTLE_MEMORY)
    log.info("%s", format_pairs(_rows(outcome), title=f"faceidx job: {name} ({step.title})"))
    started = time.monotonic()
    try:
        summary = step.run(location, params)
    except StepRefused as refused:
        outcome.update(status="refused", error=str(refused), seconds=round(time.monotonic() - started, 3))
        return _finish(location, outcome, EXIT_REFUSED)
    except Exception as error:  # noqa: BLE001 - the outcome carries it to the task; the traceback stays here
        traceback.print_exc(file=sys.stdout)
        outcome.update(status="failed", error=f"{type(error).__name__}: {error}")
        outcome["seconds"] = round(time.monotonic() - started, 3)
        return _finish(location, outcome, EXIT_FAILED)
    outcome.update(status="succeeded", summary=summary, seconds=round(time.monotonic() - started, 3))
    return _finish(location, outcome, 0)


def _finish(location: IndexLocation, outcome: dict[str, Any], code: int) -> int:
    outcome["finished_at"] = time.time()
    outcome["peak_rss_mib"] = round(peak_rss_mib(), 1)
    outcome["exit_code"] = code
    location.write_json(location.job_result_uri(outcome["job_id"]), outcome)
    print(format_pairs(_rows(outcome), title=f"faceidx job: {outcome['step']} {outcome.get('status', '')}"))
    if outcome.get("error"):
        print(f"faceidx job: {outcome['error']}")
    return code


def _rows(outcome: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [("job", outcome["job_id"]), ("index", outcome["output_uri"])]
    if outcome.get("expected_mib"):
        rows.append(("estimated memory", f"{int(outcome['expected_mib']):,} MiB"))
    rows.append(
        (
            "container memory",
            f"{outcome['container_mib']:,} MiB" if outcome.get("container_mib") else "no limit",
        )
    )
    for key, label in (("status", "status"), ("seconds", "seconds"), ("peak_rss_mib", "peak RSS (MiB)")):
        if key in outcome:
            rows.append((label, outcome[key]))
    return rows
