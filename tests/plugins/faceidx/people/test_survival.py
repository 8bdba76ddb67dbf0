"""People survive reruns and model switches, proven on the asset photos with the real pack.

The labelled photos of expected.json are indexed with the small asset pack, clustered, and corrected
(label, merge, split, move: faces chosen by their identity); then re-clustered in full; then indexed
again with a second pack (the same models, one file re-serialised: a new model version) and
re-clustered with ``carry_from``. :func:`faceidx.people.survival.survival` counts what was lost.
"""

from __future__ import annotations

import io
import json
import uuid
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from faceidx.people.actions import correct
from faceidx.people.clustering import MOBILEFACENET_128D
from faceidx.people.identities import run_incremental, run_recluster
from faceidx.people.survival import PeopleSnapshot, compare, snapshot, survival
from faceidx.search.photo import PhotoEmbedder
from faceidx.store.location import IndexLocation
from faceidx.store.persons import PeopleStore
from faceidx.store.table import FaceTable
from faceidx_dev.local.demo_inputs import second_model_pack
from faceidx_worker import rows as worker_rows
from tests.plugins.faceidx.store.table_builders import Image, rows_of, write_bytes
from tests.support.worker_harness import make_model_pack

POLICY = MOBILEFACENET_128D
DETECTION = {"FACEIDX_DET_THRESH": "0.7"}  # as the people tests embed the labelled photos (conftest.py)
Identified = dict[str, list[str]]  # identity -> face ids (one version), in expected.json's photo order
SMALL_OBAMA = 2  # obama.jpg, obama2.jpg, obama_small.jpg, two_people.jpg, obama_and_biden.jpg


def index_labelled(location: IndexLocation, assets: Path, embedder: PhotoEmbedder) -> Identified:
    """The labelled photos' faces as face rows of ``embedder``'s version; identity -> face ids."""
    expected = json.loads((assets / "expected.json").read_text())["images"]
    rows, by_identity = [], {}
    for name, spec in expected.items():
        if "ids" not in spec:
            continue
        found = sorted(embedder.faces(str(assets / "images" / name)), key=lambda face: float(face.bbox[0]))
        assert len(found) == len(spec["ids"]), name
        image = Image(f"people/{name}", faces=len(found), dim=128, version=embedder.model_version)
        for row, face, who in zip(rows_of(image), found, spec["ids"], strict=True):
            row["embedding"] = [float(v) for v in face.embedding]
            row["bbox"] = [float(v) for v in face.bbox]
            by_identity.setdefault(who, []).append(row["face_id"])
            rows.append(row)
    buffer = io.BytesIO()
    pq.write_table(worker_rows.rows_to_table(rows, 128), buffer)
    write_bytes(
        location, f"{location.landing_uri}/dt=2026-12-06/part-{uuid.uuid4()}.parquet", buffer.getvalue()
    )
    FaceTable.open(location).ingest()
    return by_identity


