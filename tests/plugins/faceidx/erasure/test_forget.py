"""Erasure on real Delta tables and LanceDB indexes (local folders; S3 on moto in test_forget_s3).

What is asserted is what the stores hold afterwards: the face table's current snapshot and its old
versions, what a vector search returns, the crop files and the receipt document.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from faceidx.erasure.forget import (
    TOMBSTONE_ACTOR,
    ForgetTarget,
    ForgetTargetNotFound,
    forget,
    forget_tombstones,
)
from faceidx.store.location import IndexLocation
from faceidx.store.table import FaceTable
from faceidx.store.vectors import VectorIndex
from faceidx_worker.rows import face_id, image_id

V1, V2 = "testpack-aaaaaaaaaaaa", "otherpack-bbbbbbbbbbbb"
DIM = 8
BUCKET = "photos"
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def unit(seed: int, count: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


LANDING_SCHEMA = pa.schema(
    [
        pa.field("image_bucket", pa.string(), nullable=False),
        pa.field("image_key", pa.string(), nullable=False),
        pa.field("image_etag", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("face_count", pa.int32(), nullable=False),
        pa.field("face_index", pa.int32()),
        pa.field("bbox", pa.list_(pa.float32())),
        pa.field("embedding", pa.list_(pa.float32())),
        pa.field("quality_passed", pa.bool_()),
        pa.field("model_pack", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("indexed_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("job_id", pa.string(), nullable=False),
        pa.field("face_id", pa.string(), nullable=False),
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("crop_uri", pa.string()),
    ]
)


def image_rows(
    key: str,
    vectors: np.ndarray,
    *,
    version: str = V1,
    etag: str = "e1",
    at: datetime = T0,
    crops: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The landing rows of one image: one per face (its embedding), or one image-level row."""
    base = {
        "image_bucket": BUCKET,
        "image_key": key,
        "image_etag": etag,
        "status": "ok",
        "face_count": len(vectors),
        "model_pack": version.rsplit("-", 1)[0],
        "model_version": version,
        "indexed_at": at,
        "job_id": "job-1",
        "image_id": image_id(BUCKET, key, etag),
        "bbox": None,
        "embedding": None,
        "quality_passed": None,
        "face_index": None,
        "crop_uri": None,
    }
    if not len(vectors):
        return [{**base, "face_id": face_id(BUCKET, key, etag, version, None)}]
    return [
        {
            **base,
            "face_index": index,
            "bbox": [1.0, 2.0, 30.0, 40.0],
            "embedding": [float(v) for v in vector],
            "quality_passed": True,
            "face_id": face_id(BUCKET, key, etag, version, index),
            "crop_uri": crops[index] if crops else None,
        }
        for index, vector in enumerate(vectors)
    ]


def tombstone_row(key: str, at: datetime) -> dict[str, Any]:
    """What the worker writes for an S3 ObjectRemoved event."""
    (row,) = image_rows(key, np.zeros((0, DIM), np.float32), etag="", at=at)
    return {**row, "status": "removed", "image_etag": None, "face_count": 0}


def write_landing(location: IndexLocation, rows: list[dict[str, Any]]) -> str:
    """One landing file, as a worker flush writes it (local output only)."""
    day = rows[0]["indexed_at"].strftime("%Y-%m-%d")
    path = Path(location.landing_uri) / f"dt={day}" / f"part-{uuid.uuid4().hex}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=LANDING_SCHEMA), path)
    return str(path)


def keys_in(table: FaceTable) -> set[tuple[str, str]]:
    rows = table.read(columns=["image_key", "model_version"])
    return set(zip(rows["image_key"].to_pylist(), rows["model_version"].to_pylist(), strict=True))


def found_ids(index: VectorIndex, vectors: np.ndarray, version: str) -> set[str]:
    """What a search finds. After a purge a reader opens the index again (old handles see purged files)."""
    index = VectorIndex(index.location)
    return {
        match.face_id for matches in index.search(vectors, model_version=version, k=10) for match in matches
    }


def old_snapshot_keys(location: IndexLocation, version: int) -> list[str] | None:
    """The image keys of an older table version, or None when its files are gone (purged)."""
    try:
        old = DeltaTable(location.table_uri, version=version).to_pyarrow_table(columns=["image_key"])
    except Exception:
        return None
    return list(old["image_key"].to_pylist())


def receipts(location: IndexLocation) -> list[dict[str, Any]]:
    folder = Path(location.receipts_uri)
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


@pytest.fixture
def location(tmp_path: Path) -> IndexLocation:
    return IndexLocation(output_uri=str(tmp_path / "out"))


