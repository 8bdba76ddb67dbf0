"""The landing contract: one Parquet row per face, built by pure functions from indexing results.

An image with no face gets one row with ``face_count`` 0 and null ``face_index``; a failed image gets
one row with ``status`` ``error``, ``face_count`` 0 and an ``error`` column that reads
``<reason>: <detail>`` (``not_found: ...``), the reason one of :class:`ErrorReason`. Inside the worker
reason and detail stay separate fields; only :func:`outcome_rows` writes the column's text. Boxes
and landmarks are in the original image's pixels after EXIF orientation, also for a face the rotation
retry found (``rotation``: the clockwise turn, in degrees, that found it; 0 for the others). An S3
``ObjectRemoved`` event becomes one ``removed`` row (:func:`tombstone_row`): erase every row of that
(bucket, key) indexed at or before its ``indexed_at``, in every model version.

This module is the single source of the schema: :func:`schema_for` gives the landing schema of a
model of dimension ``D`` (``embedding`` is ``fixed_size_list<float32>[D]``); :data:`SCHEMA` is the
same columns with the dimension left open (``list<float32>``), for readers that span models.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from faceidx_worker.quality import FaceQuality

ID_HEX = 32  # hex characters of face_id and image_id


def _columns(embedding: pa.DataType) -> list[pa.Field]:
    return [
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
        pa.field("embedding", embedding),
        pa.field("model_pack", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("indexed_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("job_id", pa.string(), nullable=False),
        pa.field("face_id", pa.string(), nullable=False),
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("bbox_width", pa.float32()),
        pa.field("bbox_height", pa.float32()),
        pa.field("sharpness", pa.float32()),
        pa.field("yaw", pa.float32()),
        pa.field("pitch", pa.float32()),
        pa.field("roll", pa.float32()),
        pa.field("embedding_norm", pa.float32()),
        pa.field("quality_passed", pa.bool_()),
        pa.field("quality_reasons", pa.list_(pa.string())),
        pa.field("age", pa.int16()),
        pa.field("gender", pa.string()),
        pa.field("crop_uri", pa.string()),
        pa.field("rotation", pa.int16()),
    ]


SCHEMA = pa.schema(_columns(pa.list_(pa.float32())))
"""Every landing column; ``embedding`` as ``list<float32>`` (any dimension). Files use :func:`schema_for`."""


@lru_cache(maxsize=16)
def schema_for(dim: int) -> pa.Schema:
    """The landing schema of a model whose embeddings have ``dim`` floats."""
    if dim < 1:
        raise ValueError(f"an embedding dimension must be positive, not {dim}")
    return pa.schema(_columns(pa.list_(pa.float32(), dim)))


def embedding_dim(schema: pa.Schema) -> int | None:
    """``D`` of a landing schema's ``fixed_size_list`` embedding; ``None`` for a variable-length list."""
    kind = schema.field("embedding").type
    return int(kind.list_size) if pa.types.is_fixed_size_list(kind) else None


STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_REMOVED = "removed"
ERROR_TEXT_LIMIT = 500  # characters of the error column
DIM_KEY = "_embedding_dim"  # carried beside a row's columns (not one of them): the file's D


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:ID_HEX]


def image_id(bucket: str, key: str, etag: str | None) -> str:
    """One image version: sha256 of ``bucket\\nkey\\netag`` (empty without an etag), 32 hex characters."""
    return _digest(bucket, key, etag or "")


def face_id(bucket: str, key: str, etag: str | None, model_version: str, face_index: int | None) -> str:
    """One face of one image version under one model version (``face_index`` -1 for image-level rows):
    sha256 of ``bucket\\nkey\\netag\\nmodel_version\\nface_index``, 32 hex characters."""
    return _digest(bucket, key, etag or "", model_version, str(-1 if face_index is None else face_index))


class ErrorReason(StrEnum):
    """Why an image got an error row: the start of its ``error`` column and the metrics' ``reason``."""

    BUCKET_NOT_ALLOWED = "bucket_not_allowed"  # not in FACEIDX_ALLOWED_BUCKETS; no S3 call made
    TOO_LARGE = "too_large"  # over FACEIDX_MAX_IMAGE_BYTES
    NOT_FOUND = "not_found"  # no such key or bucket
    UNAVAILABLE = "unavailable"  # archived (Glacier / Deep Archive): restore it first
    TOO_MANY_PIXELS = "too_many_pixels"  # over FACEIDX_MAX_IMAGE_PIXELS, read from the header
    DECODE_ERROR = "decode_error"  # not an image, corrupt, empty
    INFERENCE_ERROR = "inference_error"  # the model failed on this image (odd geometry)
    UNKNOWN_MODEL_PACK = "unknown_model_pack"  # the message asked for a pack FACEIDX_MODEL_DIR lacks


FACE_COLUMN_DEFAULTS = {"rotation": 0}
"""What a face row of a worker older than the column meant: the ingest fills it in on face rows."""


@dataclass(frozen=True)
class ModelStamp:
    """The model identity every row carries: pack name, version and embedding dimension."""

    pack: str
    version: str
    dim: int


