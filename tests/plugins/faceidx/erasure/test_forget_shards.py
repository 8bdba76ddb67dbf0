"""Erasure on a vector index sharded by month: an image whose uploads were indexed in two months loses
its vectors from both shards, and the verification looks in every shard."""

from __future__ import annotations

from datetime import timedelta

import pytest

from faceidx.erasure.forget import ForgetTarget, ForgetVerificationError, forget
from faceidx.store.location import IndexLocation
from faceidx.store.table import FaceTable
from faceidx.store.vector_shards import shard_name
from faceidx.store.vectors import VectorIndex
from faceidx_worker.rows import face_id
from tests.plugins.faceidx.erasure.test_forget import BUCKET, T0, V1, image_rows, unit, write_landing

OCTOBER, NOVEMBER = shard_name(V1, "2026-10"), shard_name(V1, "2026-11")


@pytest.fixture
def location(tmp_path) -> IndexLocation:
    """a.jpg indexed in November (ETag e1) and October (ETag e0), b.jpg in both months too."""
    location = IndexLocation(output_uri=str(tmp_path / "out"))
    october = T0 - timedelta(days=40)
    write_landing(location, image_rows("a.jpg", unit(1, 2)) + image_rows("b.jpg", unit(2, 1)))
    write_landing(
        location,
        image_rows("a.jpg", unit(3, 1), etag="e0", at=october)
        + image_rows("b.jpg", unit(4, 1), etag="e0", at=october),
    )
    table = FaceTable.open(location)
    table.ingest()
    VectorIndex(location).sync(table, V1)
    return location


def test_an_image_indexed_in_two_months_leaves_both_shards(location):
    index = VectorIndex(location)
    a_faces = [face_id(BUCKET, "a.jpg", "e1", V1, i) for i in range(2)] + [
        face_id(BUCKET, "a.jpg", "e0", V1, 0)
    ]
    assert {name for name, held in index.locate(a_faces).items() if held} == {OCTOBER, NOVEMBER}

    receipt = forget(location, ForgetTarget("image", f"s3://{BUCKET}/a.jpg"), reason="", actor="alice")

    assert receipt.verified
    assert receipt.verification["vector_tables_checked"] == 2
    assert receipt.verification["vector_tables_holding_erased"] == {}
    assert VectorIndex(location).locate(a_faces) == {OCTOBER: [], NOVEMBER: []}
    assert len(VectorIndex(location).face_ids(V1)) == 2, "b.jpg's faces stay in both months"


def test_the_verification_finds_a_vector_left_in_another_months_shard(location, monkeypatch):
    left_behind = face_id(BUCKET, "a.jpg", "e0", V1, 0)  # indexed in October
    delete = VectorIndex.delete

    def delete_but_not_october(self, face_ids):  # an erasure that misses one shard
        return delete(self, [face for face in face_ids if face != left_behind])

    monkeypatch.setattr(VectorIndex, "delete", delete_but_not_october)
    with pytest.raises(ForgetVerificationError) as raised:
        forget(location, ForgetTarget("image", f"s3://{BUCKET}/a.jpg"), reason="", actor="alice")
    assert "vector_tables_holding_erased" in str(raised.value)
    assert f"'{OCTOBER}': ['{left_behind}']" in str(raised.value)