@pytest.fixture(scope="module")
def packs(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[PhotoEmbedder, PhotoEmbedder]:
    first = make_model_pack(tmp_path_factory.mktemp("pack") / "testpack", assets_dir)
    second = second_model_pack(first, tmp_path_factory.mktemp("pack2") / "testpack")
    return (
        PhotoEmbedder.from_env({"FACEIDX_MODEL_DIR": str(first), **DETECTION}),
        PhotoEmbedder.from_env({"FACEIDX_MODEL_DIR": str(second), **DETECTION}),
    )


def person(location: IndexLocation, version: str, face: str) -> str | None:
    return PeopleStore(location).mapping(version).get(face)


def correct_by_identity(location: IndexLocation, version: str, faces: Identified) -> None:
    """label, merge, split, move; each names faces by who is in them."""

    def of(who: str, i: int = 0) -> str:
        pid = person(location, version, faces[who][i])
        assert pid is not None, f"{who}'s face {i} is in no person"
        return pid

    for who, label in [("obama", "Barack Obama"), ("biden", "Joe Biden"), ("ross", "Ross Geller")]:
        correct(location, version, "label", person_id=of(who), label=label)
    # a merge the clustering would never make (no edge between the two): only the user's event keeps
    # it; right or wrong, a correction is the user's to undo. (Two persons seen in one photo, like
    # Ross and Monica, cannot be one: the merge would send one face of each shared photo to the buffer.)
    correct(location, version, "merge", person_id=of("biden"), other_person_id=of("rob_lowe"))
    # the small, blurry Obama split off into a person of its own, then labelled
    small = faces["obama"][SMALL_OBAMA]
    correct(location, version, "split", person_id=of("obama"), face_ids=[small])
    correct(location, version, "label", person_id=person(location, version, small), label="Obama (unsure)")
    # Rob Lowe's second photo (now in Biden's person) back to the buffer; Joey's face of t1.jpg into
    # Chandler (whose own face of t1.jpg then leaves for the buffer: one face per photo per person)
    correct(location, version, "move", person_id=None, face_ids=[faces["rob_lowe"][1]])
    correct(location, version, "move", person_id=of("chandler"), face_ids=[faces["joey"][0]])


def assert_effects(
    after: PeopleSnapshot, faces: Identified, new_of_old: dict[str, str] | None = None
) -> None:
    """The corrections' effects, spelled out on the faces by identity (beside the counted check)."""

    def p(who: str, i: int = 0) -> str | None:
        face = faces[who][i]
        return after.person_of_face[new_of_old[face] if new_of_old else face]

    assert after.labels[p("biden")] == "Joe Biden"
    assert after.labels[p("ross")] == "Ross Geller"
    assert p("biden") == p("biden", 1) == p("biden", 2) == p("rob_lowe")  # merged
    others = [p("obama", i) for i in range(len(faces["obama"])) if i != SMALL_OBAMA]
    assert p("obama", SMALL_OBAMA) not in others
    assert len(set(others)) == 1
    assert after.labels[others[0]] == "Barack Obama"
    assert after.labels[p("obama", SMALL_OBAMA)] == "Obama (unsure)"
    assert p("rob_lowe", 1) is None  # moved to the buffer
    assert p("joey", 0) == p("chandler", 1) != p("joey", 1)  # moved into Chandler
    assert p("chandler", 0) is None


def test_labels_and_corrections_survive_a_recluster_and_a_model_switch(tmp_path, packs, assets_dir):
    first, second = packs
    assert first.model_version != second.model_version
    location = IndexLocation(str(tmp_path / "out"))
    old = first.model_version
    faces = index_labelled(location, assets_dir, first)
    run_incremental(location, old, POLICY)
    run_recluster(location, old, POLICY)
    correct_by_identity(location, old, faces)
    corrected = snapshot(location, old)
    assert_effects(corrected, faces)

    report = run_recluster(location, old, POLICY)
    assert report.corrections_replayed == 8
    rerun = survival(location, corrected, old)
    assert (rerun.labels, rerun.corrections) == (4, 8)
    assert (rerun.labels_lost, rerun.corrections_lost) == ([], [])
    assert_effects(snapshot(location, old), faces)

    new = second.model_version
    new_faces = index_labelled(location, assets_dir, second)
    new_of_old = {f: n for who in faces for f, n in zip(faces[who], new_faces[who], strict=True)}
    switch = run_recluster(location, new, POLICY, carry_from=old)
    assert switch.corrections_replayed == 8
    carried = survival(location, corrected, new)
    assert carried.line() == (
        "labels 4 -> 4 (0 lost), corrections 8 replayed (0 lost) [label 4, merge 1, move 2, split 1]"
    )
    assert_effects(snapshot(location, new), faces, new_of_old)
    # the carried corrections are the new version's own: a later re-cluster keeps them too
    run_recluster(location, new, POLICY)
    assert survival(location, corrected, new).lost == 0
    run_recluster(location, new, POLICY, carry_from=old)  # carried twice: each event once
    assert PeopleStore(location).read("person_events", new).num_rows == 8


def test_compare_counts_a_lost_label_and_a_lost_merge():
    from faceidx.people.corrections import EventKind, PersonEvent

    before = PeopleSnapshot("v1", {"a": "p1", "b": "p1", "c": "p2"}, {"p1": "Ross"})
    merge = PersonEvent(
        EventKind.MERGE, {"person_id": "p1", "other_person_id": "p3", "faces": ["a"], "other_faces": ["b"]}
    )
    label = PersonEvent(EventKind.LABEL, {"person_id": "p1", "label": "Ross", "faces": ["a"]})
    undone = PeopleSnapshot("v2", {"A": "q1", "B": "q2", "C": "q3"}, {})
    report = compare(before, undone, [label, merge], {"a": "A", "b": "B", "c": "C"})
    assert report.labels_lost == ["Ross"]
    assert Counter(lost.split()[0] for lost in report.corrections_lost) == {"label": 1, "merge": 1}
    kept = PeopleSnapshot("v2", {"A": "q1", "B": "q1", "C": "q3"}, {"q1": "Ross"})
    assert compare(before, kept, [label, merge], {"a": "A", "b": "B", "c": "C"}).lost == 0


@pytest.mark.parametrize("moved", [1, 2])
@pytest.mark.parametrize("name", list("abcdefgh"))  # other face ids: other person ids, other id orders
def test_a_face_moved_into_a_person_does_not_carry_that_persons_id_away(tmp_path, moved, name):
    """Persons 1 and 2 photographed together twice; one face of x.jpg moved into the other person.
    Were the moved face to vote in the re-cluster's id matching, the moved face's look-alikes and the
    target's own faces would tie for the target's id, and by id order the label could follow the wrong
    faces (found by ``make demo``: Joey of t1.jpg moved into Chandler). The cluster left without an
    id must not derive the one taken (the target was first named after the same smallest face)."""
    from faceidx.people.clustering import ClusterPolicy
    from tests.plugins.faceidx.people.face_tables import Photo, add_photos, face_of, fid
    from tests.plugins.faceidx.store.table_builders import VERSION

    policy = ClusterPolicy(threshold=0.5, merge_threshold=0.6)
    location = IndexLocation(str(tmp_path / "out"))
    x, y = f"{name}-x.jpg", f"{name}-y.jpg"
    add_photos(location, [Photo(key, [face_of(1, v), face_of(2, v)]) for v, key in enumerate((x, y))])
    run_recluster(location, VERSION, policy)
    target = person(location, VERSION, fid(y, 2 - moved))
    assert target is not None
    correct(location, VERSION, "label", person_id=target, label="the target")
    correct(location, VERSION, "move", person_id=target, face_ids=[fid(x, moved - 1)])
    before = snapshot(location, VERSION)
    run_recluster(location, VERSION, policy)
    kept = survival(location, before, VERSION)
    assert (kept.labels_lost, kept.corrections_lost) == ([], [])
    assert person(location, VERSION, fid(y, 2 - moved)) == target
    assert person(location, VERSION, fid(y, 0)) != person(
        location, VERSION, fid(y, 1)
    )  # never one id for two


def test_a_new_cluster_never_derives_an_id_already_taken():
    from faceidx.people.matching import match_clusters, new_person_id

    named_after_a = new_person_id("v1", ["a", "b"])  # the person was first named after face "a"
    # "c" keeps the id; the cluster of "a" (whose own vote a correction took away) derives a new one
    matching = match_clusters({"c": 0, "d": 0, "a": 1, "e": 1}, {"c": named_after_a}, "v1")
    assert matching.person_of_label[0] == named_after_a
    assert matching.person_of_label[1] != named_after_a
    assert (
        matching.person_of_label[1]
        == match_clusters({"c": 0, "d": 0, "a": 1, "e": 1}, {"c": named_after_a}, "v1").person_of_label[1]
    )
