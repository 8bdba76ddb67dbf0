"""The review of an identities run: items (merge proposals, ambiguous faces), their prompts, each answer
as a correction, and the keep_apart event a rejection records, replayed by every re-cluster."""

from __future__ import annotations

import numpy as np
import pytest

from faceidx.people.clustering import ClusterPolicy
from faceidx.people.corrections import EventKind, PeopleState, PersonEvent, replay
from faceidx.people.identities import events, run_recluster
from faceidx.people.review import (
    ACCEPT,
    REJECT,
    REVIEW_DEFAULT,
    SKIP,
    assign_candidates,
    corrections,
    kept_apart_pairs,
    merge_pairs,
    prompt,
)
from faceidx.people.tasks import apply_review_task, identities_task, review_prompts
from faceidx.store.location import IndexLocation
from faceidx.store.persons import PeopleStore
from tests.plugins.faceidx.people.face_tables import Photo, add_photos, face_of, fid
from tests.plugins.faceidx.store.table_builders import VERSION

E = np.eye(3, dtype=np.float32)


@pytest.mark.parametrize(
    ("touched", "threshold", "apart", "expected"),
    [
        ({"a"}, 0.5, set(), [("a", "b", 0.8)]),
        ({"c"}, 0.5, set(), []),  # c is close to nobody
        ({"a", "b"}, 0.5, set(), [("a", "b", 0.8)]),  # one proposal per pair
        ({"a"}, 0.9, set(), []),
        ({"a"}, 0.5, {frozenset(("a", "b"))}, []),  # kept apart by a user
        ({"c"}, -1.0, set(), [("a", "c", 0.0), ("b", "c", 0.0)]),
    ],
)
def test_merge_pairs(touched, threshold, apart, expected):
    b = np.array([0.8, 0.6, 0.0], dtype=np.float32)
    centroids = np.vstack([E[0], b, E[2]])
    found = merge_pairs(["a", "b", "c"], np.arange(3), centroids, touched, threshold, kept_apart=apart)
    assert [(c.a, c.b, pytest.approx(c.similarity, abs=1e-3)) for c in found] == expected


def test_assign_candidates_name_the_closest_person_and_the_runner_up():
    centroids = np.vstack([E[0], E[0], E[1]])  # person a has two centroids
    face = np.array([[0.7, 0.7, 0.1]], dtype=np.float32)
    [found] = assign_candidates(["f"], face, ["a", "b"], np.array([0, 0, 1]), centroids)
    assert (found.kind, found.face_id, found.a, found.b) == ("assign", "f", "a", "b")
    assert found.similarity == found.runner_up == pytest.approx(0.7)
    assert (
        assign_candidates(
            ["f"], face, ["a", "b"], np.array([0, 0, 1]), centroids, kept_apart={frozenset(("f", "a"))}
        )
        == []
    )


MERGE = {
    "kind": "merge",
    "model_version": "v",
    "person_id": "pA",
    "other_person_id": "pB",
    "similarity": 0.61,
}
ASSIGN = {
    "kind": "assign",
    "model_version": "v",
    "person_id": "pA",
    "face_id": "f" * 32,
    "runner_up_id": "pB",
    "runner_up": 0.4,
    "similarity": 0.42,
}
BY = {"id": "1", "name": "ada"}


@pytest.mark.parametrize(
    ("item", "chosen", "expected"),
    [
        (MERGE, ACCEPT, {"action": "merge", "person_id": "pA", "other_person_id": "pB"}),
        (MERGE, REJECT, {"action": "keep_apart", "person_id": "pA", "other_person_id": "pB"}),
        (ASSIGN, ACCEPT, {"action": "move", "person_id": "pA", "face_ids": ["f" * 32]}),
        (ASSIGN, REJECT, {"action": "keep_apart", "person_id": "pA", "face_ids": ["f" * 32]}),
        (MERGE, SKIP, None),
        (ASSIGN, SKIP, None),
    ],
)
def test_an_answer_becomes_a_correction(item, chosen, expected):
    found = corrections(item, {"chosen_options": [chosen], "responded_by_user": BY})
    assert found == ([] if expected is None else [{**expected, "actor": "review:ada"}])


def test_no_answer_and_the_timeouts_default_record_nothing():
    assert corrections(MERGE, None) == []
    assert corrections(MERGE, {"chosen_options": [REVIEW_DEFAULT], "responded_by_user": None}) == []


def test_prompts_name_both_sides_and_show_a_crop_only_where_a_browser_can_load_it():
    faces = {
        "pA": {"face_id": "x", "image": "s3://photos/a.jpg", "bbox": [1.0, 2.0, 3.0, 4.0], "crop_uri": None},
        "pB": {
            "face_id": "y",
            "image": "s3://photos/b.jpg",
            "bbox": [5.0, 6.0, 7.0, 8.0],
            "crop_uri": "s3://crops/y.jpg",
            "crop_url": "https://crops.s3.amazonaws.com/y.jpg?X-Amz-Signature=1",
        },
    }
    shown = prompt({**MERGE, "faces": faces})
    assert shown["subject"] == "Same person? pA and pB (similarity 0.61)"
    body = shown["body"]
    assert "- person `pA`: photo `s3://photos/a.jpg`, box `[1.0, 2.0, 3.0, 4.0]`" in body
    assert "![face y](https://crops.s3.amazonaws.com/y.jpg?X-Amz-Signature=1)" in body
    assert "**Accept**: merge `pB` into `pA`" in body
    shown = prompt(ASSIGN)
    assert shown["subject"].startswith("Is face ffffffffffff person pA?")
    assert "but `pB` is close too (0.400)" in shown["body"]
    assert "(no face row found)" in shown["body"]
    assert review_prompts({"review": [MERGE, ASSIGN]}) == [prompt(MERGE), prompt(ASSIGN)]
    assert review_prompts({"review": []}) == review_prompts(None) == []


