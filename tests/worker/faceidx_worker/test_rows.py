"""The landing rows: ids, the fixed-size embedding, the quality columns and tombstones."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from faceidx_worker.quality import FaceQuality
from faceidx_worker.rows import (
    SCHEMA,
    DetectedFace,
    ImageOutcome,
    ModelStamp,
    embedding_dim,
    face_id,
    image_id,
    outcome_rows,
    rows_to_table,
    schema_for,
    tombstone_row,
)

STAMP = ModelStamp(pack="small_pack", version="small_pack-0123456789ab", dim=4)
WHEN = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def _face(reasons=(), **quality):
    measures = {
        "bbox_width": 20.0, "bbox_height": 30.0, "det_score": 0.9, "sharpness": 120.5, "yaw": -12.0,
        "pitch": 3.0, "roll": 1.5, "embedding_norm": 17.25, **quality,
    }  # fmt: skip
    return DetectedFace(
        bbox=np.array([10, 20, 30, 50], np.float32),
        landmarks=np.zeros((5, 2), np.float32),
        det_score=0.9,
        embedding=np.array([0.5, 0.5, 0.5, 0.5], np.float32),
        quality=FaceQuality(**measures),
        quality_reasons=tuple(reasons),
    )


def test_ids_are_the_contract_s_hashes():
    expected = hashlib.sha256(b"in\nphotos/a.jpg\netag1\nv1\n0").hexdigest()[:32]
    assert face_id("in", "photos/a.jpg", "etag1", "v1", 0) == expected
    assert (
        face_id("in", "photos/a.jpg", None, "v1", None)
        == hashlib.sha256(b"in\nphotos/a.jpg\n\nv1\n-1").hexdigest()[:32]
    )
    assert (
        image_id("in", "photos/a.jpg", "etag1") == hashlib.sha256(b"in\nphotos/a.jpg\netag1").hexdigest()[:32]
    )
    assert face_id("in", "photos/a.jpg", "etag1", "v2", 0) != expected


def test_face_rows_carry_ids_quality_and_a_fixed_size_embedding():
    outcome = ImageOutcome(
        bucket="in", key="a.jpg", etag="e", width=64, height=64,
        faces=(_face(), _face(reasons=("SMALL_BOUNDING_BOX", "LOW_SHARPNESS"))),
    )  # fmt: skip
    table = rows_to_table(outcome_rows(outcome, model=STAMP, job_id="j", indexed_at=WHEN))
    assert table.schema.equals(schema_for(4))
    assert embedding_dim(table.schema) == 4
    first, second = table.to_pylist()
    assert first["face_id"] == face_id("in", "a.jpg", "e", STAMP.version, 0)
    assert second["face_id"] == face_id("in", "a.jpg", "e", STAMP.version, 1)
    assert first["image_id"] == second["image_id"] == image_id("in", "a.jpg", "e")
    assert (first["model_pack"], first["model_version"]) == ("small_pack", "small_pack-0123456789ab")
    assert (first["bbox_width"], first["bbox_height"]) == (20.0, 30.0)
    assert first["sharpness"] == pytest.approx(120.5)
    assert (first["yaw"], first["pitch"], first["roll"]) == pytest.approx((-12.0, 3.0, 1.5))
    assert first["embedding_norm"] == pytest.approx(17.25)
    assert (first["quality_passed"], first["quality_reasons"]) == (True, [])
    assert (second["quality_passed"], second["quality_reasons"]) == (
        False,
        ["SMALL_BOUNDING_BOX", "LOW_SHARPNESS"],
    )
    assert (first["age"], first["gender"], first["crop_uri"]) == (None, None, None)


def test_image_level_rows_have_null_quality():
    outcome = ImageOutcome(bucket="in", key="empty.png", etag="e", width=8, height=8)
    [row] = rows_to_table(outcome_rows(outcome, model=STAMP, job_id="j", indexed_at=WHEN)).to_pylist()
    assert row["face_index"] is None
    assert row["embedding"] is None
    assert row["quality_passed"] is None
    assert row["quality_reasons"] is None
    assert row["face_id"] == face_id("in", "empty.png", "e", STAMP.version, None)


def test_an_embedding_of_the_wrong_dimension_is_refused():
    outcome = ImageOutcome(bucket="in", key="a.jpg", etag="e", width=64, height=64, faces=(_face(),))
    with pytest.raises(ValueError, match="4-d embedding"):
        outcome_rows(outcome, model=ModelStamp("p", "p-1", 128), job_id="j", indexed_at=WHEN)


def test_a_tombstone_erases_by_bucket_key_and_time():
    row = tombstone_row("in", "gone.jpg", removed_at=WHEN, model=STAMP, job_id="j")
    [back] = rows_to_table([row]).to_pylist()
    assert (back["status"], back["face_count"], back["image_etag"]) == ("removed", 0, None)
    assert back["indexed_at"] == WHEN
    assert back["face_index"] is None
    assert back["embedding"] is None


def test_rows_of_two_dimensions_cannot_share_a_file():
    a = tombstone_row("in", "a", removed_at=WHEN, model=STAMP, job_id="j")
    b = tombstone_row("in", "b", removed_at=WHEN, model=ModelStamp("p", "p-1", 128), job_id="j")
    with pytest.raises(ValueError, match="cannot share a file"):
        rows_to_table([a, b])


def test_schema_is_every_landing_column_with_an_open_dimension():
    assert SCHEMA.names == schema_for(512).names
    assert SCHEMA.field("embedding").type == pa.list_(pa.float32())
    assert embedding_dim(SCHEMA) is None
    assert not SCHEMA.field("face_id").nullable
    assert not SCHEMA.field("model_version").nullable