@dataclass(frozen=True)
class DetectedFace:
    bbox: np.ndarray  # (4,) float32: x1, y1, x2, y2 in original pixels
    landmarks: np.ndarray  # (5, 2) float32 in original pixels
    det_score: float
    embedding: np.ndarray  # (D,) float32, L2-normalized
    quality: FaceQuality | None = None
    quality_reasons: tuple[str, ...] | None = None  # the gate's reasons; empty = passed
    age: int | None = None
    gender: str | None = None  # "F" or "M"
    crop_uri: str | None = None
    rotation: int = 0  # degrees clockwise the image was turned to find the face (the rotation retry)
    crop: np.ndarray | None = field(default=None, repr=False, compare=False)  # aligned, for FACEIDX_CROPS_URI


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


_FACE_COLUMNS = (
    "face_index", "bbox", "landmarks", "det_score", "embedding", "bbox_width", "bbox_height", "sharpness",
    "yaw", "pitch", "roll", "embedding_norm", "quality_passed", "quality_reasons", "age", "gender",
    "crop_uri", "rotation",
)  # fmt: skip


def _image_row(
    *,
    bucket: str,
    key: str,
    etag: str | None,
    width: int | None,
    height: int | None,
    status: str,
    error: str | None,
    face_count: int,
    model: ModelStamp,
    job_id: str,
    indexed_at: datetime,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "image_bucket": bucket,
        "image_key": key,
        "image_etag": etag,
        "image_width": width,
        "image_height": height,
        "status": status,
        "error": error,
        "face_count": face_count,
        "model_pack": model.pack,
        "model_version": model.version,
        "indexed_at": indexed_at,
        "job_id": job_id,
        "face_id": face_id(bucket, key, etag, model.version, None),
        "image_id": image_id(bucket, key, etag),
        DIM_KEY: model.dim,
    }
    row.update(dict.fromkeys(_FACE_COLUMNS))
    return row


def outcome_rows(
    outcome: ImageOutcome, *, model: ModelStamp, job_id: str, indexed_at: datetime
) -> list[dict[str, Any]]:
    """The rows of one image, as plain dicts (the columns of :data:`SCHEMA`, plus ``DIM_KEY``)."""
    base = _image_row(
        bucket=outcome.bucket,
        key=outcome.key,
        etag=outcome.etag,
        width=outcome.width,
        height=outcome.height,
        status=STATUS_OK if outcome.ok else STATUS_ERROR,
        error=outcome.error_text,
        face_count=len(outcome.faces),
        model=model,
        job_id=job_id,
        indexed_at=indexed_at,
    )
    if not outcome.ok or not outcome.faces:
        return [base]
    rows = []
    for index, face in enumerate(outcome.faces):
        row = dict(base)
        embedding = np.asarray(face.embedding, dtype=np.float32).reshape(-1)
        if embedding.shape[0] != model.dim:
            raise ValueError(
                f"s3://{outcome.bucket}/{outcome.key} face {index}: a {embedding.shape[0]}-d embedding "
                f"from model {model.version}, which gives {model.dim}-d ones"
            )
        bbox = np.asarray(face.bbox, dtype=np.float32).reshape(4)
        row.update(
            face_index=index,
            face_id=face_id(outcome.bucket, outcome.key, outcome.etag, model.version, index),
            bbox=bbox,
            landmarks=np.asarray(face.landmarks, dtype=np.float32).reshape(10),
            det_score=float(face.det_score),
            embedding=embedding,
            bbox_width=float(bbox[2] - bbox[0]),
            bbox_height=float(bbox[3] - bbox[1]),
            age=face.age,
            gender=face.gender,
            crop_uri=face.crop_uri,
            rotation=face.rotation,
        )
        quality = face.quality
        if quality is not None:
            row.update(
                sharpness=quality.sharpness,
                yaw=quality.yaw,
                pitch=quality.pitch,
                roll=quality.roll,
                embedding_norm=quality.embedding_norm,
            )
        if face.quality_reasons is not None:
            row.update(quality_passed=not face.quality_reasons, quality_reasons=list(face.quality_reasons))
        rows.append(row)
    return rows


def tombstone_row(
    bucket: str, key: str, *, removed_at: datetime, model: ModelStamp, job_id: str
) -> dict[str, Any]:
    """The ``removed`` row of an S3 ``ObjectRemoved`` event: ``indexed_at`` is the event's time,
    ``image_etag`` null, ``face_count`` 0. It erases (bucket, key) up to that time in every version."""
    return _image_row(
        bucket=bucket,
        key=key,
        etag=None,
        width=None,
        height=None,
        status=STATUS_REMOVED,
        error=None,
        face_count=0,
        model=model,
        job_id=job_id,
        indexed_at=removed_at,
    )


def estimated_row_bytes(row: dict[str, Any]) -> int:
    """A cheap upper-bound estimate of a row's in-memory size, for the sink's size bound."""
    size = 320 + len(row["image_key"]) + len(row["image_bucket"]) + len(row.get("error") or "")
    embedding = row.get("embedding")
    if embedding is not None:
        size += 4 * len(embedding) + 56
    return size


def rows_to_table(rows: list[dict[str, Any]], dim: int | None = None) -> pa.Table:
    """Rows as a table of :func:`schema_for` ``dim`` (default: the rows' ``DIM_KEY``, which must agree)."""
    if dim is None:
        dims = {row[DIM_KEY] for row in rows}
        if len(dims) != 1:
            raise ValueError(f"rows of {len(dims)} embedding dimensions ({sorted(dims)}) cannot share a file")
        (dim,) = dims
    schema = schema_for(dim)
    columns = {name: [row[name] for row in rows] for name in schema.names}
    return pa.Table.from_pydict(columns, schema=schema)
