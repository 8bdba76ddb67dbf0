"""Parquet writer, bounded by size and time, to S3 or a local directory.

Rows accumulate in memory with an opaque *token* per image (the loop uses it to know which SQS
messages are fully written). :meth:`ParquetSink.flush` writes one file per ``dt`` partition
(``<FACEIDX_OUTPUT_URI>/faces/dt=YYYY-MM-DD/part-<uuid>.parquet``, the date of ``indexed_at`` in UTC)
and embedding dimension (:func:`faceidx_worker.rows.schema_for` of it) and returns the tokens whose
rows are now durable: S3 acknowledged the PutObject, or the local file was fsynced and renamed into
place. Only then may their messages be deleted.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from faceidx_worker.rows import DIM_KEY, estimated_row_bytes, rows_to_table
from faceidx_worker.settings import OutputLocation

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.apache.parquet"


class SinkError(RuntimeError):
    """Rows could not be written (after botocore's retries). The worker stops without deleting."""


@dataclass(frozen=True)
class FlushResult:
    tokens: list[Any]
    rows: int
    files: list[str]
    seconds: float


def partition_key(prefix: str, day: str, name: str) -> str:
    parts = [p for p in (prefix.strip("/"), "faces", f"dt={day}", name) if p]
    return "/".join(parts)


class ParquetSink:
    def __init__(
        self,
        location: OutputLocation,
        *,
        s3_client: Any = None,
        max_bytes: int = 64 * 1024 * 1024,
        max_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if location.is_s3 and s3_client is None:
            raise ValueError("an S3 output location needs an s3 client")
        self.location = location
        self.s3 = s3_client
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.clock = clock
        self._rows: list[dict[str, Any]] = []
        self._tokens: list[Any] = []
        self._bytes = 0
        self._first_added: float | None = None

    @property
    def pending_rows(self) -> int:
        return len(self._rows)

    @property
    def pending_tokens(self) -> int:
        return len(self._tokens)

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def add(self, rows: list[dict[str, Any]], token: Any) -> None:
        if self._first_added is None:
            self._first_added = self.clock()
        self._rows.extend(rows)
        self._tokens.append(token)
        self._bytes += sum(estimated_row_bytes(row) for row in rows)

    def should_flush(self) -> bool:
        if not self._tokens:
            return False
        if self._bytes >= self.max_bytes:
            return True
        return self._first_added is not None and self.clock() - self._first_added >= self.max_seconds

    def seconds_until_due(self) -> float | None:
        """Seconds until the time bound forces a flush; ``None`` when nothing is pending."""
        if self._first_added is None:
            return None
        return max(0.0, self.max_seconds - (self.clock() - self._first_added))

    def flush(self) -> FlushResult:
        """Write everything pending. Raises :class:`SinkError`; on error the rows stay pending."""
        if not self._tokens:
            return FlushResult([], 0, [], 0.0)
        started = time.perf_counter()
        groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
        for row in self._rows:
            groups[(row["indexed_at"].strftime("%Y-%m-%d"), row[DIM_KEY])].append(row)
        files = []
        for (day, dim), rows in sorted(groups.items()):
            table = rows_to_table(rows, dim)
            name = f"part-{uuid.uuid4()}.parquet"
            files.append(self._write(table, day, name))
        result = FlushResult(list(self._tokens), len(self._rows), files, time.perf_counter() - started)
        self._rows, self._tokens, self._bytes, self._first_added = [], [], 0, None
        return result

    def _write(self, table: pa.Table, day: str, name: str) -> str:
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer, compression="zstd")
        payload = buffer.getvalue().to_pybytes()
        if self.location.is_s3:
            key = partition_key(self.location.prefix, day, name)
            uri = f"s3://{self.location.bucket}/{key}"
            try:
                self.s3.put_object(
                    Bucket=self.location.bucket, Key=key, Body=payload, ContentType=CONTENT_TYPE
                )
            except Exception as exc:  # botocore already retried; any failure here stops the worker
                raise SinkError(
                    f"writing {uri} failed: {exc}. Check that the job role may s3:PutObject there; "
                    "no message was deleted, so SQS will re-deliver them"
                ) from exc
            return uri
        assert self.location.local_dir is not None
        target = self.location.local_dir / partition_key("", day, name)
        try:
            write_durably(target, payload)
        except OSError as exc:
            raise SinkError(f"writing {target} failed: {exc}; no message was deleted") from exc
        return str(target)


def write_durably(target: Path, payload: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
