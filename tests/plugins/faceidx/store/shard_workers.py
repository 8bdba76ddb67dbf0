"""What the other process does in the shard tests (spawned: these functions must be importable)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from faceidx.store.location import IndexLocation


def sync_shard_and_die(root: str, month: str) -> None:
    """Sync one month's shard and SIGKILL this process once its table is written, before the sync
    records the face table's version."""
    from faceidx.store.vector_shards import VectorShard
    from faceidx.store.vectors import VectorIndex
    from tests.plugins.faceidx.store.vector_faces import MODEL_VERSION, DeltaFaces

    def die(*_: Any, **__: Any) -> str:
        os.kill(os.getpid(), signal.SIGKILL)
        return "flat"

    index = VectorIndex(IndexLocation(root))
    index._maintain_index = die  # type: ignore[method-assign]
    index.sync_shard(DeltaFaces(Path(root) / "table" / "faces"), VectorShard(MODEL_VERSION, month))
