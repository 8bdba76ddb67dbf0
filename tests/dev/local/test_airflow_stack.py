"""The local Airflow stack restarts a crashed scheduler, as compose's ``restart: always`` does."""

from __future__ import annotations

import subprocess
import sys

import pytest

from faceidx_dev.local.airflow_stack import MAX_RESTARTS, AirflowStack, AirflowStackError


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
