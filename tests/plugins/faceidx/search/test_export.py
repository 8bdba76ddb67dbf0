"""``faceidx export --person P``: every image and face of a person (the right of access), as a table
or JSON; an unknown person or an empty index exits 2 and changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from faceidx.cli import main as cli_main
from faceidx.search.export import export_person, format_export
from faceidx.store.location import IndexLocation
from faceidx.store.persons import SCHEMAS, PeopleStore
from tests.plugins.faceidx.people.face_tables import Photo, add_photos, face_of, fid
from tests.plugins.faceidx.store.table_builders import VERSION


@pytest.fixture
def location(tmp_path) -> IndexLocation:
    """Ann in two photos (one of them with Bob), Bob alone in one more; Ann labelled."""
    location = IndexLocation(str(tmp_path / "index"))
    add_photos(
        location,
        [
            Photo("ann-1.jpg", [face_of(1, 0)]),
            Photo("ann-bob.jpg", [face_of(2, 0), face_of(1, 1)]),
            Photo("bob-1.jpg", [face_of(2, 1)]),
        ],
    )
    store = PeopleStore(location)
    persons = [
        {"person_id": "p-ann", "model_version": VERSION, "face_count": 2, "label": "Ann"},
        {"person_id": "p-bob", "model_version": VERSION, "face_count": 2, "label": None},
    ]
    store.upsert("persons", pa.Table.from_pylist(persons, schema=SCHEMAS["persons"]))
    mapping = [
        (fid("ann-1.jpg", 0), "p-ann"),
        (fid("ann-bob.jpg", 1), "p-ann"),
        (fid("ann-bob.jpg", 0), "p-bob"),
        (fid("bob-1.jpg", 0), "p-bob"),
    ]
    rows = [{"face_id": f, "person_id": p, "model_version": VERSION} for f, p in mapping]
    store.upsert("face_persons", pa.Table.from_pylist(rows, schema=SCHEMAS["face_persons"]))
    return location


def test_every_face_of_a_person_by_id_or_label(location):
    export = export_person(location, "p-ann")
    assert [(f.image, f.face_index) for f in export.faces] == [
        ("s3://photos/ann-1.jpg", 0),
        ("s3://photos/ann-bob.jpg", 1),
    ]
    assert export.images == 2
    face = export.faces[0]
    assert face.face_id == fid("ann-1.jpg", 0)
    assert (face.model_version, face.person_id, len(face.bbox)) == (VERSION, "p-ann", 4)
    assert face.indexed_at is not None
    assert face.indexed_at.startswith("20")
    assert export.persons == [
        {"person_id": "p-ann", "model_version": VERSION, "label": "Ann", "face_count": 2}
    ]
    assert export_person(location, "Ann").faces == export.faces  # by label
    text = format_export(export)
    assert "every face of p-ann: 2 face(s) in 2 image(s), person(s) p-ann (Ann)" in text
    assert "s3://photos/ann-bob.jpg" in text
    assert "bob-1" not in text


def test_the_command_prints_a_table_or_json(location, capsys):
    assert cli_main(["--output-uri", location.output_uri, "export", "--person", "p-bob", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["images"] == 2
    assert {f["image"] for f in document["faces"]} == {"s3://photos/ann-bob.jpg", "s3://photos/bob-1.jpg"}
    assert set(document["faces"][0]) == {
        "image",
        "face_id",
        "face_index",
        "bbox",
        "model_version",
        "indexed_at",
        "person_id",
    }
    assert cli_main(["--output-uri", location.output_uri, "export", "--person", "Ann"]) == 0
    assert "every face of Ann: 2 face(s)" in capsys.readouterr().out


def test_an_unknown_person_or_an_empty_index_exits_2_and_changes_nothing(location, tmp_path):
    before = sorted((str(p), p.stat().st_size) for p in Path(location.output_uri).rglob("*") if p.is_file())
    command = [sys.executable, "-m", "faceidx.cli", "--output-uri", location.output_uri, "export"]
    unknown = subprocess.run([*command, "--person", "nobody"], capture_output=True, text=True, check=False)
    assert unknown.returncode == 2
    assert unknown.stdout == ""
    assert "faceidx export: no person 'nobody' (neither a person id nor a label)" in unknown.stderr
    after = sorted((str(p), p.stat().st_size) for p in Path(location.output_uri).rglob("*") if p.is_file())
    assert after == before
    empty = tmp_path / "empty"
    assert cli_main(["--output-uri", str(empty), "export", "--person", "p-ann"]) == 2
    assert not empty.exists()
