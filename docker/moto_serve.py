"""Start moto's server for the docker-compose stack, with AWS Batch in its Docker-free mode.

moto runs a Batch job's container with Docker by default. Inside compose there is no Docker socket, so
each job would fail. ``{"batch": {"use_docker": False}}`` switches Batch to moto's simple backend, which
accepts jobs and marks them SUCCEEDED (the local stand-in for Batch compute runs the real workers).

moto reads that setting from no environment variable: the tests POST it to ``/moto-api/config`` after
each start and reset. Setting it here, before the server starts, makes it hold for every request and
survive container restarts and ``/moto-api/reset`` (the reset clears the backends, not this config).

With ``FACEIDX_LOCAL_BATCH=1`` (the compose ``moto`` service's image, docker/moto-batch.Dockerfile,
sets it) submitted jobs are not marked SUCCEEDED at once: the local Batch stand-in
(``faceidx_dev.local.batch_compute``, the one ``make up`` and ``make demo`` use) runs each job, or each
array child, as a worker process in ``$FACEIDX_WORKER_DIR`` (the worker image's /app), streams its
output to the job's CloudWatch log stream, and ends the job by the worker's exit code.
``FACEIDX_LOCAL_BATCH_PARALLEL`` (default 2) caps how many run at once.

Run by the ``moto`` service of docker-compose.yaml: ``python3 /faceidx/moto_serve.py``. Listens on
``$MOTO_HOST`` (default 0.0.0.0, every interface of the container) and ``$MOTO_PORT`` (default 5000).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from moto.core.config import default_user_config
from moto.server import main

log = logging.getLogger("faceidx.moto_serve")

# What every local worker gets on top of the job's own environment (logged at start).
LOCAL_WORKER_OVERRIDES = {"FACEIDX_MAX_IDLE_SECONDS": "15", "FACEIDX_RECEIVE_WAIT_SECONDS": "5"}


def local_batch(port: str) -> Any:
    """The local Batch stand-in, installed in this process's moto backends (FACEIDX_LOCAL_BATCH=1)."""
    from faceidx_dev.local.batch_compute import LocalBatchCompute

    worker_dir = Path(os.environ.get("FACEIDX_WORKER_DIR", "/app"))
    if not (worker_dir / "run_detection_service.py").is_file():
        raise SystemExit(
            f"FACEIDX_LOCAL_BATCH=1 but {worker_dir} has no run_detection_service.py: run this in the "
            "image built from docker/moto-batch.Dockerfile, or set FACEIDX_WORKER_DIR to worker/"
        )
    overrides = {**LOCAL_WORKER_OVERRIDES, "FACEIDX_REQUIRE_GPU": os.environ.get("FACEIDX_REQUIRE_GPU", "0")}
    parallel = int(os.environ.get("FACEIDX_LOCAL_BATCH_PARALLEL", "2"))
    compute = LocalBatchCompute(f"http://localhost:{port}", worker_dir, overrides, max_parallel=parallel)
    log.info(
        "AWS Batch jobs run as local worker processes in %s (%d at a time; overrides %s)",
        worker_dir,
        parallel,
        overrides,
    )
    return compute.install()


def serve() -> None:
    default_user_config["batch"] = {"use_docker": False}
    host = os.environ.get("MOTO_HOST", "0.0.0.0")
    port = os.environ.get("MOTO_PORT", "5000")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if os.environ.get("FACEIDX_LOCAL_BATCH", "0") == "1":
        local_batch(port)
        log.info("moto server on %s:%s, AWS Batch jobs run real workers", host, port)
    else:
        log.info("moto server on %s:%s, AWS Batch without Docker (jobs succeed at once)", host, port)
    main(["--host", host, "--port", port])


if __name__ == "__main__":
    serve()
