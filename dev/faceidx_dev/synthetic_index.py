"""Landing files of a synthetic index of ``n`` faces (ArcFace-like 512-d embeddings of
:func:`faceidx.people.evaluation.synthetic_faces`), shaped as the workers write them, built column by
column so that 10^5 faces take seconds. For the step benchmark and the flat-RSS tests."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from faceidx.people.evaluation import synthetic_faces
from faceidx.store.location import IndexLocation
from faceidx_worker import rows as worker_rows

MODEL_VERSION = "synthetic-pack-000000000000"
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def face_indexes(image_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each face's index within its photo, and its photo's face count."""
    index_of = np.zeros(len(image_codes), dtype=np.int32)
    seen: dict[int, int] = {}
    for i, code in enumerate(image_codes.tolist()):
        index_of[i] = seen.get(code, 0)
        seen[code] = int(index_of[i]) + 1
    counts = np.array([seen[code] for code in image_codes.tolist()], dtype=np.int32)
    return index_of, counts


def landing_batch(
    start: int,
    embeddings: np.ndarray,
    image_codes: np.ndarray,
    indexes: tuple[np.ndarray, np.ndarray],
    at: datetime,
) -> pa.Table:
    """One landing file's rows: face ``i`` is face ``indexes[0][i]`` of photo ``image_codes[i]``."""
    n, dim = embeddings.shape
    schema = worker_rows.schema_for(dim)
    keys = [f"synthetic/img{code}.jpg" for code in image_codes]
    index_of, counts = indexes
    columns: dict[str, pa.Array] = {
        "image_bucket": pa.array(["photos"] * n),
        "image_key": pa.array(keys),
        "image_etag": pa.array(["e1"] * n),
        "image_width": pa.array([4000] * n, pa.int32()),
        "image_height": pa.array([3000] * n, pa.int32()),
        "status": pa.array(["ok"] * n),
        "face_count": pa.array(counts),
        "model_pack": pa.array(["synthetic"] * n),
        "model_version": pa.array([MODEL_VERSION] * n),
        "indexed_at": pa.array([at] * n, pa.timestamp("us", tz="UTC")),
        "job_id": pa.array([f"job:{start}"] * n),
        "image_id": pa.array([worker_rows.image_id("photos", key, "e1") for key in keys]),
        "face_index": pa.array(index_of),
        "face_id": pa.array(
            [
                worker_rows.face_id("photos", key, "e1", MODEL_VERSION, int(index))
                for key, index in zip(keys, index_of, strict=True)
            ]
        ),
        "bbox": pa.array([[10.0, 10.0, 110.0, 130.0]] * n, pa.list_(pa.float32())),
        "det_score": pa.array(np.full(n, 0.9, np.float32)),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(embeddings.reshape(-1)), dim),
        "bbox_width": pa.array(np.full(n, 100.0, np.float32)),
        "bbox_height": pa.array(np.full(n, 120.0, np.float32)),
        "quality_passed": pa.array([True] * n),
    }
    arrays = []
    for field in schema:
        if field.name in columns:
            arrays.append(columns[field.name].cast(field.type))
        else:
            arrays.append(pa.nulls(n, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def write_synthetic_landing(
    location: IndexLocation, n_faces: int, *, per_file: int = 20_000, seed: int = 0
) -> int:
    """Landing files holding ``n_faces`` synthetic faces (one day partition); returns the files written."""
    from pathlib import Path

    faces = synthetic_faces(n_faces, seed=seed)
    index_of, counts = face_indexes(faces.image_codes)
    files = 0
    for start in range(0, n_faces, per_file):
        stop = min(n_faces, start + per_file)
        indexes = (index_of[start:stop], counts[start:stop])
        batch = landing_batch(start, faces.embeddings[start:stop], faces.image_codes[start:stop], indexes, T0)
        buffer = io.BytesIO()
        pq.write_table(batch, buffer, compression="zstd")
        path = Path(location.landing_uri) / f"dt={T0:%Y-%m-%d}" / f"part-{start:09d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())
        files += 1
    return files
