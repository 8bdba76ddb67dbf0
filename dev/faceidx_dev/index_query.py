"""Reading the face index: deduplicated rows and nearest-face queries.

The worker writes ``faces/dt=YYYY-MM-DD/part-<uuid>.parquet`` with one row per face (see the README's
"Worker" section). Delivery is at-least-once, so an image may appear more than once; the dedup rule
keeps, per ``(image_bucket, image_key, image_etag, face_index)``, the row with the latest
``indexed_at``. Embeddings are L2-normalized, so cosine similarity is a dot product.

numpy and pyarrow are imported inside the functions: DAG files may import this module cheaply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEDUP_KEY = ("image_bucket", "image_key", "image_etag", "face_index")


def read_index(root: Path) -> Any:
    """All Parquet parts under ``root`` (a local folder) as one pyarrow Table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = sorted(root.rglob("*.parquet"))
    if not parts:
        raise FileNotFoundError(f"no Parquet files under {root}")
    return pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default")


def deduplicate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (bucket, key, etag, face_index): the latest ``indexed_at`` wins."""
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row.get(k) for k in DEDUP_KEY)
        kept = latest.get(key)
        stamp, kept_stamp = row.get("indexed_at"), (kept or {}).get("indexed_at")
        if kept is None or (stamp is not None and (kept_stamp is None or stamp > kept_stamp)):
            latest[key] = row
    return list(latest.values())


def nearest_faces(
    probe: list[float], faces: list[dict[str, Any]], top: int = 5
) -> list[tuple[float, dict[str, Any]]]:
    """The ``top`` faces most similar to ``probe`` (cosine), best first."""
    import numpy as np

    with_embedding = [f for f in faces if f.get("embedding") is not None]
    if not with_embedding:
        return []
    matrix = np.asarray([f["embedding"] for f in with_embedding], dtype=np.float32)
    vector = np.asarray(probe, dtype=np.float32)
    scores = matrix @ (vector / (np.linalg.norm(vector) or 1.0))
    order = np.argsort(-scores)[:top]
    return [(float(scores[i]), with_embedding[i]) for i in order]
