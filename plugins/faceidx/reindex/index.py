"""The landing files not yet ingested: the half of the ``only_missing`` lookup the face table lacks.

The worker writes ``<OUTPUT_URI>/faces/dt=YYYY-MM-DD/part-<uuid>.parquet`` (``dt`` = the day it
indexed the rows) with one row per face, or one row per image without faces or with an error;
``face_table`` moves them into the face table and deletes them. Here only the six columns of
:data:`faceidx.store.indexed.INDEXED_COLUMNS` are read: pyarrow fetches just those column chunks plus
the footer, so the embeddings are never downloaded. Which rows count is decided by
:mod:`faceidx.store.indexed`, the same rule the face table applies.

pyarrow is imported inside the functions: this module must stay cheap to import.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

from faceidx.common.uris import split_s3_uri
from faceidx.reindex.selection import ReindexRequestError
from faceidx.store.indexed import INDEXED_COLUMNS, IndexedQuery, indexed_pairs

INDEX_COLUMNS = INDEXED_COLUMNS
INDEX_DIR = "faces"
_DAY = re.compile(r"(?:^|/)dt=(\d{4}-\d{2}-\d{2})/")


@dataclass(frozen=True)
class IndexLocation:
    """The index root: an S3 bucket + prefix, or a local directory (as the worker's OUTPUT_URI)."""

    bucket: str | None
    prefix: str
    local_dir: Path | None

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    @property
    def faces_prefix(self) -> str:
        """The key prefix of the index files in the bucket, ending in ``/``."""
        return "/".join(p for p in (self.prefix.strip("/"), INDEX_DIR) if p) + "/"

    def describe(self) -> str:
        if self.bucket is not None:
            return f"s3://{self.bucket}/{self.faces_prefix}"
        return str(self.local_dir / INDEX_DIR) if self.local_dir else "?"


def parse_output_uri(raw: str) -> IndexLocation:
    """``s3://bucket/prefix`` or a local directory (``file://`` allowed), as the worker accepts."""
    raw = raw.strip()
    if not raw:
        raise ReindexRequestError(
            "only_missing needs the index location: set the output_uri Param or the Airflow Variable "
            "faceidx_output_uri (face_infra_bootstrap sets it), or turn only_missing off."
        )
    if raw.startswith("s3://"):
        parts = split_s3_uri(raw)
        if parts is None:
            raise ReindexRequestError(f"output_uri {raw!r} has no bucket: use s3://bucket/prefix")
        return IndexLocation(bucket=parts[0], prefix=parts[1], local_dir=None)
    if "://" in raw and not raw.startswith("file://"):
        raise ReindexRequestError(f"output_uri {raw!r}: only s3:// URIs or local directories are supported")
    return IndexLocation(bucket=None, prefix="", local_dir=Path(raw.removeprefix("file://")).expanduser())


def partition_day(key: str) -> date | None:
    """The ``dt=`` day of an index file key or path; ``None`` for anything else."""
    if not key.endswith(".parquet"):
        return None
    match = _DAY.search(key)
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def local_index_files(location: IndexLocation) -> list[tuple[str, int]]:
    """``(path, size)`` of every ``.parquet`` file under ``<dir>/faces/``."""
    assert location.local_dir is not None
    root = location.local_dir / INDEX_DIR
    if not root.is_dir():
        return []
    return sorted((str(p), p.stat().st_size) for p in root.rglob("*.parquet") if p.is_file())


def indexed_pairs_in_file(source: IO[bytes] | str, query: IndexedQuery) -> set[tuple[str, str]]:
    """``(key, bare etag)`` that one landing file says are indexed for ``query`` (its ``ok`` rows of the
    query's bucket, keys and model), by the same rule as the face table's
    (:func:`faceidx.store.indexed.indexed_pairs`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = getattr(source, "name", source)
    try:
        parquet = pq.ParquetFile(source)
        missing = [c for c in INDEX_COLUMNS if c not in parquet.schema_arrow.names]
        if missing:
            raise ReindexRequestError(
                f"index file {name} lacks column(s) {', '.join(missing)}: it was not written by the faceidx "
                "worker. Point output_uri at the worker's OUTPUT_URI."
            )
        table = parquet.read(columns=list(INDEX_COLUMNS))
    except (pa.ArrowException, OSError) as exc:
        raise ReindexRequestError(
            f"index file {name} cannot be read as Parquet ({exc}). Move the damaged file out of the index "
            "(the worker writes whole files only), or run with only_missing off."
        ) from exc
    return indexed_pairs(table, query)


@dataclass
class LandingLookup:
    """What the landing files said: the indexed pairs, the files read, and those gone meanwhile."""

    pairs: set[tuple[str, str]] = field(default_factory=set)
    files_read: int = 0
    files_vanished: int = 0


def lookup_indexed(
    files: Iterable[str],
    opener: Callable[[str], Any],
    query: IndexedQuery,
    *,
    vanished: Callable[[BaseException], bool] = lambda exc: False,
) -> LandingLookup:
    """Union of :func:`indexed_pairs_in_file` over ``files``; ``opener(name)`` gives a file-like or path.

    A file for which ``vanished(error)`` is true was deleted after the listing (``face_table``
    ingested it, or set it aside): it is skipped, because the face table, read afterwards, holds its
    rows.
    """
    found = LandingLookup()
    if not query.keys:
        return found
    for name in files:
        try:
            found.pairs |= indexed_pairs_in_file(opener(name), query)
        except (OSError, RuntimeError, ValueError) as exc:
            if not vanished(exc):
                raise
            found.files_vanished += 1
            continue
        found.files_read += 1
    return found
