"""face_people under dag.test(): a correction is recorded, applied, and survives a re-cluster."""

from __future__ import annotations

import pytest

from faceidx.people.clustering import ClusterPolicy
from faceidx.people.identities import run_incremental
from faceidx.store.location import IndexLocation
from faceidx.store.persons import PeopleStore
from tests.plugins.faceidx.people.face_tables import Photo, add_photos, face_of, fid
from tests.plugins.faceidx.store.table_builders import VERSION
from tests.support.airflow_dags import load_dag
from tests.support.reindex_backfill import forget_runs


@pytest.fixture
def dag(airflow_db):
    forget_runs("face_people")
    return load_dag("face_people")


@pytest.fixture
def location(tmp_path) -> IndexLocation:
    index = IndexLocation(output_uri=str(tmp_path / "out"))
    add_photos(index, [Photo(f"p{p}-{v}.jpg", [face_of(p, v)]) for p in (1, 2) for v in range(3)])
    run_incremental(index, VERSION, ClusterPolicy(threshold=0.5))
    return index


def _states(run):
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_label_then_cluster_keeps_the_label(dag, location):
    person = PeopleStore(location).mapping(VERSION)[fid("p1-0.jpg", 0)]
    conf = {"output_uri": location.output_uri, "model_version": VERSION}
    run = dag.test(run_conf={**conf, "action": "label", "person_id": person, "label": "Ross"})
    assert _states(run) == {"people": "success"}
    assert PeopleStore(location).labels(VERSION)[person] == "Ross"
    assert _states(dag.test(run_conf={**conf, "action": "cluster"})) == {"people": "success"}
    assert PeopleStore(location).labels(VERSION)[person] == "Ross"
    events = PeopleStore(location).read("person_events", VERSION).to_pylist()
    assert [e["kind"] for e in events] == ["label"]
    assert events[0]["actor"]


def test_move_with_the_form_defaults(dag, location):
    mapping = PeopleStore(location).mapping(VERSION)
    target = mapping[fid("p2-0.jpg", 0)]
    face = fid("p1-1.jpg", 0)
    run = dag.test(
        run_conf={
            "output_uri": location.output_uri,
            "action": "move",
            "person_id": target,
            "face_ids": [face],
        }
    )
    assert _states(run) == {"people": "success"}
    assert PeopleStore(location).mapping(VERSION)[face] == target


def test_an_unknown_person_fails_and_records_nothing(dag, location):
    run = dag.test(run_conf={"output_uri": location.output_uri, "action": "label", "person_id": "pnope"})
    assert _states(run) == {"people": "failed"}
    assert PeopleStore(location).read("person_events", VERSION).num_rows == 0
