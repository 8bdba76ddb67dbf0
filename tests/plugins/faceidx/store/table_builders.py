"""Landing files for the face table's tests, shaped like the worker's sink writes them."""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from faceidx.store.location import IndexLocation
from faceidx.store.schema import landing_schema
from faceidx_worker import rows as worker_rows

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
VERSION = "test-pack-0123456789ab"
DIM = 8


face_id = worker_rows.face_id
image_id = worker_rows.image_id


@dataclass(frozen=True)
class Image:
    key: str
    etag: str | None = "e1"
    bucket: str = "photos"
    faces: int = 2
    status: str = "ok"
    at: datetime = T0
    job: str = "job:0"
    version: str = VERSION
    dim: int = DIM


def vector(seed: str, dim: int = DIM) -> list[float]:
    rng = np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16))
    values = rng.normal(size=dim).astype(np.float32)
    return [float(v) for v in values / np.linalg.norm(values)]


def rows_of(image: Image) -> list[dict[str, Any]]:
    base: dict[str, Any] = {name: None for name in landing_schema().names}
    base.update(
        image_bucket=image.bucket,
        image_key=image.key,
        image_etag=None if image.status == "removed" else image.etag,
        image_width=640,
        image_height=480,
        status=image.status,
        error="decode_error: truncated" if image.status == "error" else None,
        face_count=image.faces if image.status == "ok" else 0,
        model_pack="test-pack",
        model_version=image.version,
        indexed_at=image.at,
        job_id=image.job,
        image_id=image_id(image.bucket, image.key, image.etag),
    )
    if image.status != "ok" or image.faces == 0:
        base["face_id"] = face_id(image.bucket, image.key, image.etag, image.version, None)
        return [base]
    rows = []
    for index in range(image.faces):
        row = dict(base)
        row.update(
            face_index=index,
            face_id=face_id(image.bucket, image.key, image.etag, image.version, index),
            bbox=[10.0 * index, 10.0, 10.0 * index + 50, 60.0],
            landmarks=[1.0] * 10,
            det_score=0.9,
            embedding=vector(f"{image.bucket}/{image.key}/{image.etag}/{index}", image.dim),
            bbox_width=50.0,
            bbox_height=50.0,
            sharpness=120.0,
            yaw=0.0,
            pitch=0.0,
            roll=0.0,
            embedding_norm=21.0,
            quality_passed=True,
            quality_reasons=[],
        )
        rows.append(row)
    return rows


def landing_table(images: list[Image]) -> pa.Table:
    """The images' rows as the worker's sink writes them (``rows_to_table``, fixed-size embeddings)."""
    return worker_rows.rows_to_table([row for image in images for row in rows_of(image)], images[0].dim)


def write_landing(location: IndexLocation, images: list[Image], name: str | None = None) -> str:
    """One landing file holding the images' rows (one day partition: the first image's day)."""
    table = landing_table(images)
    day = images[0].at.strftime("%Y-%m-%d")
    uri = f"{location.landing_uri}/dt={day}/{name or f'part-{uuid.uuid4()}.parquet'}"
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    write_bytes(location, uri, buffer.getvalue())
    return uri


def write_bytes(location: IndexLocation, uri: str, payload: bytes) -> None:
    if uri.startswith("s3://"):
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        location.s3_client().put_object(Bucket=bucket, Key=key, Body=payload)
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)


def later(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)
