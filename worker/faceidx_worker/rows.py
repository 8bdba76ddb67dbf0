"""The output contract: one Parquet row per face, built by pure functions from indexing results.

An image with no face gets one row with ``face_count`` 0 and null ``face_index``; a failed image gets
one row with ``status`` ``error``, ``face_count`` 0 and an ``error`` column that reads
``<reason>: <detail>`` (``not_found: ...``), the reason one of :class:`ErrorReason`. Inside the worker
reason and detail stay separate fields; only :func:`outcome_rows` writes the column's text. Boxes
and landmarks are in the original image's pixels after EXIF orientation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
import pyarrow as pa

SCHEMA = pa.schema(
    [
        pa.field("image_bucket", pa.string(), nullable=False),
        pa.field("image_key", pa.string(), nullable=False),
        pa.field("image_etag", pa.string()),
        pa.field("image_width", pa.int32()),
        pa.field("image_height", pa.int32()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("face_count", pa.int32(), nullable=False),
        pa.field("face_index", pa.int32()),
        pa.field("bbox", pa.list_(pa.float32())),
        pa.field("landmarks", pa.list_(pa.float32())),
        pa.field("det_score", pa.float32()),
        pa.field("embedding", pa.list_(pa.float32())),
        pa.field("model", pa.string(), nullable=False),
        pa.field("indexed_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("job_id", pa.string(), nullable=False),
    ]
)

STATUS_OK = "ok"
STATUS_ERROR = "error"
ERROR_TEXT_LIMIT = 500  # characters of the error column


class ErrorReason(StrEnum):
    """Why an image got an error row: the start of its ``error`` column and the metrics' ``reason``."""

    BUCKET_NOT_ALLOWED = "bucket_not_allowed"  # not in FACEIDX_ALLOWED_BUCKETS; no S3 call made
    TOO_LARGE = "too_large"  # over FACEIDX_MAX_IMAGE_BYTES
    NOT_FOUND = "not_found"  # no such key or bucket
    UNAVAILABLE = "unavailable"  # archived (Glacier / Deep Archive): restore it first
    TOO_MANY_PIXELS = "too_many_pixels"  # over FACEIDX_MAX_IMAGE_PIXELS, read from the header
    DECODE_ERROR = "decode_error"  # not an image, corrupt, empty
    INFERENCE_ERROR = "inference_error"  # the model failed on this image (odd geometry)


@dataclass(frozen=True)
class DetectedFace:
    bbox: np.ndarray  # (4,) float32: x1, y1, x2, y2 in original pixels
    landmarks: np.ndarray  # (5, 2) float32 in original pixels
    det_score: float
    embedding: np.ndarray  # (D,) float32, L2-normalized


@dataclass(frozen=True)
class ImageOutcome:
    """What became of one image: its faces, or the error that stopped it."""

    bucket: str
    key: str
    etag: str | None
    width: int | None
    height: int | None
    error_reason: ErrorReason | None = None
    error_detail: str = ""
    faces: tuple[DetectedFace, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.error_reason is None

    @property
    def error_text(self) -> str | None:
        """The ``error`` column: ``<reason>: <detail>``, at most ``ERROR_TEXT_LIMIT`` characters."""
        if self.error_reason is None:
            return None
        return f"{self.error_reason.value}: {self.error_detail}"[:ERROR_TEXT_LIMIT]


def outcome_rows(
    outcome: ImageOutcome, *, model: str, job_id: str, indexed_at: datetime
) -> list[dict[str, Any]]:
    """The rows of one image, as plain dicts in SCHEMA order."""
    base: dict[str, Any] = {
        "image_bucket": outcome.bucket,
        "image_key": outcome.key,
        "image_etag": outcome.etag,
        "image_width": outcome.width,
        "image_height": outcome.height,
        "status": STATUS_OK if outcome.ok else STATUS_ERROR,
        "error": outcome.error_text,
        "face_count": len(outcome.faces),
        "face_index": None,
        "bbox": None,
        "landmarks": None,
        "det_score": None,
        "embedding": None,
        "model": model,
        "indexed_at": indexed_at,
        "job_id": job_id,
    }
    if not outcome.ok or not outcome.faces:
        return [base]
    rows = []
    for index, face in enumerate(outcome.faces):
        row = dict(base)
        row.update(
            face_index=index,
            bbox=np.asarray(face.bbox, dtype=np.float32).reshape(4),
            landmarks=np.asarray(face.landmarks, dtype=np.float32).reshape(10),
            det_score=float(face.det_score),
            embedding=np.asarray(face.embedding, dtype=np.float32).reshape(-1),
        )
        rows.append(row)
    return rows


def estimated_row_bytes(row: dict[str, Any]) -> int:
    """A cheap upper-bound estimate of a row's in-memory size, for the sink's size bound."""
    size = 160 + len(row["image_key"]) + len(row["image_bucket"]) + len(row.get("error") or "")
    embedding = row.get("embedding")
    if embedding is not None:
        size += 4 * len(embedding) + 56
    return size


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    columns = {name: [row[name] for row in rows] for name in SCHEMA.names}
    return pa.Table.from_pydict(columns, schema=SCHEMA)
