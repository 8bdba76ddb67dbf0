"""The vector index sharded by model version and month: where faces land, syncing one shard, the
search's fan-out and merge, erasure in the right shard, a killed shard sync, the unsharded tables of
earlier releases. The pure decisions are tested on tables of cases."""

from __future__ import annotations

import multiprocessing
import signal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from faceidx.store import vectors
from faceidx.store.location import IndexLocation
from faceidx.store.vector_shards import (
    ShardPlan,
    VectorShard,
    last_change_by_shard,
    merge_top_k,
    month_filter,
    month_in_name,
    plan_shards,
    shard_changes,
)
from faceidx.store.vectors import Match, VectorIndex, index_schema, shard_name, table_name, to_index_rows
from tests.plugins.faceidx.store import shard_workers
from tests.plugins.faceidx.store.vector_faces import MODEL_VERSION, DeltaFaces, face_batch, unit_vectors

D = 32
OCT, NOV = VectorShard(MODEL_VERSION, "2026-10"), VectorShard(MODEL_VERSION, "2026-11")


@pytest.fixture
def faces(tmp_path: Path) -> DeltaFaces:
    return DeltaFaces(tmp_path / "table" / "faces")


@pytest.fixture
def index(tmp_path: Path) -> VectorIndex:
    return VectorIndex(IndexLocation(str(tmp_path)))


def two_months(faces: DeltaFaces, vecs: np.ndarray) -> None:
    """The first half of ``vecs`` indexed in October, the second in November."""
    half = len(vecs) // 2
    faces.append(face_batch(vecs[:half], indexed_date="2026-10-30"))
    faces.append(face_batch(vecs[half:], start=half, indexed_date="2026-11-02"))


def shard_ids(index: VectorIndex, shard: VectorShard) -> set[str]:
    return set(index.db.open_table(shard.name).to_arrow()["face_id"].to_pylist())


def ids(start: int, stop: int) -> set[str]:
    return {f"test-face-{i:06d}" for i in range(start, stop)}


def test_faces_of_two_months_land_in_two_shards(faces, index):
    two_months(faces, unit_vectors(40, D))
    report = index.sync(faces, MODEL_VERSION)
    assert (report.shards, report.rows, report.mode) == (2, 40, "full")
    assert index.shards(MODEL_VERSION) == [OCT, NOV]
    assert OCT.name == f"{table_name(MODEL_VERSION)}__2026_10"
    assert shard_ids(index, OCT) == ids(0, 20)
    assert shard_ids(index, NOV) == ids(20, 40)
    assert index.versions() == {MODEL_VERSION: 40}
    assert index.sync_state(MODEL_VERSION, "2026-10")["delta_version"] == faces.version()


def test_syncing_one_shard_leaves_the_other_untouched(faces, index):
    vecs = unit_vectors(60, D, seed=1)
    two_months(faces, vecs[:40])
    assert index.shards_to_sync(faces) == [OCT, NOV]
    index.sync_shard(faces, OCT)
    assert index.shards_to_sync(faces) == [NOV]
    assert index.shards(MODEL_VERSION) == [OCT], "November's table is not written by October's sync"
    index.sync_shard(faces, NOV)
    assert index.shards_to_sync(faces) == []

    faces.append(face_batch(vecs[40:], start=40, indexed_date="2026-11-20"))
    plans = {plan.shard: plan for plan in index.plan_shards(faces, MODEL_VERSION)}
    assert (plans[NOV].needs_sync, plans[OCT].needs_sync) == (True, False)
    assert plans[OCT].reason.startswith("no change since")
    october = index.db.open_table(OCT.name).version
    october_state = index.sync_state(MODEL_VERSION, "2026-10")

    report = index.sync_shard(faces, NOV)
    assert (report.month, report.mode, report.upserted, report.rows) == ("2026-11", "cdf", 20, 40)
    assert index.db.open_table(OCT.name).version == october, "October's table got no new version"
    assert index.sync_state(MODEL_VERSION, "2026-10") == october_state
    assert shard_ids(index, NOV) == ids(20, 60)

    # the sync of every shard records October current without writing its table
    everything = index.sync(faces, MODEL_VERSION)
    assert everything.mode == "unchanged"
    assert index.sync_state(MODEL_VERSION, "2026-10")["delta_version"] == faces.version()
    assert index.db.open_table(OCT.name).version == october


def test_a_search_merges_across_shards_and_equals_one_exact_index(faces, index):
    vecs = unit_vectors(300, D, seed=2)
    two_months(faces, vecs)
    index.sync(faces, MODEL_VERSION)
    # a query whose best match is in October's shard, asked after November's
    query = vecs[7] + 0.05 * unit_vectors(1, D, seed=9)[0]
    best = index.search(query[None, :], model_version=MODEL_VERSION, k=1)[0][0]
    assert best.face_id == "test-face-000007"

    queries = unit_vectors(25, D, seed=3)
    truth = np.argsort(-(queries @ vecs.T), axis=1)[:, :10]
    found = index.search(queries, model_version=MODEL_VERSION, k=10)
    for row, matches in enumerate(found):
        assert [int(m.face_id[-6:]) for m in matches] == truth[row].tolist()
    months = {int(m.face_id[-6:]) < 150 for matches in found for m in matches}
    assert months == {True, False}, "both shards contribute"


