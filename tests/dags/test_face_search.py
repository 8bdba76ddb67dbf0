"""face_search run by ``dag.test()`` on a real small index: the result it returns, the table it logs,
and a run that fails with the reason (no face) and changes nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.plugins.faceidx.search.test_photo import embedder, indexed, pack, photo  # noqa: F401 (fixtures)
from tests.support.airflow_dags import load_dag, xcom
from tests.support.reindex_backfill import forget_runs

pytestmark = pytest.mark.assets


@pytest.fixture
def dag(airflow_db, pack, monkeypatch):  # noqa: F811
    monkeypatch.setenv("FACEIDX_MODEL_DIR", str(pack))
    forget_runs("face_search")
    return load_dag("face_search")


def test_dag_shape(dag):
    assert dag.schedule is None
    assert [t.task_id for t in dag.tasks] == ["search"]
    assert set(dag.params) >= {"photo", "k", "model_version", "quality_only"}
    assert dag.params["photo"] is None
    assert dag.params["k"] == 10


def test_a_run_logs_the_matches_and_returns_them(dag, indexed, assets_dir, caplog):  # noqa: F811
    caplog.set_level(logging.INFO)
    conf = {"photo": photo(assets_dir, "lfw_Rob_Lowe_0002.jpg"), "k": 2, "output_uri": indexed.output_uri}
    run = dag.test(run_conf=conf)
    assert {ti.task_id: str(ti.state) for ti in run.get_task_instances()} == {"search": "success"}
    result = xcom(run, "search")
    assert result["k"] == 2
    assert result["faces"][0]["matches"][0]["image"] == "s3://photos/people/lfw_Rob_Lowe_0001.jpg"
    assert "face_search request" in caplog.text
    assert "rank  similarity  image" in caplog.text
    assert "s3://photos/people/lfw_Rob_Lowe_0001.jpg" in caplog.text


@pytest.mark.parametrize(
    ("conf", "reason"),
    [
        ({"photo": "no_face.png"}, "no face found"),
        ({"photo": None}, "no photo"),
        ({"photo": "obama.jpg", "model_version": "v-unknown"}, "'v-unknown' is not in the vector index"),
    ],
)
def test_a_bad_request_fails_with_the_reason(dag, indexed, assets_dir, capsys, caplog, conf, reason):  # noqa: F811
    if conf["photo"]:
        conf = {**conf, "photo": photo(assets_dir, conf["photo"])}
    before = sorted(str(p) for p in Path(indexed.vectors_uri).rglob("*"))
    run = dag.test(run_conf={**conf, "output_uri": indexed.output_uri})
    assert {ti.task_id: str(ti.state) for ti in run.get_task_instances()} == {"search": "failed"}
    captured = capsys.readouterr()
    assert reason in caplog.text + captured.out + captured.err  # the task's failure, with its reason
    after = sorted(str(p) for p in Path(indexed.vectors_uri).rglob("*"))
    assert after == before
