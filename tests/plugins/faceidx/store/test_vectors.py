"""The LanceDB vector index on synthetic embeddings: sync (full, change feed, set difference), search,
delete, purge, versions. Real embeddings are in test_search.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from faceidx.store import vectors
from faceidx.store.location import IndexLocation
from faceidx.store.vectors import (
    UnknownModelVersionError,
    VectorIndex,
    latest_changes,
    shard_name,
    table_name,
)
from tests.plugins.faceidx.store.vector_faces import (
    INDEXED_DATE,
    MODEL_VERSION,
    DeltaFaces,
    face_batch,
    unit_vectors,
)

D = 32
MONTH = INDEXED_DATE[:7]


@pytest.fixture
def faces(tmp_path: Path) -> DeltaFaces:
    return DeltaFaces(tmp_path / "table" / "faces")


@pytest.fixture
def index(tmp_path: Path) -> VectorIndex:
    return VectorIndex(IndexLocation(str(tmp_path)))


def ids_in(index: VectorIndex, version: str = MODEL_VERSION) -> set[str]:
    return set(index.face_ids(version))


def files_holding(root: Path, vector: np.ndarray) -> list[Path]:
    needle = np.asarray(vector, dtype=np.float32).tobytes()
    return [path for path in root.rglob("*") if path.is_file() and needle in path.read_bytes()]


def test_first_sync_loads_then_the_change_feed_adds_and_deletes(faces, index):
    vecs = unit_vectors(120, D)
    faces.append(face_batch(vecs[:100]))
    first = index.sync(faces, MODEL_VERSION)
    assert (first.mode, first.upserted, first.rows) == ("full", 100, 100)

    faces.append(face_batch(vecs[100:], start=100))
    faces.delete("face_id = 'test-face-000003'")
    second = index.sync(faces, MODEL_VERSION)
    assert (second.mode, second.upserted, second.deleted, second.rows) == ("cdf", 20, 1, 119)
    assert second.from_delta_version == first.to_delta_version
    assert "test-face-000003" not in ids_in(index)
    assert "test-face-000119" in ids_in(index)

    again = index.sync(faces, MODEL_VERSION)
    assert again.mode == "unchanged"
    assert again.rows == 119
    assert index.sync_state(MODEL_VERSION, MONTH)["delta_version"] == faces.version()


def test_a_vacuumed_feed_falls_back_to_the_set_difference(faces, index):
    vecs = unit_vectors(60, D)
    faces.append(face_batch(vecs[:40]))
    index.sync(faces, MODEL_VERSION)
    faces.append(face_batch(vecs[40:], start=40))
    faces.delete("face_id IN ('test-face-000045', 'test-face-000001')")  # rewrites the appended file
    faces.purge_history()  # the files the feed would read are gone
    report = index.sync(faces, MODEL_VERSION)
    assert report.mode == "diff"
    assert "change data feed unusable" in report.note
    assert ids_in(index) == {f"test-face-{i:06d}" for i in range(60)} - {
        "test-face-000045",
        "test-face-000001",
    }


def test_search_returns_the_exact_cosine_and_honours_quality_only(faces, index):
    vecs = unit_vectors(50, D, seed=1)
    quality = [i % 2 == 0 for i in range(50)]
    faces.append(face_batch(vecs, quality=quality))
    index.sync(faces, MODEL_VERSION)
    query = vecs[7] + 0.05 * unit_vectors(1, D, seed=9)[0]
    expected = vecs @ (query / np.linalg.norm(query))

    matches = index.search(query[None, :], model_version=MODEL_VERSION, k=5)[0]
    assert next(m.face_id for m in matches) == "test-face-000007"
    assert [m.face_id for m in matches] == [f"test-face-{i:06d}" for i in np.argsort(-expected)[:5]]
    assert np.allclose([m.similarity for m in matches], np.sort(expected)[::-1][:5], atol=1e-5)
    assert matches[0].bbox == (1.0, 2.0, 30.0, 40.0)
    assert matches[0].model_version == MODEL_VERSION

    good = index.search(query[None, :], model_version=MODEL_VERSION, k=5, quality_only=True)[0]
    assert all(int(m.face_id[-6:]) % 2 == 0 for m in good)
    assert len(good) == 5
    assert good[0].face_id != "test-face-000007"  # face 7 failed the quality checks


def test_an_unknown_version_and_a_wrong_dimension_are_refused_by_name(faces, index):
    faces.append(face_batch(unit_vectors(5, D)))
    index.sync(faces, MODEL_VERSION)
    with pytest.raises(UnknownModelVersionError, match=f"'other-v2'.*holds: {MODEL_VERSION}"):
        index.search(unit_vectors(1, D), model_version="other-v2")
    with pytest.raises(ValueError, match=r"16 dimensions.*holds 32-d"):
        index.search(unit_vectors(1, 16), model_version=MODEL_VERSION)


def test_delete_removes_faces_from_every_version_and_purge_removes_their_bytes(faces, index, tmp_path):
    vecs = unit_vectors(400, D, seed=3)
    faces.append(face_batch(vecs[:200]))
    faces.append(face_batch(vecs[200:], model_version="otherpack-v2"))
    index.sync(faces, MODEL_VERSION)
    index.sync(faces, "otherpack-v2")
    assert index.versions() == {MODEL_VERSION: 200, "otherpack-v2": 200}
    victim = vecs[5]
    old_version = index.db.open_table(shard_name(MODEL_VERSION, MONTH)).version

    removed = index.delete(["test-face-000005", "othe-face-000010", "no-such-face"])
    assert removed == 2
    assert index.versions() == {MODEL_VERSION: 199, "otherpack-v2": 199}
    assert "test-face-000005" not in ids_in(index)
    assert files_holding(tmp_path / "vectors", victim), (
        "Lance keeps a deleted row in its file until a rewrite"
    )

    report = index.purge_history()
    assert files_holding(tmp_path / "vectors", victim) == []
    assert files_holding(tmp_path / "vectors", vecs[6]), "live rows stay"
    assert report.versions_removed[shard_name(MODEL_VERSION, MONTH)] >= 1
    table = index.db.open_table(shard_name(MODEL_VERSION, MONTH))
    assert len(table.list_versions()) == 1
    with pytest.raises(ValueError):
        table.checkout(old_version)
    # still searchable, still without the erased face
    found = index.search(victim[None, :], model_version=MODEL_VERSION, k=3)[0]
    assert "test-face-000005" not in {m.face_id for m in found}


def test_drop_version_removes_only_that_version(faces, index):
    faces.append(face_batch(unit_vectors(10, D)))
    faces.append(face_batch(unit_vectors(10, D, seed=2), model_version="otherpack-v2"))
    index.sync(faces, MODEL_VERSION)
    index.sync(faces, "otherpack-v2")
    index.drop_version("otherpack-v2")
    assert index.versions() == {MODEL_VERSION: 10}
    assert index.sync_state("otherpack-v2", MONTH) is None
    with pytest.raises(UnknownModelVersionError):
        index.drop_version("otherpack-v2")


def test_a_big_enough_version_gets_an_hnsw_index_with_exact_reranked_similarity(faces, index, monkeypatch):
    monkeypatch.setattr(vectors, "ANN_MIN_ROWS", 1500)
    rng = np.random.default_rng(5)
    centres = unit_vectors(300, D, seed=6)
    vecs = centres[np.arange(2000) % 300] + 0.35 * rng.normal(size=(2000, D)).astype(np.float32) / np.sqrt(D)
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    faces.append(face_batch(vecs[:1000]))
    assert index.sync(faces, MODEL_VERSION).index == "flat"
    faces.append(face_batch(vecs[1000:], start=1000))
    assert index.sync(faces, MODEL_VERSION).index == "ivf_hnsw_sq built"
    assert index.is_indexed(MODEL_VERSION)

    queries = vecs[:40] + 0.02 * rng.normal(size=(40, D)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = queries @ vecs.T
    results = index.search(queries, model_version=MODEL_VERSION, k=10)
    hits = 0
    for row, matches in enumerate(results):
        truth = set(np.argsort(-exact[row])[:10])
        hits += len(truth & {int(m.face_id[-6:]) for m in matches})
        for match in matches:  # the returned similarity is the exact cosine, not a PQ estimate
            assert match.similarity == pytest.approx(exact[row, int(match.face_id[-6:])], abs=1e-5)
    assert hits / 400 >= 0.9

    faces.append(face_batch(unit_vectors(100, D, seed=8), start=2000))
    assert index.sync(faces, MODEL_VERSION).index == "ivf_hnsw_sq optimised"
    assert index_types(index) == ["IvfHnswSq"]
    # the index still answers with the added faces
    added = index.search(unit_vectors(100, D, seed=8)[:5], model_version=MODEL_VERSION, k=1)
    assert [m[0].face_id[-6:] for m in added] == [f"{2000 + i:06d}" for i in range(5)]


def index_types(index: VectorIndex, version: str = MODEL_VERSION) -> list[str]:
    table = index.db.open_table(shard_name(version, MONTH))
    return [str(config.index_type) for config in table.list_indices()]


def test_an_ivf_pq_index_of_an_earlier_release_is_replaced_on_the_next_sync(faces, index, monkeypatch):
    monkeypatch.setattr(vectors, "ANN_MIN_ROWS", 1500)
    faces.append(face_batch(unit_vectors(2000, D, seed=9)))
    index.sync(faces, MODEL_VERSION)
    lance_table = index.db.open_table(shard_name(MODEL_VERSION, MONTH))
    lance_table.create_index(
        metric="cosine", vector_column_name="vector", index_type="IVF_PQ", num_partitions=4, num_sub_vectors=4
    )
    state = index.sync_state(MODEL_VERSION, MONTH)
    assert state is not None
    state.pop("index_type")
    index.location.write_json(index._state_uri(MODEL_VERSION, MONTH), state)  # what an earlier release wrote
    assert index_types(index) == ["IvfPq"]

    faces.append(face_batch(unit_vectors(10, D, seed=10), start=2000))
    assert index.sync(faces, MODEL_VERSION).index == "ivf_hnsw_sq retrained"
    assert index_types(index) == ["IvfHnswSq"]
    assert index.sync_state(MODEL_VERSION, MONTH)["index_type"] == "ivf_hnsw_sq"


@pytest.mark.parametrize(
    ("version", "name"),
    [
        ("buffalo_l-0123456789ab", "faces__buffalo_l-0123456789ab"),
        ("pack.v2", "faces__pack.v2"),
        ("a/b c", "faces__a_b_c_" + __import__("hashlib").sha256(b"a/b c").hexdigest()[:8]),
    ],
)
def test_table_names_keep_versions_apart(version, name):
    assert table_name(version) == name
    assert table_name("a/b") != table_name("a_b")


def _feed(rows: list[tuple[str, str, int]]) -> pa.Table:
    return pa.table(
        {
            "face_id": [r[0] for r in rows],
            "_change_type": [r[1] for r in rows],
            "_commit_version": pa.array([r[2] for r in rows], pa.int64()),
            "face_index": pa.array([0] * len(rows), pa.int32()),
            "embedding": [[1.0, 0.0]] * len(rows),
            "status": ["ok"] * len(rows),
        }
    )


@pytest.mark.parametrize(
    ("feed", "upserted", "deleted"),
    [
        ([("a", "insert", 1)], ["a"], []),
        ([("a", "insert", 1), ("a", "delete", 2)], [], ["a"]),
        ([("a", "delete", 2), ("a", "insert", 3)], ["a"], []),
        ([("a", "update_preimage", 2), ("a", "update_postimage", 2)], ["a"], []),
        ([("a", "insert", 1), ("b", "delete", 1), ("c", "update_preimage", 1)], ["a"], ["b"]),
    ],
)
def test_the_last_change_of_each_face_decides(feed, upserted, deleted):
    ups, dels = latest_changes(_feed(feed))
    assert ups["face_id"].to_pylist() == upserted
    assert dels == deleted


def test_sync_follows_the_real_face_table_through_ingest_delete_and_compaction(tmp_path):
    from faceidx.store.table import FaceTable
    from tests.plugins.faceidx.erasure.test_forget import V1, image_rows, unit, write_landing

    location = IndexLocation(output_uri=str(tmp_path / "out"))
    write_landing(location, image_rows("a.jpg", unit(1, 2)) + image_rows("b.jpg", unit(2, 1)))
    table = FaceTable.open(location)
    table.ingest()
    index = VectorIndex(location)
    first = index.sync(table, V1)
    assert (first.mode, first.rows) == ("full", 3)

    write_landing(location, image_rows("c.jpg", unit(3, 2)) + image_rows("empty.jpg", unit(4, 0)))
    table.ingest()
    second = index.sync(table, V1)
    assert (second.mode, second.upserted, second.rows) == ("cdf", 2, 5)  # the image-level row is no face

    assert table.delete("image_key = 'a.jpg'") == 2
    table.compact()
    third = index.sync(table, V1)
    assert third.mode == "cdf"
    assert third.deleted == 2
    keys = {
        row["image_key"]
        for name in index._searched(V1)
        for row in index.db.open_table(name).to_arrow().select(["image_key"]).to_pylist()
    }
    assert keys == {"b.jpg", "c.jpg"}