def _state(mapping: dict[str, str | None]) -> PeopleState:
    return PeopleState(dict(mapping), {}, {face: f"img-{face}" for face in mapping})


def test_keep_apart_parts_two_persons_a_recluster_joined_again():
    event = PersonEvent(
        EventKind.KEEP_APART,
        {"person_id": "pA", "faces": ["a1"], "other_person_id": "pB", "other_faces": ["b1", "b2"]},
    )
    state = replay(_state({"a1": "pA", "a2": "pA", "b1": "pA", "b2": "pA"}), [event])
    assert state.person_of_face == {"a1": "pA", "a2": "pA", "b1": "pB", "b2": "pB"}
    apart = replay(_state({"a1": "pA", "b1": "pB", "b2": "pB"}), [event])
    assert apart.person_of_face == {"a1": "pA", "b1": "pB", "b2": "pB"}, "already apart: unchanged"
    assert kept_apart_pairs([event]) == {frozenset(("pA", "pB"))}


def test_keep_apart_keeps_a_face_out_of_a_person():
    event = PersonEvent(EventKind.KEEP_APART, {"person_id": "pA", "faces": ["a1"], "face_ids": ["f"]})
    state = replay(_state({"a1": "pA", "f": "pA"}), [event])
    assert state.person_of_face == {"a1": "pA", "f": None}
    assert kept_apart_pairs([event]) == {frozenset(("f", "pA"))}


@pytest.fixture
def location(tmp_path) -> IndexLocation:
    index = IndexLocation(output_uri=str(tmp_path / "out"))
    add_photos(index, [Photo(f"p{p}-{v}.jpg", [face_of(p, v)]) for p in (1, 2) for v in range(3)])
    return index


def _run(location, **params):
    return identities_task(location, {"threshold": 0.5, **params}, None)


def _answer(chosen):
    return {"chosen_options": [chosen], "responded_by_user": BY}


def test_an_accepted_merge_proposal_merges_the_two_persons(location):
    report = _run(location, merge_proposal=-1.0)  # every pair of persons is proposed
    [item] = report["review"]
    assert item["kind"] == "merge"
    assert set(item["faces"]) == {item["person_id"], item["other_person_id"]}
    assert report["to review in Required Actions"] == 1
    done = apply_review_task(location, report, [_answer(ACCEPT)])
    assert [r["kind"] for r in done["recorded"]] == ["merge"]
    mapping = PeopleStore(location).mapping(VERSION)
    assert len(set(mapping.values())) == 1, "one person now"
    assert PeopleStore(location).read("persons", VERSION).num_rows == 1


def test_a_rejected_merge_is_kept_apart_and_not_proposed_again(location):
    report = _run(location, merge_proposal=-1.0)
    assert len(report["review"]) == 1
    apply_review_task(location, report, [_answer(REJECT)])
    [event] = events(PeopleStore(location), VERSION)
    assert (event.kind, event.actor) == (EventKind.KEEP_APART, "review:ada")
    again = _run(location, merge_proposal=-1.0, full_recluster=True)
    assert again["review"] == [], "a pair a user kept apart is not proposed again"
    assert len({p for p in PeopleStore(location).mapping(VERSION).values() if p}) == 2


def test_skipped_and_unanswered_items_record_nothing(location):
    report = _run(location, merge_proposal=-1.0)
    done = apply_review_task(location, report, [_answer(SKIP)])
    assert done["recorded"] == []
    assert events(PeopleStore(location), VERSION) == []


def test_an_ambiguous_face_is_reviewed_and_an_accept_moves_it(location):
    _run(location)
    add_photos(location, [Photo("p1-new.jpg", [face_of(1, 9)])])
    report = _run(location, margin=2.0)  # no margin can be met: the new face is ambiguous
    [item] = report["review"]
    assert (item["kind"], item["face_id"]) == ("assign", fid("p1-new.jpg", 0))
    mapping = PeopleStore(location).mapping(VERSION)
    assert mapping[item["face_id"]] is None
    assert item["person_id"] == mapping[fid("p1-0.jpg", 0)]
    apply_review_task(location, report, [_answer(ACCEPT)])
    assert PeopleStore(location).mapping(VERSION)[item["face_id"]] == item["person_id"]
    run_recluster(location, VERSION, ClusterPolicy(threshold=0.5))
    assert PeopleStore(location).mapping(VERSION)[item["face_id"]] == item["person_id"], "replayed"


def test_a_crop_is_shown_by_a_url_the_browser_can_load_or_not_at_all(tmp_path):
    from faceidx.people.review import crop_url

    s3 = IndexLocation(
        output_uri="s3://index/out",
        region="eu-west-1",
        credentials={"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"},
    )
    url = crop_url(s3, "s3://crops/faces/x.jpg")
    assert url is not None
    assert "crops" in url
    assert "faces/x.jpg" in url
    assert "Signature=" in url
    assert crop_url(s3, "https://cdn.example/x.jpg") == "https://cdn.example/x.jpg"
    assert crop_url(s3, str(tmp_path / "x.jpg")) is None  # a local file: the browser cannot load it
    assert crop_url(s3, None) is None
