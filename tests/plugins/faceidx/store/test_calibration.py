"""The calibrated threshold: impostor pairs from faces of one photo (and far-apart persons), the
similarity -> FAR table, the not-enough-pairs path, and the registry that stores it. Synthetic faces
with known impostor pairs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from faceidx.store.calibration import (
    DEFAULT_THRESHOLD,
    FARS,
    Calibration,
    calibration_from_similarities,
    choose_threshold,
    compute_calibration,
    cross_person_similarities,
    far_table,
    same_image_similarities,
)
from faceidx.store.location import IndexLocation
from faceidx.store.persons import SCHEMAS, PeopleStore
from faceidx.store.registry import ModelRegistry
from tests.plugins.faceidx.people.face_tables import DIM, Photo, add_photos, fid
from tests.plugins.faceidx.store.table_builders import VERSION as V


def unit(rng: np.random.Generator, n: int, d: int = DIM) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_same_image_pairs_are_every_pair_of_faces_of_one_photo():
    x = np.eye(4, dtype=np.float32)
    x[1] = [0.6, 0.8, 0, 0]
    sims = same_image_similarities(x, ["a", "a", "b", "c"])  # one pair: faces 0 and 1 of photo a
    assert sims.tolist() == pytest.approx([0.6])
    groups = same_image_similarities(unit(np.random.default_rng(0), 10), ["p"] * 5 + ["q"] * 5)
    assert len(groups) == 10 + 10  # C(5,2) per photo
    assert len(same_image_similarities(x[:1], ["a"])) == 0


def test_the_table_is_monotonic_counts_its_pairs_and_says_when_there_are_too_few():
    rng = np.random.default_rng(1)
    sims = rng.normal(0.0, 0.1, size=20_000)
    rows = far_table(sims)
    assert [r.far for r in rows] == sorted(FARS, reverse=True)
    assert all(r.pairs == 20_000 for r in rows)
    enough = [r for r in rows if r.enough]
    assert [r.far for r in enough] == [1e-2, 1e-3, 1e-4]  # 1e-5 needs 100,000 pairs
    thresholds = [r.threshold for r in enough]
    assert thresholds == sorted(thresholds)  # a lower FAR never has a lower threshold
    for r in enough:
        assert r.above <= r.far * r.pairs  # at most far * n impostors reach the threshold
        assert np.count_nonzero(sims >= r.threshold) == r.above
    missing = rows[-1]
    assert (missing.threshold, missing.needed, missing.enough) == (None, 100_000, False)
    assert far_table(np.zeros(0))[0].pairs == 0


def test_a_far_without_enough_pairs_falls_back_to_the_documented_default():
    rng = np.random.default_rng(2)
    small = calibration_from_similarities(
        V, rng.normal(0, 0.1, 500), np.zeros(0), images=100, images_with_several_faces=100
    )
    at_1e2 = choose_threshold(small, V, far=1e-2)
    assert at_1e2.calibrated
    assert at_1e2.far == 1e-2
    assert "500 impostor pairs" in at_1e2.source
    fallback = choose_threshold(small, V)  # default FAR 1e-4 needs 10,000 pairs
    assert (fallback.threshold, fallback.calibrated) == (DEFAULT_THRESHOLD, False)
    assert "not enough pairs for FAR 1e-04" in (fallback.note or "")
    assert "500 impostor pairs, 10000 needed" in (fallback.note or "")
    none = choose_threshold(None, V)
    assert none.threshold == DEFAULT_THRESHOLD
    assert "has no calibration yet" in (none.note or "")
    by_hand = choose_threshold(small, V, min_similarity=0.55)
    assert (by_hand.threshold, by_hand.far) == (0.55, None)
    # a FAR between the tabled ones takes the stricter row
    between = choose_threshold(small, V, far=5e-2)
    assert between.far == 1e-2
    with pytest.raises(ValueError, match="not a false-accept rate"):
        choose_threshold(small, V, far=2.0)
    with pytest.raises(ValueError, match="not a cosine similarity"):
        choose_threshold(small, V, min_similarity=3.0)
    again = Calibration.from_dict(small.to_dict())
    assert again == small


def test_pairs_of_far_apart_persons_skip_persons_that_look_alike():
    rng = np.random.default_rng(3)
    base = unit(rng, 3)
    base[1] = base[0] * 0.9 + base[1] * 0.1  # person b looks like person a
    base = base / np.linalg.norm(base, axis=1, keepdims=True)
    x = np.repeat(base, 4, axis=0)
    persons = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    centroids = {p: base[i : i + 1] for i, p in enumerate("abc")}
    sims = cross_person_similarities(x, persons, centroids, wide_margin=0.5, max_pairs=1000)
    assert len(sims) > 0
    assert (sims <= 0.5).all()  # never a pair of a and b (centroids 0.99 alike)
    assert len(cross_person_similarities(x, [None] * 12, centroids)) == 0


def write_faces(root, groups: list[np.ndarray]) -> IndexLocation:
    """A real face table: photo ``img<g>.jpg`` holds the faces of ``groups[g]``."""
    location = IndexLocation(str(root))
    add_photos(location, [Photo(f"img{g}.jpg", list(faces)) for g, faces in enumerate(groups)])
    return location


def test_the_registry_computes_stores_and_refreshes_the_table(tmp_path):
    rng = np.random.default_rng(4)
    # 150 group photos of 4 strangers (6 pairs each) and 50 single-face photos: 900 impostor pairs
    groups = [unit(rng, 4) for _ in range(150)] + [unit(rng, 1) for _ in range(50)]
    location = write_faces(tmp_path, groups)
    calibration = compute_calibration(location, V)
    assert (calibration.same_image_pairs, calibration.images, calibration.images_with_several_faces) == (
        900,
        150,
        150,
    )
    sampled = compute_calibration(location, V, max_images=20)
    assert (sampled.same_image_pairs, sampled.images) == (120, 20)  # cheap on a large index

    registry = ModelRegistry(location)
    assert registry.calibration(V) is None
    stored = registry.calibrate(V)
    assert registry.calibration(V) == stored
    assert registry.document()["calibrations"][V]["rows"][0]["pairs"] == 900
    # registering the version refreshes it, and the history is kept beside it
    registry.use(V, "alice")
    assert registry.calibration(V) is not None
    assert registry.history()[-1]["to"] == V

    # persons: pairs of far-apart persons are added
    store = PeopleStore(location)
    people = [{"person_id": f"p{i}", "model_version": V, "face_count": 4, "label": None} for i in range(150)]
    for i, row in enumerate(people):
        row["centroids"] = [list(map(float, groups[i][0]))]
    store.upsert("persons", pa.Table.from_pylist(people, schema=SCHEMAS["persons"]))
    store.upsert(
        "face_persons",
        pa.Table.from_pylist(
            [
                {"face_id": fid(f"img{i}.jpg", 0), "person_id": f"p{i}", "model_version": V}
                for i in range(150)
            ],
            schema=SCHEMAS["face_persons"],
        ),
    )
    with_persons = registry.calibrate(V)
    assert with_persons.same_image_pairs == 900
    assert with_persons.cross_person_pairs > 0


def test_an_empty_index_gives_an_empty_calibration(tmp_path):
    calibration = compute_calibration(IndexLocation(str(tmp_path)), V)
    assert calibration.pairs == 0
    assert not any(r.enough for r in calibration.rows)
    assert choose_threshold(calibration, V).threshold == DEFAULT_THRESHOLD


def test_the_models_command_computes_and_shows_the_table(tmp_path, capsys):
    from faceidx.cli import main as cli_main

    rng = np.random.default_rng(5)
    location = write_faces(tmp_path, [unit(rng, 3) for _ in range(40)])
    base = ["--output-uri", location.output_uri, "models", "calibrate"]
    assert cli_main([*base, V, "--show"]) == 2
    assert f"model version {V} has no calibration yet" in capsys.readouterr().err
    assert cli_main([*base, V]) == 0
    text = capsys.readouterr().out
    assert f"calibration of {V}: 120 same-photo pair(s) from 40 photo(s)" in text
    assert "not enough pairs: default 0.40 used" in text  # 120 pairs: only 1e-2 is measured
    assert cli_main([*base, "--show"]) == 0  # the current version (the only one)
    assert "120" in capsys.readouterr().out
    assert cli_main([*base, "nope-000000000000"]) == 2
    assert "'nope-000000000000' is not in the index" in capsys.readouterr().err
