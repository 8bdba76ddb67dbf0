"""A real Airflow 3 on loopback: api-server, scheduler, dag-processor and triggerer as subprocesses.

sqlite + LocalExecutor is what ``airflow standalone`` runs in Airflow 3, and it is what this uses: no
database server to install. Its one weak spot here: ``POST /api/v2/backfills`` answers 503 "Database is
locked" when another component writes at the same moment (Airflow rolls back first, so the test retries
it), hence also the 30 s sqlite busy timeout below.

Each component runs in its own process group (so its children, the LocalExecutor's task processes
and the log servers, go down with it), logs to a file under the temporary AIRFLOW_HOME, and
:meth:`AirflowStack.diagnostics` gathers those files for a failing test.

Authentication is the simple auth manager with one ``admin`` user whose random password is written
to the passwords file beforehand; ``POST /auth/token`` turns it into a JWT for the REST API, and the
UI's own login form takes the same user and password.

The secrets the components must share (the JWT secret that the scheduler signs task tokens with and
the api-server checks them with, the API secret key, the Fernet key) and the log servers' ports are
drawn once per stack (:func:`per_stack_settings`): a component restarted by :meth:`AirflowStack.check_alive`
gets the same values as the others, not a fresh secret that makes every later task fail with 403
"Invalid auth token".

Used by ``make up`` (``faceidx_dev.local.product``), the live REST API tests and the browser tests.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

REPO = Path(__file__).resolve().parents[3]
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
MAX_RESTARTS = 3  # per component, over the stack's life

log = logging.getLogger(__name__)
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


class AirflowStackError(RuntimeError):
    """A component did not come up or died; the message says which and where its log is."""


def per_stack_settings() -> dict[str, str]:
    """What every component of one stack must agree on, drawn once when the stack is made."""
    return {
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        # the scheduler signs the task processes' tokens, the api-server checks them: one secret
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        # the api-server reads running tasks' logs from these ports
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }


@dataclass
class AirflowStack:
    home: Path
    aws_connection: str = field(repr=False)
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)
    shared: dict[str, str] = field(default_factory=per_stack_settings, repr=False)
    # how a component is run: ``<command> scheduler``, ``<command> db migrate`` (tests put a stand-in here)
    airflow_command: tuple[str, ...] = (sys.executable, "-m", "airflow")
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    restarts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    _token: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_path(self, component: str) -> Path:
        return self.home / "components" / f"{component}.log"

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))
        }
        passwords = self.home / "simple_auth_manager_passwords.json"
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                # wait up to 30 s for sqlite's write lock (Python's default is 5 s)
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db?timeout=30",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__WORKERS": "1",
                **self.shared,
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "AIRFLOW_CONN_AWS_DEFAULT": self.aws_connection,
                "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), env.get("PYTHONPATH", "")]).rstrip(
                    os.pathsep
                ),
                "NO_COLOR": "1",
            }
        )
        env.update(self.extra_env)
        return env

    # --- life cycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "components").mkdir(exist_ok=True)
        (self.home / "simple_auth_manager_passwords.json").write_text(json.dumps({"admin": self.password}))
        env = self.env()
        started = time.monotonic()
        self._cli(env, timeout, "db", "migrate")
        self.timings["db migrate"] = time.monotonic() - started
        # the pool of the tasks that write the index (one slot), as the compose stack's init creates it
        from faceidx.common.constants import WRITER_POOL, WRITER_POOL_DESCRIPTION

        self._cli(
            env, timeout, "pools", "set", "--include-deferred", WRITER_POOL, "1", WRITER_POOL_DESCRIPTION
        )
        started = time.monotonic()
        for component in COMPONENTS:
            self._launch(component, env)
        self.wait_healthy(timeout)
        self.timings["components healthy"] = time.monotonic() - started

    def _cli(self, env: dict[str, str], timeout: float, *args: str) -> None:
        """One ``airflow`` CLI command against this stack's database; fails with its output."""
        done = subprocess.run(
            [*self.airflow_command, *args],
            env=env,
            cwd=self.home,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise AirflowStackError(
                f"airflow {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM every component's process group, then SIGKILL what is left after ``grace`` s."""
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in self.processes.values():
            # the group may outlive its leader (task processes, log servers): always sweep it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def _launch(self, component: str, env: dict[str, str]) -> None:
        args = [*self.airflow_command, component]
        if component == "api-server":
            args += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        out = self.log_path(component).open("ab")
        self.processes[component] = subprocess.Popen(
            args, env=env, cwd=self.home, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()

    def check_alive(self) -> None:
        """Restart a scheduler, DAG processor or triggerer that exited, as compose's ``restart: always``
        does (on sqlite a rolled-back write can crash the scheduler: Airflow then reads a deleted
        DagRun), at most ``MAX_RESTARTS`` times each; raise when that is spent or the API server died."""
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        for name in list(dead):
            if name != "api-server" and self.restarts.get(name, 0) < MAX_RESTARTS:
                self.restarts[name] = self.restarts.get(name, 0) + 1
                log.warning(
                    "Airflow %s exited (%s); restarting it (%d)", name, dead.pop(name), self.restarts[name]
                )
                self._launch(name, self.env())
        if dead:
            raise AirflowStackError(
                f"Airflow component(s) exited: {dead}; see their logs in the report or under "
                f"{self.home / 'components'}"
            )

    # --- REST API ---------------------------------------------------------------------------------

    def wait_healthy(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                response = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5)
                last = response.json() if response.status_code == 200 else response.text
            except (httpx.HTTPError, ValueError) as exc:
                last = repr(exc)
            if isinstance(last, dict) and all(
                (last.get(part) or {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            ):
                return last
            time.sleep(1)
        raise AirflowStackError(
            f"Airflow not healthy after {timeout:.0f} s; last /monitor/health answer: {last}"
        )

    def token(self) -> str:
        if self._token is None:
            response = httpx.post(
                f"{self.url}/auth/token", json={"username": "admin", "password": self.password}, timeout=30
            )
            if response.status_code != 201:
                raise AirflowStackError(f"POST /auth/token: {response.status_code} {response.text}")
            self._token = str(response.json()["access_token"])
        return self._token

    def api(
        self,
        method: str,
        path: str,
        *,
        expect: tuple[int, ...] = (200,),
        retry_post: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Call ``/api/v2<path>`` with the token; returns the JSON (or text) answer.

        Idempotent calls (GET, PATCH, PUT), and a POST when ``retry_post``, are retried a few times on a
        connection error or a 5xx: four processes share one sqlite file, and on a busy machine it
        answers "database is locked" now and then (``POST /backfills`` then rolls back and answers
        503 so that the client retries).
        """
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        attempts = 4 if method.upper() in {"GET", "PATCH", "PUT"} or retry_post else 1
        for attempt in range(1, attempts + 1):
            try:
                response = httpx.request(
                    method, f"{self.url}/api/v2{path}", headers=headers, timeout=30, **kwargs
                )
            except httpx.TransportError as exc:
                if attempt == attempts:
                    raise AirflowStackError(f"{method} /api/v2{path}: {exc!r}") from exc
                time.sleep(2)
                continue
            # a POST is retried only on 503, which Airflow answers after rolling the request back
            retryable = (
                response.status_code == 503 if method.upper() == "POST" else response.status_code >= 500
            )
            if retryable and attempt < attempts:
                print(f"{method} /api/v2{path}: {response.status_code} {response.text[:300]}; retrying")
                time.sleep(2)
                continue
            break
        if response.status_code not in expect:
            raise AirflowStackError(f"{method} /api/v2{path}: {response.status_code} {response.text[:2000]}")
        if "json" in response.headers.get("content-type", ""):
            return response.json()
        return response.text

    def wait_for(self, what: str, probe: Any, timeout: float, interval: float = 2.0) -> Any:
        """Poll ``probe()`` until it returns something truthy; the last value is in the error."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self.check_alive()
            last = probe()
            if last:
                return last
            time.sleep(interval)
        raise AirflowStackError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last}")

    # --- DAGs and runs --------------------------------------------------------------------------

    def wait_parsed(self, dag_ids: tuple[str, ...], timeout: float = 120.0) -> None:
        """Until the dag-processor has serialized each DAG (the UI and a trigger need it)."""
        for dag_id in dag_ids:
            self.wait_for(
                f"{dag_id} to be parsed and serialized",
                lambda dag_id=dag_id: self.api("GET", f"/dags/{dag_id}/details", expect=(200, 404)).get(
                    "dag_id"
                ),
                timeout=timeout,
            )

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """A manual run now, with ``conf``; returns its run id."""
        run = self.api(
            "POST",
            f"/dags/{dag_id}/dagRuns",
            retry_post=True,
            json={"logical_date": None, "conf": conf or {}},
        )
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"/dags/{dag_id}/dagRuns/{quote_id(run_id)}")["state"])

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """Until the run has finished; returns ``success`` or ``failed``."""
        return str(
            self.wait_for(
                f"{dag_id} run {run_id} to finish",
                lambda: state if (state := self.run_state(dag_id, run_id)) in ("success", "failed") else None,
                timeout=timeout,
            )
        )

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        instances = self.api("GET", f"/dags/{dag_id}/dagRuns/{quote_id(run_id)}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in instances["task_instances"]}

    def ensure_pool(self, name: str, slots: int, description: str) -> None:
        """Create the pool, or set its slots when it exists."""
        body = {"name": name, "slots": slots, "description": description, "include_deferred": False}
        found = self.api("GET", f"/pools/{quote_id(name)}", expect=(200, 404))
        if isinstance(found, dict) and found.get("name") == name:
            self.api("PATCH", f"/pools/{quote_id(name)}", json=body)
        else:
            self.api("POST", "/pools", json=body, retry_post=True)

    # --- diagnostics ------------------------------------------------------------------------------

    def diagnostics(self, lines: int = 60) -> str:
        parts = [f"AIRFLOW_HOME={self.home} api={self.url} timings={self.timings}"]
        for component in COMPONENTS:
            process = self.processes.get(component)
            state = "not started" if process is None else f"pid {process.pid}, exit code {process.poll()}"
            parts.append(f"===== {component} ({state}): last {lines} lines of {self.log_path(component)}")
            parts.append(_tail(self.log_path(component), lines))
        # task logs (logs/dag_id=...) sort before the dag-processor's parsing logs
        for log_file in sorted((self.home / "logs").rglob("*.log"))[:12]:
            parts.append(f"===== {log_file.relative_to(self.home)}: last 25 lines")
            parts.append(_tail(log_file, 25))
        return "\n".join(parts)


def quote_id(value: str) -> str:
    """A run id (``backfill__2026-11-25T00:00:00+00:00``) as one URL path segment."""
    return quote(value, safe="")