@pytest.fixture
def indexed(location: IndexLocation, tmp_path: Path) -> dict[str, Any]:
    """Image a.jpg in two model versions and two ETags (with crops), b.jpg and c.jpg beside it, all
    ingested and synced into the vector index."""
    crops_dir = tmp_path / "crops"
    crops_dir.mkdir()
    crops = []
    for name in ("a0", "a1"):
        (crops_dir / f"{name}.jpg").write_bytes(b"crop")
        crops.append(str(crops_dir / f"{name}.jpg"))
    vectors = {"a1": unit(1, 2), "a2": unit(2, 2), "a_old": unit(3, 1), "b": unit(4, 3), "c": unit(5, 2)}
    write_landing(location, image_rows("a.jpg", vectors["a1"], crops=crops))
    write_landing(location, image_rows("a.jpg", vectors["a_old"], etag="e0", at=T0 - timedelta(days=1)))
    write_landing(location, image_rows("a.jpg", vectors["a2"], version=V2))
    write_landing(location, image_rows("b.jpg", vectors["b"]) + image_rows("c.jpg", vectors["c"], version=V2))
    table = FaceTable.open(location)
    table.ingest()
    index = VectorIndex(location)
    for version in (V1, V2):
        index.sync(table, version)
    return {"table": table, "index": index, "vectors": vectors, "crops": crops, "version": table.version()}


def test_forget_image_removes_every_etag_and_version_from_table_vectors_crops_and_history(location, indexed):
    table, index, vectors = indexed["table"], indexed["index"], indexed["vectors"]
    a_v1 = np.vstack([vectors["a1"], vectors["a_old"]])
    assert found_ids(index, a_v1, V1) >= {
        face_id(BUCKET, "a.jpg", "e1", V1, 0),
        face_id(BUCKET, "a.jpg", "e0", V1, 0),
    }

    receipt = forget(
        location, ForgetTarget("image", f"s3://{BUCKET}/a.jpg"), reason="request 42", actor="alice"
    )

    assert keys_in(table) == {("b.jpg", V1), ("c.jpg", V2)}
    forgotten = set(receipt.removed["face_ids"])
    assert len(forgotten) == 5
    assert not found_ids(index, a_v1, V1) & forgotten
    assert not found_ids(index, vectors["a2"], V2) & forgotten
    assert found_ids(index, vectors["b"], V1) == {face_id(BUCKET, "b.jpg", "e1", V1, i) for i in range(3)}, (
        "the other images' vectors stay"
    )
    assert not any(Path(crop).exists() for crop in indexed["crops"])
    # no older table version still holds the image: the old snapshot cannot be read any more, or lacks it
    old = old_snapshot_keys(location, indexed["version"])
    assert old is None or "a.jpg" not in old

    (saved,) = receipts(location)
    assert saved == receipt.to_dict()
    assert Path(receipt.uri).name.endswith(f"-{receipt.id}.json")
    assert saved["target"] == {"type": "image", "value": f"s3://{BUCKET}/a.jpg"}
    assert (saved["reason"], saved["actor"]) == ("request 42", "alice")
    assert saved["removed"]["table_rows"] == {V1: 3, V2: 2}
    assert saved["removed"]["vectors"] == {V1: 3, V2: 2}
    assert saved["removed"]["vectors_total"] == 5
    assert sorted(saved["removed"]["crops"]) == sorted(indexed["crops"])
    assert saved["removed"]["history"]["table_files"], "the old files were vacuumed"
    assert saved["verification"] == {
        "table_rows_left": 0,
        "searches": 5,
        "k": 10,
        "versions_without_vectors": [],
        "found_face_ids": [],
        "vector_tables_checked": 2,  # one month shard of each version
        "vector_tables_holding_erased": {},
        "face_persons_rows_left": 0,
        "persons_still_holding_erased_faces": [],
        "crops_left": [],
        "passed": True,
    }
    assert saved["started_at"] <= saved["finished_at"]


def test_forget_one_face_keeps_the_other_faces_of_the_image(location, indexed):
    table, index, vectors = indexed["table"], indexed["index"], indexed["vectors"]
    gone = face_id(BUCKET, "b.jpg", "e1", V1, 1)
    receipt = forget(location, ForgetTarget("face", gone), reason="", actor="bob")
    left = set(table.read(columns=["face_id"], filter="image_key = 'b.jpg'")["face_id"].to_pylist())
    assert left == {face_id(BUCKET, "b.jpg", "e1", V1, i) for i in (0, 2)}
    all_b = {face_id(BUCKET, "b.jpg", "e1", V1, i) for i in range(3)}
    assert found_ids(index, vectors["b"], V1) & all_b == left
    assert receipt.removed["table_rows"] == {V1: 1}
    assert receipt.verified


def test_pending_landing_files_are_ingested_before_the_erasure(location, indexed):
    table = indexed["table"]
    write_landing(location, image_rows("d.jpg", unit(9, 1), at=T0 + timedelta(hours=1)))
    receipt = forget(location, ForgetTarget("image", f"s3://{BUCKET}/d.jpg"), reason="", actor="carol")
    assert receipt.removed["landing"] == {"files_ingested": 1}
    assert receipt.removed["table_rows"] == {V1: 1}
    assert not list(Path(location.landing_uri).rglob("*.parquet")), "nothing waits in landing"
    assert ("d.jpg", V1) not in keys_in(table)


