"""Small Delta face tables for the vector-index and search tests.

:class:`DeltaFaces` stands in for ``faceidx.store.table.FaceTable`` with the three calls
``VectorIndex.sync`` makes (``read``, ``version``, ``changes_since``), over a real Delta table with the
change data feed on, so the sync is tested against what delta-rs really returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

MODEL_VERSION = "testpack-0123456789ab"
INDEXED_DATE = "2026-11-05"  # the month of the faces' shard, unless a test names another

SCHEMA = pa.schema(
    [
        pa.field("face_id", pa.string(), nullable=False),
        pa.field("image_bucket", pa.string(), nullable=False),
        pa.field("image_key", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("face_index", pa.int32()),
        pa.field("bbox", pa.list_(pa.float32())),
        pa.field("embedding", pa.list_(pa.float32())),
        pa.field("quality_passed", pa.bool_()),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("indexed_date", pa.string(), nullable=False),
    ]
)


def unit_vectors(count: int, dimension: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def face_batch(
    vectors: np.ndarray,
    *,
    start: int = 0,
    model_version: str = MODEL_VERSION,
    quality: list[bool] | None = None,
    keys: list[str] | None = None,
    indexed_date: str = INDEXED_DATE,
) -> pa.Table:
    count = len(vectors)
    ids = [f"{model_version[:4]}-face-{start + i:06d}" for i in range(count)]
    return pa.table(
        {
            "face_id": ids,
            "image_bucket": ["photos"] * count,
            "image_key": keys or [f"img/{start + i:06d}.jpg" for i in range(count)],
            "status": ["ok"] * count,
            "face_index": pa.array([0] * count, pa.int32()),
            "bbox": [[1.0, 2.0, 30.0, 40.0]] * count,
            "embedding": [list(map(float, v)) for v in vectors],
            "quality_passed": quality or [True] * count,
            "model_version": [model_version] * count,
            "indexed_date": [indexed_date] * count,
        },
        schema=SCHEMA,
    )


class DeltaFaces:
    """A Delta table of face rows with the change data feed on."""

    def __init__(self, path: Path) -> None:
        self.uri = str(path)

    def _table(self) -> Any:
        from deltalake import DeltaTable

        return DeltaTable(self.uri)

    def append(self, rows: pa.Table) -> None:
        from deltalake import write_deltalake

        write_deltalake(
            self.uri,
            rows,
            mode="append",
            partition_by=["model_version", "indexed_date"],
            configuration={"delta.enableChangeDataFeed": "true"},
        )

    def delete(self, predicate: str) -> int:
        return int(self._table().delete(predicate)["num_deleted_rows"])

    def purge_history(self) -> None:
        self._table().vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)

    def read(
        self, model_version: str | None = None, columns: list[str] | None = None, filter: str | None = None
    ) -> pa.Table:
        table = self._table().to_pyarrow_table()
        if model_version is not None:
            table = table.filter(pa.compute.equal(table["model_version"], model_version))
        if columns:
            table = table.select([name for name in columns if name in table.column_names])
        return table

    def version(self) -> int:
        return int(self._table().version())

    def changes_since(self, version: int) -> pa.Table:
        reader = self._table().load_cdf(starting_version=version + 1)
        return pa.table(reader.read_all())  # deltalake 1.x answers with an arro3 table

    def model_versions(self) -> dict[str, int]:
        table = self._table().to_pyarrow_table(columns=["model_version"])
        versions, counts = np.unique(np.asarray(table["model_version"].to_pylist()), return_counts=True)
        return {str(v): int(c) for v, c in zip(versions, counts, strict=True)}
