from __future__ import annotations

import pytest

from faceidx.people.actions import CorrectionError, correct
from faceidx.people.clustering import ClusterPolicy
from faceidx.people.identities import run_incremental, run_recluster
from faceidx.store.location import IndexLocation
from faceidx.store.persons import PeopleStore, face_ids_of_person, faces_of_person, persons_of_faces
from tests.plugins.faceidx.people.face_tables import Photo, add_photos, face_of, fid
from tests.plugins.faceidx.store.table_builders import VERSION

POLICY = ClusterPolicy(threshold=0.5, merge_threshold=0.6)


@pytest.fixture
def location(tmp_path):
    return IndexLocation(str(tmp_path / "out"))


def _three_persons(location, start=0, count=3):
    # persons 1, 2, 3: `count` solo photos each; plus a photo with 1 and 2 together
    photos = [
        Photo(f"p{p}-{start + v}.jpg", [face_of(p, start + v)]) for p in (1, 2, 3) for v in range(count)
    ]
    add_photos(location, photos)


def person_of(location, key, index=0):
    return PeopleStore(location).mapping(VERSION).get(fid(key, index))


def test_new_faces_form_persons_and_are_read_once(location):
    _three_persons(location)
    add_photos(location, [Photo("group.jpg", [face_of(1, 50), face_of(2, 50)])])
    first = run_incremental(location, VERSION, POLICY)
    assert first.faces_seen == 11
    assert first.new_persons == 3
    persons = {person_of(location, f"p{p}-0.jpg") for p in (1, 2, 3)}
    assert None not in persons
    assert len(persons) == 3
    assert person_of(location, "group.jpg", 0) == person_of(location, "p1-0.jpg")
    assert person_of(location, "group.jpg", 1) == person_of(location, "p2-0.jpg")
    again = run_incremental(location, VERSION, POLICY)
    assert again.faces_seen == 0, "faces already mapped are not processed again"
    add_photos(location, [Photo("p1-late.jpg", [face_of(1, 99)])])
    late = run_incremental(location, VERSION, POLICY)
    assert late.faces_seen == 1
    assert late.assigned == 1
    assert person_of(location, "p1-late.jpg") == person_of(location, "p1-0.jpg")
    assert sorted(faces_of_person(location, person_of(location, "p1-0.jpg"))) == sorted(
        [fid(f"p1-{v}.jpg", 0) for v in range(3)] + [fid("group.jpg", 0), fid("p1-late.jpg", 0)]
    )


def test_a_single_face_waits_and_a_gated_face_is_never_placed(location):
    add_photos(location, [Photo("stranger.jpg", [face_of(9, 0)])])
    add_photos(location, [Photo("blurry.jpg", [face_of(9, 1)], passed=[False])])
    report = run_incremental(location, VERSION, POLICY)
    assert report.new_persons == 0
    assert report.buffered == 1
    assert report.gated == {"LOW_SHARPNESS": 1}
    rows = {r["face_id"]: r for r in PeopleStore(location).read("face_persons", VERSION).to_pylist()}
    assert rows[fid("stranger.jpg", 0)]["method"] == "buffered"
    assert rows[fid("blurry.jpg", 0)]["method"] == "gated"
    add_photos(location, [Photo("stranger-2.jpg", [face_of(9, 2)])])
    promoted = run_incremental(location, VERSION, POLICY)
    assert promoted.new_persons == 1
    assert person_of(location, "stranger.jpg") == person_of(location, "stranger-2.jpg") is not None
    assert person_of(location, "blurry.jpg") is None


def test_two_faces_of_one_photo_never_share_a_person(location):
    # twins: one identity's faces, twice in each photo
    add_photos(location, [Photo(f"twins-{v}.jpg", [face_of(4, v), face_of(4, 100 + v)]) for v in range(4)])
    run_incremental(location, VERSION, POLICY)
    run_recluster(location, VERSION, POLICY)
    for v in range(4):
        a, b = person_of(location, f"twins-{v}.jpg", 0), person_of(location, f"twins-{v}.jpg", 1)
        assert a is None or a != b


def test_label_merge_and_move_survive_a_full_recluster(location):
    _three_persons(location, count=4)
    run_incremental(location, VERSION, POLICY)
    p1, p2, p3 = (person_of(location, f"p{p}-0.jpg") for p in (1, 2, 3))
    correct(location, VERSION, "label", person_id=p1, label="Ross", actor="test")
    correct(location, VERSION, "merge", person_id=p1, other_person_id=p2, actor="test")
    moved = fid("p3-0.jpg", 0)
    correct(location, VERSION, "move", person_id=p1, face_ids=[moved], actor="test")
    assert person_of(location, "p2-1.jpg") == p1
    report = run_recluster(location, VERSION, POLICY)
    assert report.corrections_replayed == 3
    assert person_of(location, "p1-0.jpg") == p1
    assert person_of(location, "p2-2.jpg") == p1, "the merge survives"
    assert person_of(location, "p3-0.jpg") == p1, "the move survives"
    assert person_of(location, "p3-1.jpg") == p3
    assert PeopleStore(location).labels(VERSION)[p1] == "Ross"
    assert persons_of_faces(location, [moved, fid("p3-1.jpg", 0)]) == {moved: p1, fid("p3-1.jpg", 0): p3}
    events = PeopleStore(location).read("person_events", VERSION)
    assert sorted(events.column("kind").to_pylist()) == ["label", "merge", "move"]


def test_split_survives_a_full_recluster(location):
    _three_persons(location, count=4)
    run_incremental(location, VERSION, POLICY)
    p1 = person_of(location, "p1-0.jpg")
    leaving = [fid("p1-2.jpg", 0), fid("p1-3.jpg", 0)]
    correct(location, VERSION, "split", person_id=p1, face_ids=leaving)
    new = person_of(location, "p1-2.jpg")
    assert new not in (None, p1)
    run_recluster(location, VERSION, POLICY)
    assert person_of(location, "p1-0.jpg") == p1
    assert person_of(location, "p1-3.jpg") == new


def test_corrections_refuse_unknown_persons_and_record_nothing(location):
    _three_persons(location)
    run_incremental(location, VERSION, POLICY)
    with pytest.raises(CorrectionError, match="not known"):
        correct(location, VERSION, "label", person_id="pnope", label="x")
    assert PeopleStore(location).read("person_events", VERSION).num_rows == 0
    assert face_ids_of_person(location, "pnope") is None


def test_labels_carry_over_to_a_new_model_version(location):
    from tests.plugins.faceidx.people import face_tables

    _three_persons(location)
    run_incremental(location, VERSION, POLICY)
    p1 = person_of(location, "p1-0.jpg")
    correct(location, VERSION, "label", person_id=p1, label="Ross")
    new_version = "test-pack-new000000000"
    face_tables.add_photos(
        location,
        [Photo(f"p{p}-{v}.jpg", [face_of(p, 500 + v)]) for p in (1, 2, 3) for v in range(3)],
        version=new_version,
    )
    report = run_recluster(location, new_version, POLICY, carry_from=VERSION)
    assert report.persons == 3
    mapping = PeopleStore(location).mapping(new_version)
    carried = mapping[face_tables.fid("p1-0.jpg", 0, new_version)]
    assert carried == p1
    assert PeopleStore(location).labels(new_version)[p1] == "Ross"
