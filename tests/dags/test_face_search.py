"""face_search run by ``dag.test()`` on a real small index: the result it returns, the table it logs,
and a run that fails with the reason (no face) and changes nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.plugins.faceidx.search.conftest import embedder, indexed, pack, photo  # noqa: F401 (fixtures)
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
    assert set(dag.params) >= {"photo", "k", "model_version", "quality_only", "far", "min_similarity"}
    assert set(dag.params) >= {"list_all", "persons"}
    assert (dag.params["far"], dag.params["min_similarity"], dag.params["list_all"]) == (None, None, False)
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
    assert "rank  similarity  verdict      image" in caplog.text
    assert "s3://photos/people/lfw_Rob_Lowe_0001.jpg" in caplog.text
    # which threshold, at which FAR, from where: no calibration here, so the default, said so
    assert "threshold in force" in caplog.text
    assert "no calibration yet" in caplog.text
    assert result["faces"][0]["below_threshold"] == 1
    assert result["faces"][0]["matches"][0]["verdict"] == "same person"


def test_the_params_set_the_threshold_and_rank_persons(dag, indexed, assets_dir, caplog, tmp_path):  # noqa: F811
    import shutil

    import pyarrow as pa

    from faceidx.store.location import IndexLocation
    from faceidx.store.persons import SCHEMAS, PeopleStore

    caplog.set_level(logging.INFO)
    rob = photo(assets_dir, "lfw_Rob_Lowe_0002.jpg")
    conf = {"photo": rob, "k": 2, "output_uri": indexed.output_uri, "min_similarity": -1, "list_all": True}
    result = xcom(dag.test(run_conf=conf), "search")
    assert result["threshold"] == -1.0
    assert [m["verdict"] for m in result["faces"][0]["matches"]] == ["same person"] * 2

    root = tmp_path / "index"
    shutil.copytree(indexed.output_uri, root)
    version = result["model_version"]
    store = PeopleStore(IndexLocation(str(root)))
    store.upsert(
        "persons",
        pa.Table.from_pylist(
            [{"person_id": "p-rob", "model_version": version, "face_count": 1, "label": "Rob Lowe"}],
            schema=SCHEMAS["persons"],
        ),
    )
    store.upsert(
        "face_persons",
        pa.Table.from_pylist(
            [{"face_id": "lfw_Rob_Lowe_0001.jpg#0", "person_id": "p-rob", "model_version": version}],
            schema=SCHEMAS["face_persons"],
        ),
    )
    found = xcom(dag.test(run_conf={"photo": rob, "output_uri": str(root), "persons": True}), "search")
    first = found["faces"][0]["persons"][0]
    assert (first["person_id"], first["label"], first["by"], first["verdict"]) == (
        "p-rob",
        "Rob Lowe",
        "face",
        "same person",
    )
    assert "persons for face 0" in caplog.text


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
