"""``LocalBatchCompute``: a stand-in for AWS Batch *compute* when Batch is moto.

moto accepts SubmitJob but runs no container. This stand-in hooks into the in-process moto server so
that each submitted job, or each child of an array job, becomes RUNNABLE, then runs as one local
process of the job's command (``python run_detection_service.py`` in ``worker/`` for a GPU worker,
``python -m faceidx.jobs STEP ...`` for an index step on the maintenance queue) with the environment the job
definition and the container overrides give, plus ``AWS_BATCH_JOB_ID`` and
``AWS_BATCH_JOB_ARRAY_INDEX`` as Batch sets them. Its stdout goes to the job's CloudWatch log stream
in moto (as the awslogs driver would) and the job ends SUCCEEDED or FAILED by the exit code. The
array parent ends when its children do.

What differs from AWS, on purpose and logged: the endpoint and dummy credentials of the moto server
are added, ``FACE_MODEL_DIR`` points at a local model pack, and ``REQUIRE_GPU`` is turned off when
there is no GPU. Everything else comes from the job as submitted.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from faceidx_dev.local.moto_server import moto_environment

log = logging.getLogger(__name__)

LOG_GROUP = "/aws/batch/job"


@dataclass
class LocalJobRun:
    """One worker process the stand-in ran."""

    job_id: str
    job_name: str
    job_queue: str
    array_index: int | None
    exit_code: int | None = None
    started: float = 0.0
    stopped: float = 0.0
    lines: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        role = next((r for r in ("secondary", "maintenance") if r in self.job_queue), "primary")
        return f"{role}" + ("" if self.array_index is None else f"[{self.array_index}]")


class LocalBatchCompute:
    """Runs moto's Batch jobs as local worker processes, at most ``max_parallel`` at a time."""

    def __init__(
        self,
        endpoint_url: str,
        worker_dir: Path,
        env_overrides: dict[str, str],
        max_parallel: int = 4,
        on_line: Callable[[LocalJobRun, str], None] | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.worker_dir = worker_dir
        self.env_overrides = env_overrides
        self.max_parallel = max_parallel
        self.on_line = on_line
        self.runs: list[LocalJobRun] = []
        self._pending: queue.Queue[Any] = queue.Queue()
        self._parents: dict[str, Any] = {}
        self._active = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._original: Any = None
        self._stop = threading.Event()
        self._processes: set[subprocess.Popen[str]] = set()

    # moto hook -----------------------------------------------------------------------------------
    def install(self) -> LocalBatchCompute:
        from moto.batch_simple.models import BatchSimpleBackend

        compute = self
        self._original = BatchSimpleBackend._mark_job_as_finished

        def accept(backend: Any, include_start_attempt: bool, job: Any) -> None:
            backend.backend._jobs[job.job_id] = job
            job.log_stream_name = job._stream_name
            if "size" in (job.array_properties or {}):
                job.status = "PENDING"
                with compute._lock:
                    compute._parents[job.job_id] = job
                return
            job.status = "RUNNABLE"
            with compute._lock:
                compute._active += 1
            compute._pending.put((job, backend.backend.logs_backend))

        BatchSimpleBackend._mark_job_as_finished = accept  # type: ignore[method-assign,assignment]
        for index in range(self.max_parallel):
            thread = threading.Thread(target=self._runner, name=f"local-batch-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info(
            "local Batch compute: runs each submitted job as a worker process (%d at a time)",
            self.max_parallel,
        )
        return self

    def uninstall(self) -> None:
        from moto.batch_simple.models import BatchSimpleBackend

        if self._original is not None:
            BatchSimpleBackend._mark_job_as_finished = self._original  # type: ignore[method-assign]
            self._original = None
        self._stop.set()

    def terminate(self, grace: float = 10.0) -> None:
        """Stop the worker processes still running: SIGTERM (as Batch does), SIGKILL after ``grace``."""
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + grace
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def __enter__(self) -> LocalBatchCompute:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    @property
    def busy(self) -> int:
        """Jobs accepted and not finished yet."""
        with self._lock:
            return self._active

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.busy == 0:
                return True
            time.sleep(0.5)
        return False

    # running jobs --------------------------------------------------------------------------------
    def _environment(self, job: Any) -> dict[str, str]:
        env = {e["name"]: e["value"] for e in job._get_container_property("environment", [])}
        index = (job.array_properties or {}).get("index")
        env["AWS_BATCH_JOB_ID"] = job.job_id
        if index is not None:
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
        env["AWS_BATCH_JQ_NAME"] = job.job_queue.name
        env["AWS_BATCH_CE_NAME"] = "local-batch-compute"
        env.update(self.env_overrides)
        env.update(moto_environment(self.endpoint_url))
        env["PYTHONUNBUFFERED"] = "1"
        return {**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}, **env}

    def _runner(self) -> None:
        while not self._stop.is_set():
            try:
                job, logs_backend = self._pending.get(timeout=0.5)
            except queue.Empty:
                self._finish_parents()  # a parent registered after its last child finished
                continue
            try:
                self._run(job, logs_backend)
            finally:
                with self._lock:
                    self._active -= 1
                self._finish_parents()

    def _run(self, job: Any, logs_backend: Any) -> None:
        index = (job.array_properties or {}).get("index")
        run = LocalJobRun(job.job_id, job.job_name, job.job_queue.name, index)
        self.runs.append(run)
        if LOG_GROUP not in logs_backend.groups:
            logs_backend.create_log_group(LOG_GROUP, tags={})
        logs_backend.ensure_log_stream(LOG_GROUP, job._stream_name)
        job.status = "STARTING"
        job.job_started_at = datetime.now()
        job._start_attempt()
        job.status = "RUNNING"
        run.started = time.time()
        command = job._get_container_property("command", []) or ["python", "run_detection_service.py"]
        if command and command[0] in ("python", "python3"):
            command = [sys.executable, *command[1:]]
        process = subprocess.Popen(
            command,
            cwd=self.worker_dir,
            env=self._environment(job),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        with self._lock:
            self._processes.add(process)
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip("\n")
            run.lines.append(line)
            logs_backend.put_log_events(
                LOG_GROUP, job._stream_name, [{"timestamp": int(time.time() * 1000), "message": line}]
            )
            if self.on_line:
                self.on_line(run, line)
        run.exit_code = process.wait()
        with self._lock:
            self._processes.discard(process)
        run.stopped = time.time()
        job.exit_code = run.exit_code
        if run.exit_code != 0:
            job.job_stopped_reason = f"Essential container in task exited (exit code {run.exit_code})"
        job._mark_stopped(success=run.exit_code == 0)

    def _finish_parents(self) -> None:
        with self._lock:
            parents = list(self._parents.items())
        for job_id, parent in parents:
            children = parent._child_jobs or []
            if children and all(child.job_stopped for child in children):
                parent._mark_stopped(success=all(child.status == "SUCCEEDED" for child in children))
                with self._lock:
                    self._parents.pop(job_id, None)
