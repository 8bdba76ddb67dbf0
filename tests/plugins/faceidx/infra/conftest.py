"""Fixtures for the infra tests: a prepared moto account and a one-call bootstrap against it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.infra_moto import InfraAccount, prepare_infra_account

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture
def account(moto: Any, monkeypatch: pytest.MonkeyPatch) -> InfraAccount:
    return prepare_infra_account(moto, monkeypatch)


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    """A copy of infra/ that a test may edit."""
    target = tmp_path / "infra"
    shutil.copytree(REPO / "infra", target)
    return target


@pytest.fixture
def bootstrap(account: InfraAccount) -> Callable[..., dict[str, Any]]:
    """Run every step in this process against moto: ``bootstrap(spec_dir=None, **param_overrides)``."""
    from faceidx.infra.hook_base import InfraReconcileHook
    from faceidx.infra.tasks import run_bootstrap

    def run(spec_dir: Path | None = None, **overrides: Any) -> dict[str, Any]:
        params = {**account.params, **overrides}
        return run_bootstrap(
            params, {}, lambda: InfraReconcileHook(aws_conn_id="aws_default", waiter_delay=1), spec_dir
        )

    return run


def actions(run: dict[str, Any]) -> dict[str, str]:
    """``"kind name" -> action`` over every resource of a bootstrap run."""
    return {f"{r['kind']} {r['name']}": r["action"] for step in run["steps"] for r in step["results"]}