def test_a_target_not_in_the_index_changes_nothing_and_writes_no_receipt(location, indexed):
    table = indexed["table"]
    before = (table.version(), keys_in(table))
    with pytest.raises(ForgetTargetNotFound, match="not in the index"):
        forget(location, ForgetTarget("image", f"s3://{BUCKET}/nope.jpg"), reason="", actor="dan")
    with pytest.raises(ForgetTargetNotFound):
        forget(location, ForgetTarget("face", "0" * 32), reason="", actor="dan")
    assert (table.version(), keys_in(table)) == before
    assert receipts(location) == []


@pytest.mark.parametrize(
    ("kind", "value"),
    [("image", "photos/a.jpg"), ("image", "s3://photos"), ("face", " "), ("album", "x")],
)
def test_a_malformed_target_is_refused(kind, value):
    with pytest.raises(ValueError):
        ForgetTarget(kind, value)


def test_an_unknown_person_is_refused_clearly(location, indexed):
    with pytest.raises(ForgetTargetNotFound, match="person p-1 is not known"):
        forget(location, ForgetTarget("person", "p-1"), reason="", actor="erin")
    assert receipts(location) == []


def test_a_person_resolved_by_a_resolver_loses_its_faces_and_mapping_rows(location, indexed):
    from faceidx.store.persons import FACE_PERSONS_SCHEMA, PeopleStore

    faces = [face_id(BUCKET, "b.jpg", "e1", V1, 0), face_id(BUCKET, "c.jpg", "e1", V2, 1)]
    mapping = pa.Table.from_pylist(
        [
            {"face_id": face, "person_id": person, "model_version": version}
            for face, person, version in zip(
                [*faces, face_id(BUCKET, "b.jpg", "e1", V1, 2)],
                ["p-1", "p-1", "p-2"],
                [V1, V2, V1],
                strict=True,
            )
        ],
        schema=FACE_PERSONS_SCHEMA,
    )
    PeopleStore(location).upsert("face_persons", mapping)

    def resolve(_location, person_id):
        return faces if person_id == "p-1" else None

    receipt = forget(location, ForgetTarget("person", "p-1"), reason="", actor="erin", resolve_person=resolve)
    assert receipt.removed["table_rows"] == {V1: 1, V2: 1}
    assert receipt.removed["people_rows"] == {"face_persons": 2}
    assert DeltaTable(location.face_persons_uri).to_pyarrow_table()["person_id"].to_pylist() == ["p-2"]
    assert receipt.verified
    with pytest.raises(ForgetTargetNotFound):
        forget(location, ForgetTarget("person", "p-9"), reason="", actor="erin", resolve_person=resolve)


def test_an_object_removed_tombstone_forgets_the_image_by_itself(location, indexed):
    """S3 deletes c.jpg -> the worker writes a tombstone row -> ingest deletes the table rows ->
    forget_tombstones removes its vectors, purges history, verifies, and writes a receipt."""
    table, index, vectors = indexed["table"], indexed["index"], indexed["vectors"]
    version_with_c = table.version()
    write_landing(location, [tombstone_row("c.jpg", T0 + timedelta(hours=2))])
    write_landing(location, [tombstone_row("never-indexed.jpg", T0 + timedelta(hours=2))])

    report = table.ingest()
    assert ("c.jpg", V2) not in keys_in(table)
    receipts_made = forget_tombstones(location, report.tombstones)

    (receipt,) = receipts_made
    assert receipt.actor == TOMBSTONE_ACTOR
    assert receipt.target == {"type": "image", "value": f"s3://{BUCKET}/c.jpg"}
    assert receipt.removed["table_rows"] == {V2: 2}
    assert receipt.removed["vectors"] == {V2: 2}
    assert not found_ids(index, vectors["c"], V2) & set(receipt.removed["face_ids"])
    assert receipt.verification["passed"]
    assert receipt.verification["searches"] == 2
    old = old_snapshot_keys(location, version_with_c)
    assert old is None or "c.jpg" not in old, "no older table version still holds c.jpg"
    assert [r["actor"] for r in receipts(location)] == [TOMBSTONE_ACTOR]


def test_a_tombstone_older_than_a_reupload_keeps_the_new_upload(location, indexed):
    """Rows indexed after the removal event (the key was uploaded again) stay."""
    table = indexed["table"]
    write_landing(location, image_rows("e.jpg", unit(11, 1), etag="new", at=T0 + timedelta(hours=5)))
    table.ingest()
    forget_tombstones(
        location, [{"bucket": BUCKET, "key": "e.jpg", "removed_at": (T0 + timedelta(hours=1)).isoformat()}]
    )
    assert ("e.jpg", V1) in keys_in(table)
    assert receipts(location) == []
