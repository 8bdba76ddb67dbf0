"""face_identities under dag.test() on local paths: what the persons tables hold after each run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from faceidx.people.tasks import wants_full_recluster
from faceidx.store.location import IndexLocation
from faceidx.store.persons import PeopleStore
from tests.plugins.faceidx.people.face_tables import Photo, add_photos, face_of, fid
from tests.plugins.faceidx.store.table_builders import VERSION
from tests.support.airflow_dags import load_dag, xcom
from tests.support.reindex_backfill import forget_runs


@pytest.fixture
def dag(airflow_db):
    forget_runs("face_identities")
    return load_dag("face_identities")


@pytest.fixture
def location(tmp_path) -> IndexLocation:
    index = IndexLocation(output_uri=str(tmp_path / "out"))
    add_photos(index, [Photo(f"p{p}-{v}.jpg", [face_of(p, v)]) for p in (1, 2) for v in range(3)])
    return index


def test_dag_shape(dag):
    from faceidx.common.constants import WRITER_POOL
    from faceidx.people.review import REVIEW_DEFAULT, REVIEW_OPTIONS

    assert sorted(t.task_id for t in dag.tasks) == ["apply_review", "identities", "review", "review_prompts"]
    assert dag.params["full_recluster"] is False
    assert dag.params["merge_proposal"] is None
    assert dag.get_task("identities").pool == WRITER_POOL
    assert dag.get_task("apply_review").pool == WRITER_POOL
    review = dag.get_task("review")
    assert review.partial_kwargs.get("pool", "default_pool") != WRITER_POOL, "a wait never holds the writers"
    assert review.partial_kwargs["options"] == REVIEW_OPTIONS
    assert review.partial_kwargs["defaults"] == [REVIEW_DEFAULT], "unanswered: Skip, the run goes on"
    assert review.partial_kwargs["response_timeout"] is not None


def test_a_run_creates_persons_and_a_rerun_finds_nothing_new(dag, location, caplog):
    run = dag.test(run_conf={"output_uri": location.output_uri, "threshold": 0.5})
    assert {ti.task_id: str(ti.state) for ti in run.get_task_instances()} == {
        "identities": "success",
        "review_prompts": "success",
        "review": "skipped",  # nothing to review: no task waits in Required Actions
        "apply_review": "skipped",
    }
    report = xcom(run, "identities")
    assert report["review"] == []
    assert report["faces seen"] == 6
    assert report["new persons"] == 2
    assert "identities of" in caplog.text
    assert "buffered (waiting)" in caplog.text
    mapping = PeopleStore(location).mapping(VERSION)
    assert mapping[fid("p1-0.jpg", 0)] == mapping[fid("p1-2.jpg", 0)] != mapping[fid("p2-0.jpg", 0)]
    again = xcom(dag.test(run_conf={"output_uri": location.output_uri, "threshold": 0.5}), "identities")
    assert again["faces seen"] == 0


def test_full_recluster_param_keeps_person_ids(dag, location):
    conf = {"output_uri": location.output_uri, "model_version": VERSION, "threshold": 0.5}
    dag.test(run_conf=conf)
    before = PeopleStore(location).mapping(VERSION)
    report = xcom(dag.test(run_conf={**conf, "full_recluster": True}), "identities")
    assert report["mode"] == "full re-cluster"
    assert PeopleStore(location).mapping(VERSION) == before


@pytest.mark.parametrize(
    ("param", "start", "expected"),
    [
        (True, None, True),
        (False, datetime(2026, 11, 23, 0, tzinfo=UTC), True),  # a Monday, 00:00
        (False, datetime(2026, 11, 23, 1, tzinfo=UTC), False),
        (False, datetime(2026, 11, 24, 0, tzinfo=UTC), False),
        (None, None, False),
    ],
)
def test_weekly_cadence(param, start, expected):
    assert wants_full_recluster(param, start) is expected
