"""What the other process does in the race tests (spawned: these functions must be importable).

Each worker runs for a bounded time or a fixed amount of work, and reports through the
``multiprocessing`` objects it is given; its own log goes to the child's stderr.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from faceidx.store.location import IndexLocation


class _Counter(logging.Handler):
    """Counts the retry warnings of :mod:`faceidx.store.retry` by reason."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reasons: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        reason = str(record.args[1]) if isinstance(record.args, tuple) and len(record.args) > 1 else "?"
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


def count_retries() -> _Counter:
    counter = _Counter()
    logger = logging.getLogger("faceidx.store.retry")
    logger.addHandler(counter)
    logger.setLevel(logging.INFO)
    return counter


def sync_and_purge(root: str, seconds: float, purged: Any, rounds: Any) -> None:
    """Add and delete faces in the Delta table, sync the vector index and purge its history, in a loop."""
    from faceidx.store.vectors import VectorIndex
    from tests.plugins.faceidx.store.vector_faces import MODEL_VERSION, DeltaFaces, face_batch, unit_vectors

    faces = DeltaFaces(Path(root) / "table" / "faces")
    index = VectorIndex(IndexLocation(root))
    deadline = time.monotonic() + seconds
    start = 10_000
    while time.monotonic() < deadline or rounds.value < 2:
        faces.append(face_batch(unit_vectors(20, 32, seed=start), start=start))
        faces.delete(f"face_id = 'test-face-{start + 3:06d}'")
        index.sync(faces, MODEL_VERSION)
        report = index.purge_history()
        assert report.purged_at, report
        purged.set()
        rounds.value += 1
        start += 20


def ingest_compact_purge(output_uri: str, seconds: float, purged: Any, rounds: Any) -> None:
    """Ingest a landing file, compact, and vacuum with retention 0, in a loop."""
    from faceidx.store.table import FaceTable
    from tests.plugins.faceidx.store.table_builders import Image, later, write_landing

    location = IndexLocation(output_uri=output_uri)
    table = FaceTable.open(location)
    deadline = time.monotonic() + seconds
    number = 0
    while time.monotonic() < deadline or rounds.value < 2:
        write_landing(location, [Image(f"more-{number}.jpg", at=later(number))])
        table.ingest()
        table.compact()
        table.purge_history()
        purged.set()
        rounds.value += 1
        number += 1


def delete_images(output_uri: str, keys: list[str], go: Any, results: Any) -> None:
    """Wait for ``go``, then delete each image's rows in its own commit; report rows and retries."""
    from faceidx.store.table import FaceTable

    counter = count_retries()
    table = FaceTable.open(IndexLocation(output_uri=output_uri))
    go.wait(30)
    deleted = sum(table.delete(f"image_key = '{key}'") for key in keys)
    results.put({"deleted": deleted, "retries": counter.reasons})
