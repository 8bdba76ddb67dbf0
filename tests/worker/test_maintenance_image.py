"""The index maintenance image (worker/Dockerfile, target ``maintenance``) without a Docker engine: the
stage exists and the GPU worker stays the default, it copies the faceidx package from the named context
and runs as non-root, its command is the job definition's, and its lock is complete and pins the same
versions as the Airflow side's requirements.lock; installed alone into a fresh venv (slow), the lock
runs ingest, compact, vacuum and a vector sync."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.worker_harness import REPO, WORKER_DIR

DOCKERFILE = WORKER_DIR / "Dockerfile"
LOCK = WORKER_DIR / "requirements-maintenance.lock"
AIRFLOW_LOCK = REPO / "requirements.lock"
JOB_DEFINITION = REPO / "infra" / "batch" / "job-definition-maintenance.json"
UV = REPO / ".venv" / "bin" / "uv"
# What faceidx.store, people, erasure and maintenance import at run time.
INDEX_LAYER = ("boto3", "deltalake", "duckdb", "lancedb", "numpy", "pyarrow")
# The target platform of the lock (x86_64 Linux, CPython 3.11): what its markers are evaluated for.
TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.9",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _stages() -> list[tuple[str, str]]:
    """``(FROM line, stage text)`` for each stage, in order."""
    text = DOCKERFILE.read_text()
    starts = [m.start() for m in re.finditer(r"^FROM ", text, re.MULTILINE)]
    return [
        (text[start:].splitlines()[0], text[start : (starts[i + 1] if i + 1 < len(starts) else len(text))])
        for i, start in enumerate(starts)
    ]


def _maintenance_stage() -> str:
    (stage,) = [text for line, text in _stages() if line.endswith(" AS maintenance")]
    return stage


def test_the_maintenance_stage_is_a_cpu_python_image():
    line = _maintenance_stage().splitlines()[0]
    assert re.fullmatch(r"FROM python:3\.11-slim-bookworm AS maintenance", line)
    stage = _maintenance_stage()
    assert "cuda" not in stage.lower()
    assert "COPY --from=uv /uv /usr/local/bin/uv" in stage
    assert "--no-deps -r /tmp/requirements-maintenance.lock" in stage
    assert "COPY requirements-maintenance.lock /tmp/requirements-maintenance.lock" in stage


def test_the_gpu_worker_stays_the_default_target():
    line, stage = _stages()[-1]
    assert line == "FROM ${CUDA_BASE}", "a build without --target must still give the GPU worker"
    assert 'CMD ["python", "run_detection_service.py"]' in stage
    assert "FACEIDX_REQUIRE_GPU=1" in stage


def test_the_maintenance_stage_copies_faceidx_and_runs_as_non_root():
    stage = _maintenance_stage()
    assert re.search(r"^COPY --from=plugins faceidx \./faceidx$", stage, re.MULTILINE)
    assert re.search(r"^COPY faceidx_worker \./faceidx_worker$", stage, re.MULTILINE)  # faceidx.store.schema
    assert re.search(r"^WORKDIR /app$", stage, re.MULTILINE)
    assert "PYTHONPATH=/app" in stage
    users = re.findall(r"^USER (\S+)$", stage, re.MULTILINE)
    assert users == ["10001:10001"], "a non-root user, set once"
    assert "--uid 10001" in stage
    assert (REPO / "plugins" / "faceidx").is_dir(), "the named context `plugins` holds faceidx"


def test_the_image_command_is_the_job_definitions():
    stage = _maintenance_stage()
    entrypoints = re.findall(r"^ENTRYPOINT", stage, re.MULTILINE)
    assert entrypoints == [], "Batch's command replaces CMD; an ENTRYPOINT would prefix it"
    (cmd,) = re.findall(r"^CMD (\[.*\])$", stage, re.MULTILINE)
    job = json.loads(JOB_DEFINITION.read_text())
    assert json.loads(cmd) == job["containerProperties"]["command"] == ["python", "-m", "faceidx.jobs"]


def test_the_lock_pins_the_index_layer_at_the_airflow_sides_versions():
    pins, airflow = _pins(LOCK), _pins(AIRFLOW_LOCK)
    assert set(INDEX_LAYER) <= set(pins)
    differ = {
        name: (version, airflow[name]) for name, version in pins.items() if airflow.get(name) != version
    }
    assert differ == {}, "every maintenance pin is requirements.lock's (make lock)"
    for absent in (
        "apache-airflow",
        "onnxruntime",
        "onnxruntime-gpu",
        "opencv-python-headless",
        "insightface",
    ):
        assert absent not in pins, f"{absent} has no place in the maintenance image"


def test_the_lock_is_complete():
    """Installed with --no-deps, so every dependency of every pin (for x86_64 Linux, CPython 3.11) must
    be pinned too. Read from the installed distributions, which are the same versions."""
    pins = _pins(LOCK)
    missing = {}
    for name in pins:
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            pytest.fail(f"{name} is pinned but not installed in the dev venv (make venv)")
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate(TARGET):
                continue
            if canonicalize_name(requirement.name) not in pins:
                missing.setdefault(name, []).append(requirement.name)
    assert missing == {}, "re-lock with make lock"


# What the image holds under /app: faceidx and faceidx_worker; nothing else of the checkout.
SMOKE = """
import importlib, pkgutil
for package in ("faceidx.store", "faceidx.people", "faceidx.erasure", "faceidx.maintenance"):
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if info.name not in ("approval",):  # the erasure's Airflow approval operator: DAG side only
            importlib.import_module(f"{package}.{info.name}")
from faceidx.store.location import IndexLocation
from faceidx.store.table import FaceTable
from faceidx.store.vectors import VectorIndex
from tests.plugins.faceidx.store.table_builders import VERSION, Image, write_landing
location = IndexLocation(output_uri=OUT)
for n in range(3):
    write_landing(location, [Image(key=f"a/{n}.jpg", etag=f"e{n}")])
table = FaceTable.open(location)
assert table.ingest().rows_inserted == 6
table.compact()
table.vacuum(retention_hours=0)
assert VectorIndex(location).sync(FaceTable.open(location), VERSION).rows == 6
print("ok")
"""


@pytest.fixture(scope="module")
def maintenance_venv() -> Path:
    """worker/requirements-maintenance.lock installed with --no-deps into build/, reused after."""
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]
    venv = REPO / "build" / f"maintenance-venv-{digest}"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if not marker.exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([str(UV), "venv", "-q", "--python", "3.11", str(venv)], check=True)
        result = subprocess.run(
            [str(UV), "pip", "install", "-q", "--python", str(python), "--no-deps", "-r", str(LOCK)],
            check=False,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            pytest.fail(f"installing {LOCK.name} into a fresh venv failed:\n{result.stderr[-3000:]}")
        marker.touch()
    return python


@pytest.mark.slow
def test_the_index_steps_run_from_the_lock_alone(maintenance_venv, tmp_path):
    """Only the lock, faceidx and faceidx_worker on the path (as in the image): every module of the
    index layer imports, and ingest, compact, vacuum and a vector sync run on a local index."""
    path = f"{REPO / 'plugins'}:{WORKER_DIR}:{REPO}"  # the repository root only for the test's row builder
    result = subprocess.run(
        [str(maintenance_venv), "-c", f"OUT = {str(tmp_path / 'index')!r}\n{SMOKE}"],
        cwd=tmp_path,
        env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANCE_LOG": "error"},
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
