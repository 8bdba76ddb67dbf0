from __future__ import annotations

import json

import pytest

from faceidx.cli import main
from faceidx.people.clustering import ClusterPolicy
from faceidx.people.identities import run_incremental
from faceidx.store.location import IndexLocation
from faceidx.store.persons import PeopleStore
from tests.plugins.faceidx.people.face_tables import Photo, add_photos, face_of, fid
from tests.plugins.faceidx.store.table_builders import VERSION


@pytest.fixture
def location(tmp_path):
    index = IndexLocation(str(tmp_path / "out"))
    add_photos(index, [Photo(f"p{p}-{v}.jpg", [face_of(p, v)]) for p in (1, 2) for v in range(3)])
    run_incremental(index, VERSION, ClusterPolicy(threshold=0.5))
    return index


def cli(location, *words):
    return main(["--output-uri", location.output_uri, "people", "--model-version", VERSION, *words])


def test_label_merge_split_move_and_cluster(location, capsys):
    mapping = PeopleStore(location).mapping(VERSION)
    p1, p2 = mapping[fid("p1-0.jpg", 0)], mapping[fid("p2-0.jpg", 0)]
    assert cli(location, "label", p1, "Ross") == 0
    assert cli(location, "merge", p1, p2) == 0
    assert cli(location, "split", p1, fid("p2-0.jpg", 0), fid("p2-1.jpg", 0)) == 0
    assert cli(location, "move", "-", fid("p1-2.jpg", 0)) == 0
    capsys.readouterr()
    assert cli(location, "cluster") == 0
    lines = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert "corrections replayed 4" in lines
    after = PeopleStore(location).mapping(VERSION)
    assert after[fid("p1-0.jpg", 0)] == after[fid("p2-2.jpg", 0)] == p1
    assert after[fid("p2-0.jpg", 0)] == after[fid("p2-1.jpg", 0)] not in (None, p1)
    assert after[fid("p1-2.jpg", 0)] is None
    assert cli(location, "list", "--labelled") == 0
    listing = capsys.readouterr().out
    assert "Ross" in listing
    assert p1 in listing
    assert cli(location, "show", p1) == 0
    assert fid("p1-0.jpg", 0) in capsys.readouterr().out


def test_an_unknown_person_is_refused(location, capsys):
    assert cli(location, "label", "pnope", "x") == 2
    assert "not known" in capsys.readouterr().err


def test_list_as_json_is_the_table_as_data(location, capsys):
    mapping = PeopleStore(location).mapping(VERSION)
    p1, p2 = mapping[fid("p1-0.jpg", 0)], mapping[fid("p2-0.jpg", 0)]
    assert cli(location, "label", p2, "Monica") == 0
    capsys.readouterr()
    assert cli(location, "list", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["model_version"] == VERSION
    assert sorted(p["person_id"] for p in document["persons"]) == sorted([p1, p2])
    assert {p["person_id"]: p["label"] for p in document["persons"]} == {p1: None, p2: "Monica"}
    assert all(p["face_count"] == 3 for p in document["persons"])
    assert cli(location, "list", "--labelled", "--json") == 0
    assert [p["person_id"] for p in json.loads(capsys.readouterr().out)["persons"]] == [p2]
