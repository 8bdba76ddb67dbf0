"""The local Airflow stack restarts a crashed scheduler, as compose's ``restart: always`` does, with
the secrets and ports every other component has."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from faceidx_dev.local.airflow_stack import COMPONENTS, MAX_RESTARTS, AirflowStack, AirflowStackError


def _exited() -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    process.wait()
    return process


def _running() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])


def test_a_dead_scheduler_is_restarted_until_the_budget_is_spent(tmp_path, monkeypatch):
    stack = AirflowStack(home=tmp_path, aws_connection="{}")
    api = _running()
    stack.processes = {"api-server": api, "scheduler": _exited()}
    launched: list[str] = []

    def launch(component: str, env: dict[str, str]) -> None:
        launched.append(component)
        stack.processes[component] = _exited()  # it crashes again at once

    monkeypatch.setattr(stack, "_launch", launch)
    try:
        for _ in range(MAX_RESTARTS):
            stack.check_alive()
        assert launched == ["scheduler"] * MAX_RESTARTS
        with pytest.raises(AirflowStackError, match="scheduler"):
            stack.check_alive()
    finally:
        api.kill()
        api.wait()


def test_a_dead_api_server_is_an_error(tmp_path):
    stack = AirflowStack(home=tmp_path, aws_connection="{}")
    stack.processes = {"api-server": _exited()}
    with pytest.raises(AirflowStackError, match="api-server"):
        stack.check_alive()


# A stand-in for ``python -m airflow``: records the environment it was started with, then runs on.
RECORDING_COMPONENT = """
import json, os, sys, time
from pathlib import Path
out = Path(os.environ["AIRFLOW_HOME"]) / "received" / f"{sys.argv[1]}-{os.getpid()}.json"
out.parent.mkdir(exist_ok=True)
out.write_text(json.dumps(dict(os.environ)))
time.sleep(60)
"""
SHARED = (
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
)


def _received(home, process: subprocess.Popen[bytes]) -> dict[str, str]:
    path = next(iter((home / "received").glob(f"*-{process.pid}.json")), None)
    deadline = time.monotonic() + 20
    while path is None or not path.read_text():
        assert time.monotonic() < deadline, f"process {process.pid} recorded no environment"
        time.sleep(0.05)
        path = next(iter((home / "received").glob(f"*-{process.pid}.json")), None)
    return json.loads(path.read_text())


def test_a_restarted_scheduler_gets_the_secrets_the_api_server_has(tmp_path):
    """The scheduler signs task tokens with the JWT secret the api-server checks: a scheduler killed
    and restarted with a fresh secret made every later task fail with 403 "Invalid auth token"."""
    stack = AirflowStack(
        home=tmp_path, aws_connection="{}", airflow_command=(sys.executable, "-c", RECORDING_COMPONENT)
    )
    stack.home.mkdir(exist_ok=True)
    (tmp_path / "components").mkdir()
    env = stack.env()
    try:
        for component in COMPONENTS:
            stack._launch(component, env)
        first = stack.processes["scheduler"]
        before = {name: _received(tmp_path, process) for name, process in stack.processes.items()}
        os.killpg(first.pid, signal.SIGKILL)  # the crash ("database is locked")
        first.wait(timeout=10)

        stack.check_alive()

        restarted = stack.processes["scheduler"]
        assert restarted.pid != first.pid
        assert stack.restarts == {"scheduler": 1}
        received = _received(tmp_path, restarted)
        for name in SHARED:
            assert received[name] == before["api-server"][name] == before["scheduler"][name], name
        assert received == before["scheduler"]  # the same environment altogether
    finally:
        stack.stop(grace=1)


def test_each_stack_draws_its_own_secrets(tmp_path):
    one = AirflowStack(home=tmp_path / "one", aws_connection="{}")
    other = AirflowStack(home=tmp_path / "other", aws_connection="{}")
    assert one.env()["AIRFLOW__API_AUTH__JWT_SECRET"] != other.env()["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert one.env() == one.env()  # and keeps them for every process it launches