def test_ann_shards_keep_recall_against_exact(faces, index, monkeypatch):
    monkeypatch.setattr(vectors, "ANN_MIN_ROWS", 500)
    rng = np.random.default_rng(5)
    centres = unit_vectors(200, D, seed=6)
    vecs = centres[np.arange(1600) % 200] + 0.35 * rng.normal(size=(1600, D)).astype(np.float32) / np.sqrt(D)
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    two_months(faces, vecs)
    assert index.sync(faces, MODEL_VERSION).index == "ivf_hnsw_sq built"
    assert index.is_indexed(MODEL_VERSION)
    queries = vecs[::40] + 0.02 * rng.normal(size=(40, D)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = index.search(queries, model_version=MODEL_VERSION, k=10, exact=True)
    ann = index.search(queries, model_version=MODEL_VERSION, k=10)
    hits = sum(len({m.face_id for m in a} & {m.face_id for m in e}) for a, e in zip(ann, exact, strict=True))
    assert hits / 400 >= 0.9


def test_erasure_deletes_from_the_shard_that_holds_the_face_and_locate_checks_every_shard(faces, index):
    two_months(faces, unit_vectors(40, D, seed=4))
    index.sync(faces, MODEL_VERSION)
    november = index.db.open_table(NOV.name).version
    assert index.locate(["test-face-000003", "test-face-000030"]) == {
        OCT.name: ["test-face-000003"],
        NOV.name: ["test-face-000030"],
    }
    assert index.delete(["test-face-000003"]) == 1
    assert shard_ids(index, OCT) == ids(0, 20) - {"test-face-000003"}
    assert shard_ids(index, NOV) == ids(20, 40)
    assert index.db.open_table(NOV.name).version == november, "nothing deleted from November"
    assert index.locate(["test-face-000003"]) == {OCT.name: [], NOV.name: []}


def test_a_killed_sync_of_one_shard_does_not_break_the_other(faces, index, tmp_path):
    vecs = unit_vectors(80, D, seed=7)
    two_months(faces, vecs[:40])
    index.sync(faces, MODEL_VERSION)
    faces.append(face_batch(vecs[40:60], start=40, indexed_date="2026-10-31"))
    faces.append(face_batch(vecs[60:], start=60, indexed_date="2026-11-03"))

    # October's sync is SIGKILLed after writing its table, before recording the Delta version
    child = multiprocessing.get_context("spawn").Process(
        target=shard_workers.sync_shard_and_die, args=(str(tmp_path), "2026-10")
    )
    child.start()
    child.join(120)
    assert child.exitcode == -signal.SIGKILL
    assert index.sync_state(MODEL_VERSION, "2026-10")["delta_version"] < faces.version()

    assert index.sync_shard(faces, NOV).rows == 40
    found = VectorIndex(index.location).search(vecs[60:65], model_version=MODEL_VERSION, k=1)
    assert [m[0].face_id for m in found] == [f"test-face-{i:06d}" for i in range(60, 65)]

    assert index.shards_to_sync(faces) == [OCT], "the killed shard is still due"
    rerun = index.sync_shard(faces, OCT)
    assert (rerun.mode, rerun.rows) == ("cdf", 40)  # the rerun applies the changes again: idempotent
    assert shard_ids(index, OCT) == ids(0, 20) | ids(40, 60)
    assert index.shards_to_sync(faces) == []


def test_an_unsharded_table_of_an_earlier_release_answers_until_the_sync_replaces_it(faces, index):
    vecs = unit_vectors(40, D, seed=8)
    two_months(faces, vecs)
    rows = to_index_rows(faces.read(model_version=MODEL_VERSION, columns=[*vectors.READ_COLUMNS]))
    schema = index_schema(D, MODEL_VERSION)
    index.db.create_table(table_name(MODEL_VERSION), data=rows.cast(schema), schema=schema)
    index.location.write_json(index._state_uri(MODEL_VERSION), {"delta_version": faces.version()})
    assert index.versions() == {MODEL_VERSION: 40}
    assert index.search(vecs[25:26], model_version=MODEL_VERSION, k=1)[0][0].face_id == "test-face-000025"

    index.sync_shard(faces, OCT)  # a shard built alone does not take over: the old table still answers
    assert index.versions() == {MODEL_VERSION: 40}
    assert table_name(MODEL_VERSION) in index._table_names()

    report = index.sync(faces, MODEL_VERSION)
    assert "dropped" in report.note
    assert set(index._table_names()) == {OCT.name, NOV.name}
    assert index.sync_state(MODEL_VERSION) is None
    assert index.search(vecs[25:26], model_version=MODEL_VERSION, k=1)[0][0].face_id == "test-face-000025"


def test_drop_version_drops_every_shard(faces, index):
    two_months(faces, unit_vectors(10, D))
    index.sync(faces, MODEL_VERSION)
    index.drop_version(MODEL_VERSION)
    assert index.versions() == {}
    assert index.sync_state(MODEL_VERSION, "2026-11") is None


# -- the pure decisions -------------------------------------------------------------------------------


def test_shard_names_and_month_filters():
    assert shard_name("pack.v2", "2026-11") == "faces__pack.v2__2026_11"
    assert month_in_name("faces__pack.v2__2026_11", "pack.v2") == "2026-11"
    assert month_in_name("faces__pack.v2", "pack.v2") is None
    assert month_in_name("faces__pack.v2__2026_11", "pack") is None
    assert month_filter("2026-12") == "indexed_date >= '2026-12-01' AND indexed_date < '2027-01-01'"
    with pytest.raises(ValueError, match="YYYY-MM"):
        VectorShard("v", "2026-13")


def _feed(rows: list[tuple[str, str, int, str]]) -> pa.Table:
    return pa.table(
        {
            "face_id": [r[0] for r in rows],
            "_change_type": [r[1] for r in rows],
            "_commit_version": pa.array([r[2] for r in rows], pa.int64()),
            "indexed_date": [r[3] for r in rows],
            "model_version": ["v"] * len(rows),
            "face_index": pa.array([0] * len(rows), pa.int32()),
            "embedding": [[1.0, 0.0]] * len(rows),
            "status": ["ok"] * len(rows),
        }
    )


@pytest.mark.parametrize(
    ("feed", "month", "upserted", "deleted"),
    [
        ([("a", "insert", 1, "2026-11-02")], "2026-11", ["a"], []),
        ([("a", "insert", 1, "2026-11-02")], "2026-10", [], []),
        ([("a", "insert", 1, "2026-10-02"), ("a", "delete", 2, "2026-10-02")], "2026-10", [], ["a"]),
        # a face rewritten into another month: out of the old shard, into the new one
        (
            [("a", "update_preimage", 2, "2026-10-31"), ("a", "update_postimage", 2, "2026-11-01")],
            "2026-10",
            [],
            ["a"],
        ),
        (
            [("a", "update_preimage", 2, "2026-10-31"), ("a", "update_postimage", 2, "2026-11-01")],
            "2026-11",
            ["a"],
            [],
        ),
        ([("a", "delete", 2, "2026-10-31"), ("a", "insert", 3, "2026-11-01")], "2026-10", [], ["a"]),
    ],
)
def test_a_shard_applies_only_its_months_share_of_the_feed(feed, month, upserted, deleted):
    ups, dels = shard_changes(_feed(feed), month)
    assert ups["face_id"].to_pylist() == upserted
    assert dels == deleted


def test_the_last_change_of_each_shard():
    feed = _feed(
        [("a", "insert", 3, "2026-10-02"), ("b", "insert", 5, "2026-11-02"), ("c", "delete", 4, "2026-10-09")]
    )
    assert last_change_by_shard(feed) == {("v", "2026-10"): 4, ("v", "2026-11"): 5}


S10, S11, S12 = VectorShard("v", "2026-10"), VectorShard("v", "2026-11"), VectorShard("v", "2026-12")


@pytest.mark.parametrize(
    ("recorded", "last_change", "expected"),
    [
        ({}, {}, {S10: "new", S11: "new", S12: "new"}),
        ({S10: 9, S11: 9, S12: 9}, {}, {}),
        ({S10: 7, S11: 7, S12: 7}, {("v", "2026-11"): 8}, {S11: "changed since 7"}),
        (
            {S10: 7, S11: 9, S12: 7},
            None,
            {S10: "the change data feed cannot answer", S12: "the change data feed cannot answer"},
        ),
        ({S10: 12, S11: 9, S12: 9}, {}, {S10: "the face table is at 9, below the recorded 12: reload"}),
    ],
)
def test_which_shards_need_a_sync(recorded, last_change, expected):
    plans = plan_shards(
        9,
        {"v": ["2026-10", "2026-11"]},
        {"v": ["2026-10", "2026-11", "2026-12"]} if recorded else {},
        recorded,
        last_change,
    )
    if not recorded:  # December has no faces in the table and no shard yet: nothing to plan for it
        expected = {S10: "new", S11: "new"}
    assert {p.shard: p.reason for p in plans if p.needs_sync} == expected
    assert all(isinstance(p, ShardPlan) and p.target == 9 for p in plans)


def _match(face: str, similarity: float) -> Match:
    return Match(face, "b", "k", 0, (), similarity, "v")


def test_the_merge_keeps_the_global_top_k_and_each_face_once():
    october = [_match("a", 0.9), _match("b", 0.5)]
    november = [_match("c", 0.8), _match("a", 0.7), _match("d", 0.5)]
    merged = merge_top_k([october, november], 3)
    assert [(m.face_id, m.similarity) for m in merged] == [("a", 0.9), ("c", 0.8), ("b", 0.5)]
    assert merge_top_k([[], []], 3) == []
