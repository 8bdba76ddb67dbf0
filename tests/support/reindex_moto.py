"""face_reindex fixtures on the moto server: buckets of dated uploads, a worker-written index, the queue."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tests.support.moto_server import ACCOUNT_ID, MotoEndpoint

INPUT_BUCKET = "faceidx-photos"
OUTPUT_BUCKET = "faceidx-index"
OUTPUT_URI = f"s3://{OUTPUT_BUCKET}/v1"
QUEUE_NAME = "faceidx-work"
MODEL_PACK = "test-pack"
MODEL_VERSION = "test-pack-000000000000"  # the rows' model_version unless a test names another


@dataclass(frozen=True)
class Upload:
    key: str
    etag: str  # bare, as events and the index hold it
    size: int


def create_resources(moto: MotoEndpoint) -> str:
    """Input and output buckets and the work queue; returns the queue URL."""
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=INPUT_BUCKET)
    s3.create_bucket(Bucket=OUTPUT_BUCKET)
    return moto.client("sqs").create_queue(QueueName=QUEUE_NAME, Attributes={"VisibilityTimeout": "900"})[
        "QueueUrl"
    ]


def put(moto: MotoEndpoint, key: str, body: bytes | None = None, **kwargs: Any) -> Upload:
    data = body if body is not None else f"not really a jpeg: {key}".encode()
    response = moto.client("s3").put_object(Bucket=INPUT_BUCKET, Key=key, Body=data, **kwargs)
    return Upload(key=key, etag=response["ETag"].strip('"'), size=len(data))


def backdate(bucket: str, key: str, moment: datetime) -> None:
    """Set an object's LastModified in moto's in-process backend (S3 itself never lets you)."""
    from moto.s3.models import s3_backends

    s3_backends[ACCOUNT_ID]["aws"].get_bucket(bucket).keys[key].last_modified = moment.replace(tzinfo=None)


def day_uploads(moto: MotoEndpoint, day: date, images: int = 2) -> tuple[list[Upload], list[str]]:
    """``uploads/<day>/``, uploaded that day at 08:00 UTC: ``images`` images plus one whose key has a
    space and a plus and an upper-case ``.JPG``, and the noise a real bucket has (a text file, a folder
    marker, an empty image, an archived image). Returns the images to queue and the keys to skip."""
    prefix = f"uploads/{day.isoformat()}/"
    queued = [put(moto, f"{prefix}img-{n}.jpg") for n in range(images)]
    queued.append(put(moto, f"{prefix}my photo+{day.day}.JPG"))
    skipped = [f"{prefix}notes.txt", prefix, f"{prefix}empty.png", f"{prefix}cold.jpeg"]
    put(moto, skipped[0])
    put(moto, skipped[1], b"")
    put(moto, skipped[2], b"")
    put(moto, skipped[3], StorageClass="GLACIER")
    uploaded_at = datetime(day.year, day.month, day.day, 8, tzinfo=UTC)
    for key in [u.key for u in queued] + skipped:
        backdate(INPUT_BUCKET, key, uploaded_at)
    return queued, skipped


def drain(moto: MotoEndpoint, queue_url: str) -> list[dict[str, Any]]:
    """Receive (and delete) every message the queue holds; returns their parsed bodies."""
    sqs = moto.client("sqs")
    bodies: list[dict[str, Any]] = []
    while True:
        response = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600, WaitTimeSeconds=0
        )
        messages = response.get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def index_file_bytes(
    images: list[tuple[str, str | None, str]],
    *,
    indexed_at: datetime,
    bucket: str = INPUT_BUCKET,
    faces: int = 2,
    dim: int = 128,
    pack: str = MODEL_PACK,
    version: str = MODEL_VERSION,
) -> bytes:
    """One Parquet index file as the worker writes it (its schema and row builder): ``(key, etag,
    status)`` per image, ``faces`` faces with ``dim``-d embeddings for each ``ok`` image, all of model
    ``pack`` / ``version``."""
    import numpy as np
    import pyarrow.parquet as pq

    from faceidx_worker.rows import (
        DetectedFace,
        ErrorReason,
        ImageOutcome,
        ModelStamp,
        outcome_rows,
        rows_to_table,
    )

    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    for key, etag, status in images:
        detected = tuple(
            DetectedFace(
                bbox=np.array([1, 2, 30, 40], dtype=np.float32),
                landmarks=np.zeros((5, 2), dtype=np.float32),
                det_score=0.9,
                embedding=rng.standard_normal(dim).astype(np.float32),
            )
            for _ in range(faces if status == "ok" else 0)
        )
        outcome = ImageOutcome(
            bucket=bucket,
            key=key,
            etag=etag,
            width=640,
            height=480,
            error_reason=None if status == "ok" else ErrorReason.DECODE_ERROR,
            error_detail="" if status == "ok" else "not an image",
            faces=detected,
        )
        stamp = ModelStamp(pack=pack, version=version, dim=dim)
        rows.extend(outcome_rows(outcome, model=stamp, job_id="job-1:0", indexed_at=indexed_at))
    buffer = io.BytesIO()
    pq.write_table(rows_to_table(rows), buffer, compression="zstd")
    return buffer.getvalue()


def write_index(
    moto: MotoEndpoint,
    images: list[tuple[str, str | None, str]],
    *,
    indexed_at: datetime,
    bucket: str = INPUT_BUCKET,
    prefix: str = "v1",
) -> str:
    """Write one index file to ``s3://OUTPUT_BUCKET/<prefix>/faces/dt=<day>/part-<uuid>.parquet``."""
    key = f"{prefix}/faces/dt={indexed_at:%Y-%m-%d}/part-{uuid.uuid4()}.parquet"
    body = index_file_bytes(images, indexed_at=indexed_at, bucket=bucket)
    moto.client("s3").put_object(Bucket=OUTPUT_BUCKET, Key=key, Body=body)
    return key


def write_local_index(
    output_dir: Path,
    images: list[tuple[str, str | None, str]],
    *,
    indexed_at: datetime,
    bucket: str = INPUT_BUCKET,
    **model: str,
) -> Path:
    """One landing file under a local output directory, as a worker with a local OUTPUT_URI writes it:
    ``<output_dir>/faces/dt=<day>/part-<uuid>.parquet``. ``model``: ``pack`` and ``version``."""
    target = output_dir / "faces" / f"dt={indexed_at:%Y-%m-%d}" / f"part-{uuid.uuid4()}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(index_file_bytes(images, indexed_at=indexed_at, bucket=bucket, **model))
    return target
