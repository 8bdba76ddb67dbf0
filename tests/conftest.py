"""Test-wide set-up: an isolated Airflow home, dummy AWS credentials, and the embedded moto server.

Environment variables are set at import time, before any test imports Airflow, so Airflow reads this
configuration and never the developer's own ``~/airflow``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="faceidx-airflow-"))

os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME}/airflow.db",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
)
for _name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)

from tests.support.moto_server import MotoEndpoint, aws_connection_uri_json, start_moto_server  # noqa: E402

ASSETS = Path(os.environ.get("FACEIDX_ASSETS", REPO.parent / "shared" / "assets"))


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    """``../shared/assets`` (or $FACEIDX_ASSETS): real models and photos. Fails loudly when absent."""
    if not (ASSETS / "models").is_dir():
        pytest.fail(
            f"test assets not found at {ASSETS}: put the shared folder beside the repository "
            "(../shared/assets) or set FACEIDX_ASSETS"
        )
    return ASSETS


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database (sqlite) in the session's AIRFLOW_HOME."""
    marker = _AIRFLOW_HOME / ".migrated"
    if not marker.exists():
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            check=True,
            capture_output=True,
            env=os.environ.copy(),
        )
        marker.touch()
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def moto_session() -> Iterator[MotoEndpoint]:
    endpoint = start_moto_server()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def moto(moto_session: MotoEndpoint, monkeypatch: pytest.MonkeyPatch) -> MotoEndpoint:
    """A freshly reset moto server, with Airflow's ``aws_default`` connection pointing at it."""
    moto_session.reset()
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection_uri_json(moto_session.url))
    return moto_session
