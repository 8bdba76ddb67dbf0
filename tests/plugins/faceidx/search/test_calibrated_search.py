"""Search at a stated false-accept rate on real embeddings: matches marked same person or unknown,
unknowns counted and hidden by default, --far / --min-similarity, and search by person (--persons)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pytest

from faceidx.cli import main as cli_main
from faceidx.search.persons import format_persons, rank_persons, search_persons
from faceidx.search.photo import PhotoSearchError, format_table, search_photo
from faceidx.store.calibration import calibration_from_similarities
from faceidx.store.location import IndexLocation
from faceidx.store.persons import SCHEMAS, PeopleStore
from faceidx.store.registry import ModelRegistry
from tests.plugins.faceidx.search.conftest import photo

pytestmark = pytest.mark.assets


def calibrated_copy(indexed: IndexLocation, version: str, folder) -> IndexLocation:
    """The small index with a calibration of 20,000 impostor pairs (cosine ~ N(0, 0.1)) stored."""
    root = folder / "calibrated"
    shutil.copytree(indexed.output_uri, root)
    location = IndexLocation(str(root))
    sims = np.random.default_rng(0).normal(0.0, 0.1, 20_000)
    calibration = calibration_from_similarities(
        version, sims, np.zeros(0), images=5_000, images_with_several_faces=5_000
    )
    ModelRegistry(location).store_calibration(calibration)
    return location


def test_matches_are_marked_at_the_calibrated_threshold(assets_dir, indexed, embedder, tmp_path):
    location = calibrated_copy(indexed, embedder.model_version, tmp_path)
    calibration = ModelRegistry(location).calibration(embedder.model_version)
    assert calibration is not None
    rob = photo(assets_dir, "lfw_Rob_Lowe_0002.jpg")
    result = search_photo(location, rob, k=4, embedder=embedder)
    at_1e4 = calibration.row(1e-4)
    assert at_1e4 is not None
    assert (result.threshold, result.far) == (at_1e4.threshold, 1e-4)
    assert result.threshold_source.startswith(
        f"calibration of {embedder.model_version} (20000 impostor pairs"
    )
    assert result.threshold_note is None
    assert [m.image for m in result.faces[0].matches] == ["s3://photos/people/lfw_Rob_Lowe_0001.jpg"]
    assert result.faces[0].below_threshold == 3
    text = format_table(result)
    assert "threshold source" in text
    assert "3 match(es) below the threshold" in text

    loose = search_photo(location, rob, k=4, embedder=embedder, far=1e-2, list_all=True)
    at_1e2 = calibration.row(1e-2)
    assert at_1e2 is not None
    assert loose.threshold == at_1e2.threshold < result.threshold
    assert len(loose.faces[0].matches) == 4
    assert all(
        (m.verdict == "same person") == (m.similarity >= loose.threshold) for m in loose.faces[0].matches
    )

    strict = search_photo(location, rob, k=4, embedder=embedder, min_similarity=0.99)
    assert (strict.threshold, strict.far, strict.faces[0].matches) == (0.99, None, [])
    assert "no same-person match: 4 match(es) below" in format_table(strict)
    # 1e-5 needs 100,000 pairs: the default, said in the note
    fallback = search_photo(location, rob, k=1, embedder=embedder, far=1e-5)
    assert fallback.threshold == 0.40
    assert "not enough pairs for FAR 1e-05" in (fallback.threshold_note or "")
    with pytest.raises(PhotoSearchError, match="not a false-accept rate"):
        search_photo(location, rob, embedder=embedder, far=5)


def test_the_command_takes_far_and_min_similarity(
    assets_dir, indexed, embedder, pack, tmp_path, monkeypatch, capsys
):
    location = calibrated_copy(indexed, embedder.model_version, tmp_path)
    monkeypatch.setenv("FACEIDX_MODEL_DIR", str(pack))
    monkeypatch.setenv("FACEIDX_OUTPUT_URI", location.output_uri)
    obama2 = photo(assets_dir, "obama2.jpg")
    assert cli_main(["search", obama2, "--k", "3"]) == 0
    text = capsys.readouterr().out
    assert "threshold in force" in text
    assert "calibration of" in text
    assert cli_main(["search", obama2, "--k", "3", "--json", "--min-similarity", "-1"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["threshold"] == -1.0
    assert document["threshold_source"] == "set by hand (--min-similarity)"
    assert len(document["faces"][0]["matches"]) == 3
    assert {m["verdict"] for m in document["faces"][0]["matches"]} == {"same person"}
    assert cli_main(["search", obama2, "--far", "0"]) == 2
    assert "not a false-accept rate" in capsys.readouterr().err


def with_persons(indexed: IndexLocation, embedder, assets_dir, folder) -> IndexLocation:
    """Persons for Obama (labelled), Biden and Rob Lowe; centroids from their indexed photos."""
    location = calibrated_copy(indexed, embedder.model_version, folder)
    version = embedder.model_version
    people = {"p-obama": ("obama.jpg", "Barack Obama"), "p-biden": ("biden.jpg", None)}
    people["p-rob"] = ("lfw_Rob_Lowe_0001.jpg", None)
    persons, mapping = [], []
    for pid, (name, label) in people.items():
        vector = embedder.faces(photo(assets_dir, name))[0].embedding
        unit = np.asarray(vector, np.float32) / np.linalg.norm(vector)
        persons.append(
            {
                "person_id": pid,
                "model_version": version,
                "centroids": [unit.tolist()],
                "face_count": 1,
                "label": label,
            }
        )
        mapping.append({"face_id": f"{name}#0", "person_id": pid, "model_version": version})
    store = PeopleStore(location)
    store.upsert("persons", pa.Table.from_pylist(persons, schema=SCHEMAS["persons"]))
    store.upsert("face_persons", pa.Table.from_pylist(mapping, schema=SCHEMAS["face_persons"]))
    return location


def test_search_by_person_ranks_persons_for_every_face(assets_dir, indexed, embedder, tmp_path):
    location = with_persons(indexed, embedder, assets_dir, tmp_path)
    found = search_persons(
        location, photo(assets_dir, "two_people.jpg"), k=3, embedder=embedder, list_all=True
    )
    assert len(found.faces) == 2
    firsts = {face.persons[0].person_id for face in found.faces}
    assert firsts == {"p-obama", "p-biden"}
    for face in found.faces:
        assert [p.similarity for p in face.persons] == sorted(
            (p.similarity for p in face.persons), reverse=True
        )
        assert len(face.persons) == 3
        assert all(p.face_count == 1 for p in face.persons)
    obama = next(p for face in found.faces for p in face.persons if p.person_id == "p-obama")
    assert obama.label == "Barack Obama"
    assert obama.by in {"face", "centroid"}

    alone = search_persons(location, photo(assets_dir, "obama2.jpg"), k=3, embedder=embedder)
    (face,) = alone.faces
    assert [(p.person_id, p.verdict) for p in face.persons] == [("p-obama", "same person")]
    assert face.below_threshold == 2  # Biden and Rob Lowe: unknown, counted
    text = format_persons(alone)
    assert "Barack Obama" in text
    assert "2 person(s) below the threshold" in text


def test_search_by_person_from_the_command(
    assets_dir, indexed, embedder, pack, tmp_path, monkeypatch, capsys
):
    location = with_persons(indexed, embedder, assets_dir, tmp_path)
    monkeypatch.setenv("FACEIDX_MODEL_DIR", str(pack))
    monkeypatch.setenv("FACEIDX_OUTPUT_URI", location.output_uri)
    assert cli_main(["search", photo(assets_dir, "obama2.jpg"), "--persons", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    first = document["faces"][0]["persons"][0]
    assert (first["person_id"], first["label"], first["verdict"], first["face_count"]) == (
        "p-obama",
        "Barack Obama",
        "same person",
        1,
    )
    # no persons yet: a clear message, exit 2
    monkeypatch.setenv("FACEIDX_OUTPUT_URI", indexed.output_uri)
    assert cli_main(["search", photo(assets_dir, "obama2.jpg"), "--persons"]) == 2
    assert "has no persons yet: run face_identities" in capsys.readouterr().err


def test_the_person_ranking_takes_the_better_of_face_and_centroid():
    persons = {p: {"label": None, "face_count": n} for p, n in (("a", 3), ("b", 1), ("c", 2))}
    ranked = rank_persons({"a": 0.5, "b": 0.2}, {"a": 0.6, "b": 0.3, "c": 0.1, "gone": 0.9}, persons, 0.4, 2)
    assert [(m.person_id, m.similarity, m.by, m.verdict) for m in ranked] == [
        ("a", 0.6, "centroid", "same person"),
        ("b", 0.3, "centroid", "unknown"),
    ]
