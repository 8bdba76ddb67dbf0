"""Airflow's own plugin loader, as the scheduler runs it, imports none of faceidx's files by bare name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

PROBE = r"""
import json, sys
before = set(sys.modules)
from airflow import plugins_manager
plugins_manager.ensure_plugins_loaded()
from airflow.plugins_manager import get_import_errors
print(json.dumps({"new": sorted(set(sys.modules) - before), "errors": get_import_errors()}))
"""


def _bare_names() -> set[str]:
    return {p.stem for p in (REPO / "plugins" / "faceidx").rglob("*.py")} - {"__init__"}


def _load(plugins_folder: Path) -> dict:
    env = {
        **os.environ,
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder),
        "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=180, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_plugin_manager_imports_no_module_of_ours_by_bare_name():
    loaded = _load(REPO / "plugins")
    assert loaded["errors"] == {}
    bare = sorted(set(loaded["new"]) & _bare_names())
    assert bare == [], f"loaded by bare name: {bare}"


def test_without_the_ignore_file_it_would(tmp_path):
    """The check can fail: the same folder without plugins/.airflowignore loads our files bare."""
    import shutil

    shutil.copytree(
        REPO / "plugins" / "faceidx", tmp_path / "faceidx", ignore=shutil.ignore_patterns("__pycache__")
    )
    loaded = _load(tmp_path)
    assert set(loaded["new"]) & _bare_names(), "expected bare-name imports without .airflowignore"
