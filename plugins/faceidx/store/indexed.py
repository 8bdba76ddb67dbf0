"""Is an image indexed? One question, asked of the face table and of the landing files alike.

An image is one version of one S3 object, ``(bucket, key, etag)``: an object overwritten with new
content has a new ETag and is a new image. It is **indexed for a model** when the face table (or a
landing file not yet ingested) holds an ``ok`` row of it for that model: one ``model_version``, or
any version of one ``model_pack``, or (:class:`IndexedModel` with neither) any version at all.

* An ``error`` row does not count: the image was tried and failed, and trying again is what the
  ingest's dedup rule expects (an ``ok`` outcome replaces an ``error`` one).
* A row of another model version (or pack) does not count: embeddings of two models cannot be
  compared, so an image indexed only with the old pack is missing for the new one.
* ETags are compared without quotes (S3 lists them quoted, events and rows hold them bare).

:meth:`faceidx.store.table.FaceTable.indexed_images` answers it for the table (reading six columns of
the partitions that can hold the rows, with the predicate pushed down); :func:`indexed_pairs` answers it
for rows already in memory (a landing file). Both apply :class:`IndexedQuery`, so the two cannot drift.

pyarrow is imported inside the functions: face_reindex imports this module and must stay cheap to import.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from faceidx.common.uris import normalise_etag

INDEXED_COLUMNS = ("image_bucket", "image_key", "image_etag", "status", "model_pack", "model_version")
STATUS_OK = "ok"
KEYS_PER_QUERY = 2000  # keys in one table query's IN list


def sql_string(value: str) -> str:
    """A SQL string literal (DataFusion / delta-rs predicates)."""
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class IndexedModel:
    """For which model an image must be indexed: one version, every version of one pack, or any."""

    model_version: str | None = None
    model_pack: str | None = None

    def describe(self) -> str:
        if self.model_version:
            return f"model_version {self.model_version}"
        if self.model_pack:
            return f"model_pack {self.model_pack} (any of its versions)"
        return "any model version"


@dataclass(frozen=True)
class IndexedQuery:
    """Which of ``keys`` in ``bucket`` are indexed for ``model``.

    ``since``: the earliest ``indexed_date`` that can hold their rows (an image is never indexed before
    it was written), so the table reads only the partitions from that day on; None reads every day.
    """

    bucket: str
    keys: frozenset[str]
    model: IndexedModel = IndexedModel()
    since: date | None = None

    def chunks(self, size: int | None = None) -> Iterator[list[str]]:
        """The keys in sorted runs of at most ``size`` (:data:`KEYS_PER_QUERY`), one table query each."""
        ordered = sorted(self.keys)
        step = size or KEYS_PER_QUERY
        for start in range(0, len(ordered), step):
            yield ordered[start : start + step]

    def predicate(self, keys: Iterable[str]) -> str:
        """The table predicate for some of the keys (partition columns first, so they prune)."""
        conditions = []
        if self.model.model_version:
            conditions.append(f"model_version = {sql_string(self.model.model_version)}")
        if self.since is not None:
            conditions.append(f"indexed_date >= {sql_string(self.since.isoformat())}")
        if self.model.model_pack:
            conditions.append(f"model_pack = {sql_string(self.model.model_pack)}")
        conditions.append(f"status = {sql_string(STATUS_OK)}")
        conditions.append(f"image_bucket = {sql_string(self.bucket)}")
        conditions.append(f"image_key IN ({', '.join(sql_string(key) for key in keys)})")
        return " AND ".join(conditions)

    def mask(self, rows: Any) -> Any:
        """The same test on Arrow rows holding :data:`INDEXED_COLUMNS` (nulls never match)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        mask = pc.and_(
            pc.equal(rows["status"], STATUS_OK),
            pc.and_(
                pc.equal(rows["image_bucket"], self.bucket),
                pc.is_in(rows["image_key"], value_set=pa.array(sorted(self.keys), type=pa.string())),
            ),
        )
        if self.model.model_version:
            mask = pc.and_(mask, pc.equal(rows["model_version"], self.model.model_version))
        if self.model.model_pack:
            mask = pc.and_(mask, pc.equal(rows["model_pack"], self.model.model_pack))
        return pc.fill_null(mask, False)


def indexed_pairs(rows: Any, query: IndexedQuery) -> set[tuple[str, str]]:
    """``(key, bare etag)`` of the rows that say an image of ``query`` is indexed."""
    if not query.keys or rows.num_rows == 0:
        return set()
    hits = rows.filter(query.mask(rows))
    pairs: set[tuple[str, str]] = set()
    for key, etag in zip(hits["image_key"].to_pylist(), hits["image_etag"].to_pylist(), strict=True):
        bare = normalise_etag(etag)
        if bare is not None:
            pairs.add((key, bare))
    return pairs
