"""Faces with chosen embeddings in a real face table (landing file -> FaceTable.ingest)."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from faceidx.store.location import IndexLocation
from faceidx.store.table import FaceTable
from tests.plugins.faceidx.store.table_builders import VERSION, Image, face_id, rows_of, write_bytes
from tests.plugins.faceidx.store.table_builders import landing_table as _landing_table

DIM = 64


@dataclass(frozen=True)
class Photo:
    key: str
    embeddings: list[np.ndarray]
    passed: list[bool] | None = None


def identity(seed: int, dim: int = DIM) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(dim)
    return vector / np.linalg.norm(vector)


def face_of(person: int, variation: int, dim: int = DIM, spread: float = 0.15) -> np.ndarray:
    noise = np.random.default_rng(1000 * person + variation + 7).standard_normal(dim)
    vector = identity(person, dim) + spread * noise / np.sqrt(dim) * 4
    return vector / np.linalg.norm(vector)


def fid(key: str, index: int, version: str = VERSION) -> str:
    return face_id("photos", key, "e1", version, index)


def add_photos(location: IndexLocation, photos: list[Photo], version: str = VERSION) -> None:
    rows = []
    for photo in photos:
        image_rows = rows_of(Image(photo.key, faces=len(photo.embeddings), dim=DIM, version=version))
        for index, row in enumerate(image_rows):
            row["embedding"] = [float(v) for v in photo.embeddings[index]]
            passed = True if photo.passed is None else photo.passed[index]
            row["quality_passed"] = passed
            row["quality_reasons"] = [] if passed else ["LOW_SHARPNESS"]
        rows += image_rows
    schema = _landing_table([Image(photos[0].key, faces=1, dim=DIM, version=version)]).schema
    table = pa.Table.from_pydict({name: [row[name] for row in rows] for name in schema.names}, schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    write_bytes(
        location, f"{location.landing_uri}/dt=2026-11-20/part-{uuid.uuid4()}.parquet", buffer.getvalue()
    )
    FaceTable.open(location).ingest()
