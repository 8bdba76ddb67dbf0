"""face_models run by ``dag.test()`` on local paths."""

from __future__ import annotations

import pytest

from faceidx.store.location import IndexLocation
from faceidx.store.registry import ModelRegistry
from faceidx.store.table import FaceTable
from tests.plugins.faceidx.erasure.test_forget import V1, V2, image_rows, unit, write_landing
from tests.support.airflow_dags import load_dag, xcom
from tests.support.reindex_backfill import forget_runs


@pytest.fixture
def dag(airflow_db):
    forget_runs("face_models")
    return load_dag("face_models")


@pytest.fixture
def location(tmp_path):
    index = IndexLocation(output_uri=str(tmp_path / "out"))
    write_landing(index, image_rows("a.jpg", unit(1, 2), version=V1))
    write_landing(index, image_rows("a.jpg", unit(2, 1), version=V2))
    FaceTable.open(index).ingest()
    return index


def _run(dag, location, **conf):
    run = dag.test(run_conf={"output_uri": location.output_uri, **conf})
    return run, str(run.get_task_instances()[0].state)


def test_params_match_the_task():
    from dags import face_models
    from faceidx.models.tasks import ACTIONS

    assert list(ACTIONS) == face_models.ACTIONS


def test_use_then_list_then_a_refused_drop(dag, location, caplog):
    run, state = _run(dag, location, action="use", version=V1)
    assert state == "success"
    assert xcom(run, "models")["step"]["to"] == V1
    assert ModelRegistry(location).current() == V1

    run, state = _run(dag, location, action="list")
    assert state == "success"
    assert {v["version"]: v["current"] for v in xcom(run, "models")["versions"]} == {V1: True, V2: False}
    assert "model versions" in caplog.text

    run, state = _run(dag, location, action="drop", version=V1)
    assert state == "failed"
    assert set(ModelRegistry(location).versions()) == {V1, V2}

    run, state = _run(dag, location, action="drop", version=None)
    assert state == "failed"
