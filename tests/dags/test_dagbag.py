"""Integrity of every DAG file: imports cleanly, declares what a reader needs, and parses cheaply."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_"))
EXPECTED = {
    "face_indexing",
    "face_infra_bootstrap",
    "face_reindex",
    "face_identities",
    "face_people",
    "face_forget",
    "face_models",
    "face_search",
    "face_table",
    "face_vectors",
}
HEAVY = ("cv2", "onnxruntime", "insightface", "pyarrow", "numpy", "PIL", "faceidx_worker", "moto")

# Runs in a fresh interpreter: any AWS client built while importing the DAG file raises.
PROBE = r"""
import json, sys, time
import botocore.session
def _refuse(*args, **kwargs):
    raise RuntimeError("DAG file created an AWS client at import time")
botocore.session.Session.create_client = _refuse
import airflow.sdk  # what every DAG file imports anyway; not counted in its parse time
before = set(sys.modules)
start = time.perf_counter()
import runpy
runpy.run_path(sys.argv[1], run_name="dag_probe")
elapsed = time.perf_counter() - start
heavy = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in json.loads(sys.argv[2]))
print(json.dumps({"seconds": elapsed, "heavy": heavy}))
"""


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_expected_dags_present(dagbag):
    assert set(dagbag.dag_ids) == EXPECTED


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_dag_conventions(dagbag, path):
    dag = dagbag.get_dag(path.stem)
    assert dag is not None, f"dag_id must equal the file stem {path.stem}"
    assert "faceidx" in dag.tags
    assert len(dag.doc_md or "") > 200, "doc_md explains the DAG in the UI"
    assert dag.catchup is False
    for task in dag.tasks:
        assert task.execution_timeout is not None, f"{task.task_id} has no execution_timeout"
    assert dag.default_args.get("retries", 0) >= 1


@pytest.mark.parametrize("role", ["primary", "secondary"])
def test_batch_submits_are_never_retried_and_waits_defer(dagbag, role):
    dag = dagbag.get_dag("face_indexing")
    submit = dag.get_task(f"submit_{role}")
    assert submit.retries == 0, "an Airflow retry of BatchOperator submits a second job"
    assert submit.wait_for_completion is False, "a submit task must not hold a worker slot while jobs run"
    wait = dag.get_task(f"wait_{role}")
    assert wait.deferrable, "waiting for jobs must happen in the triggerer"
    assert wait.retries >= 1, "re-waiting is safe: it submits nothing"
    assert wait.upstream_task_ids == {f"submit_{role}"}


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_import_creates_no_client_and_no_heavy_import(path):
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        check=False,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO / "plugins")},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [], f"{path.name} imports {result['heavy']} at parse time"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_every_param_default_passes_its_own_schema(dagbag, path):
    """What the UI's trigger form checks before it enables *Trigger*: each default against its schema.

    An empty string default on a ``type="string"`` Param passes jsonschema but the form treats the
    empty field as missing, so an empty default must be ``None`` with ``"null"`` in the type list.
    The browser tests (tests/ui) prove the form itself.
    """
    import jsonschema

    dag = dagbag.get_dag(path.stem)
    for name, param in dag.params.items():
        schema = param.schema
        jsonschema.validate(param.value, schema)
        if param.value in ("", []):
            pytest.fail(f"{path.stem}.{name}: an empty default must be None (a nullable Param)")
        if param.value is None:
            assert "null" in schema["type"], f"{path.stem}.{name}: a None default needs type null"
            assert "Empty" in (param.description or ""), f"{name} must say what empty means"


@pytest.mark.parametrize(
    ("dag_id", "tasks"),
    [
        ("face_table", {"ingest", "compact", "vacuum"}),
        ("face_vectors", {"sync_vectors"}),
        ("face_identities", {"identities", "apply_review"}),  # review waits for a human: default pool
        ("face_people", {"people"}),
        ("face_forget", {"forget"}),
        ("face_models", {"models"}),
    ],
)
def test_the_tasks_that_write_the_index_share_one_pool(dagbag, dag_id, tasks):
    """One slot: writers queue in Airflow instead of waiting for the index lease in a worker slot."""
    from faceidx.common.constants import WRITER_POOL

    dag = dagbag.get_dag(dag_id)
    writing = {task.task_id for task in dag.tasks if task.pool == WRITER_POOL}
    assert writing == tasks
