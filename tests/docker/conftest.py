"""Fixtures for tests/docker: the compose file as Compose sees it, and a moto server run the way the
compose ``moto`` service runs it (docker/moto_serve.py with the service's environment)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import docker_compose as dc


@pytest.fixture(scope="session")
def raw_compose() -> dict[str, Any]:
    """docker-compose.yaml as YAML gives it (nothing interpolated)."""
    return dc.load_raw()


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """docker-compose.yaml as Compose sees it with nothing set in the environment (defaults apply)."""
    return dc.load()


@pytest.fixture(scope="session")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="session")
def moto_env(services: dict[str, Any]) -> dict[str, str]:
    """The default AWS env file of the Airflow services (docker/aws-moto.env), parsed."""
    [(path, _required)] = dc.env_files(services["airflow-scheduler"])
    return dc.parse_env_file(dc.REPO / path)


FAKE_WORKER = """\
import json, os, sys
keys = (
    "AWS_BATCH_JOB_ID", "AWS_BATCH_JOB_ARRAY_INDEX", "AWS_ENDPOINT_URL",
    "FACEIDX_QUEUE_URL", "FACEIDX_REQUIRE_GPU",
)
print(json.dumps({"event": "summary", **{k: os.environ.get(k) for k in keys}}), flush=True)
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto(argv: list[str], env: dict[str, str], port: int, log_file: Path) -> subprocess.Popen[bytes]:
    """Start a moto server process and wait until it answers (fails the test after 60 s)."""
    with log_file.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{argv} exited with {process.returncode}: {log_file.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/config", timeout=2):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    process.wait(timeout=30)
    pytest.fail(f"{argv} did not answer on port {port} within 60 s: {log_file.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


@pytest.fixture
def compose_moto(services: dict[str, Any], tmp_path: Path) -> Iterator[str]:
    """docker/moto_serve.py on a free loopback port, with the compose moto service's environment.

    Yields the endpoint URL (http://127.0.0.1:<port>).
    """
    port = free_port()
    service_env = {k: v or "" for k, v in dc.environment(services["moto"]).items()}
    # What the image holds in /app and /opt/faceidx: a stand-in worker (it prints its environment
    # and exits with $FAKE_EXIT) and the faceidx_dev.local package.
    worker_dir = tmp_path / "app"
    worker_dir.mkdir()
    (worker_dir / "run_detection_service.py").write_text(FAKE_WORKER)
    env = {
        **os.environ,
        **service_env,
        "MOTO_HOST": "127.0.0.1",
        "MOTO_PORT": str(port),
        "FACEIDX_WORKER_DIR": str(worker_dir),
        "PYTHONPATH": os.pathsep.join([str(dc.REPO / "plugins"), str(dc.REPO / "dev")]),
    }
    argv = [sys.executable, str(dc.REPO / "docker" / "moto_serve.py")]
    process = start_moto(argv, env, port, tmp_path / "moto_serve.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)
