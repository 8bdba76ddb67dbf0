"""Shards of the vector index: one LanceDB table per model version and month of ``indexed_date``.

Pure decisions over plain data (no LanceDB, no I/O): table names, which rows and which changes of the
face table belong to a shard, which shards a sync has to visit, and how the per-shard answers of a
search merge into one top-k. :class:`faceidx.store.vectors.VectorIndex` does the I/O.

* **Key**: a shard is ``(model_version, month)``, the month (``YYYY-MM``) of the face's
  ``indexed_date``, the face table's date partition column (:mod:`faceidx.store.schema`). Its table is
  :func:`shard_name`: ``faces__<version>__<YYYY>_<MM>``; the schema metadata records both, so a table
  name is never the only evidence of what it holds.
* **A face that changes month** (its row rewritten with another ``indexed_date``) leaves a pre-image or
  a delete in its old month's partition: :func:`shard_changes` deletes it from the old shard and
  upserts it into the new one, whichever of the two syncs first.
* **Merging**: each shard answers its own top-k; the global top-k is the top-k of their union
  (:func:`merge_top_k`), the same faces as one index over all of them when every shard is searched
  exactly.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from faceidx.store.vector_rows import DATE_COLUMN, latest_changes, months_of

if TYPE_CHECKING:
    import pyarrow as pa

TABLE_PREFIX = "faces__"
SHARD_SEPARATOR = "__"
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def table_name(model_version: str) -> str:
    """``faces__<version>``: characters outside ``[A-Za-z0-9_.-]`` become ``_``, plus a short hash
    of the exact version when anything was replaced, so two versions never share a table. The name of
    the version's unsharded table (before sharding), and the stem of its shards' names."""
    if not model_version:
        raise ValueError("a model version is required")
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", model_version)
    if clean != model_version:
        clean = f"{clean}_{hashlib.sha256(model_version.encode()).hexdigest()[:8]}"
    return TABLE_PREFIX + clean


def check_month(month: str) -> str:
    found = _MONTH.match(month or "")
    if found is None or not 1 <= int(found.group(2)) <= 12:
        raise ValueError(f"a shard month is YYYY-MM, got {month!r}")
    return month


def shard_name(model_version: str, month: str) -> str:
    """``faces__<version>__<YYYY>_<MM>``: the LanceDB table of one model version's faces of one month."""
    return f"{table_name(model_version)}{SHARD_SEPARATOR}{check_month(month).replace('-', '_')}"


def month_in_name(name: str, model_version: str) -> str | None:
    """The month of ``name`` if it is a shard name of ``model_version``, else None."""
    stem = table_name(model_version) + SHARD_SEPARATOR
    if not name.startswith(stem):
        return None
    found = re.fullmatch(r"(\d{4})_(\d{2})", name[len(stem) :])
    return f"{found.group(1)}-{found.group(2)}" if found else None


def month_filter(month: str) -> str:
    """The SQL predicate of the face table's rows of ``month`` (prunes ``indexed_date`` partitions)."""
    year, number = (int(part) for part in check_month(month).split("-"))
    after = f"{year + 1:04d}-01" if number == 12 else f"{year:04d}-{number + 1:02d}"
    return f"{DATE_COLUMN} >= '{month}-01' AND {DATE_COLUMN} < '{after}-01'"


@dataclass(frozen=True, order=True)
class VectorShard:
    """One shard: the faces of ``model_version`` whose ``indexed_date`` falls in ``month`` (YYYY-MM)."""

    model_version: str
    month: str

    def __post_init__(self) -> None:
        check_month(self.month)

    @property
    def name(self) -> str:
        return shard_name(self.model_version, self.month)


def rows_of_month(data: pa.Table, month: str) -> pa.Table:
    import pyarrow.compute as pc

    return data.filter(pc.equal(months_of(data), month))


def shard_changes(changes: pa.Table, month: str) -> tuple[pa.Table, list[str]]:
    """A change feed of one model version -> what one month's shard must do: (rows to upsert,
    face_ids to delete).

    The net effect is decided over the whole version's feed (:func:`latest_changes`), so a face moved
    to another month is upserted in its new month only, and deleted from every month where the feed
    shows a row of it (insert, pre-image, post-image or delete) and it no longer lives there; a face
    whose last row is not an ``ok`` face (an error row) is deleted likewise.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if changes.num_rows == 0 or "_change_type" not in changes.column_names:
        return changes.slice(0, 0), []
    upserts, _ = latest_changes(changes)
    here = upserts.filter(pc.equal(months_of(upserts), month)) if upserts.num_rows else upserts
    touched = changes.filter(pc.equal(months_of(changes), month))["face_id"]
    staying = pa.array(here["face_id"].to_pylist(), pa.string())
    leaving = pc.unique(touched.combine_chunks()).filter(
        pc.invert(pc.is_in(pc.unique(touched.combine_chunks()), staying))
    )
    return here, sorted(leaving.to_pylist())


def last_change_by_shard(changes: pa.Table) -> dict[tuple[str, str], int]:
    """``(model_version, month)`` -> the last Delta version whose changes touch that shard."""
    import numpy as np

    if changes.num_rows == 0 or "_commit_version" not in changes.column_names:
        return {}
    versions = changes["model_version"].to_pylist()
    months = months_of(changes).to_pylist()
    commits = np.asarray(changes["_commit_version"].to_numpy(zero_copy_only=False), dtype=np.int64)
    last: dict[tuple[str, str], int] = {}
    for version, month, commit in zip(versions, months, commits.tolist(), strict=True):
        key = (str(version), str(month))
        last[key] = max(last.get(key, -1), int(commit))
    return last


@dataclass(frozen=True)
class ShardPlan:
    """Whether a shard's sync has work to do, and why."""

    shard: VectorShard
    needs_sync: bool
    reason: str
    recorded: int | None  # the face-table version the shard was last synced to
    target: int  # the face-table version the plan looked at


def plan_shards(
    target: int,
    table_months: Mapping[str, Iterable[str]],
    index_months: Mapping[str, Iterable[str]],
    recorded: Mapping[VectorShard, int | None],
    last_change: Mapping[tuple[str, str], int] | None,
) -> list[ShardPlan]:
    """Every shard the face table or the index holds, each with its verdict.

    ``table_months``/``index_months``: model version -> months with faces in the face table / with a
    shard in the index. ``recorded``: the face-table version each shard was synced to (absent: never).
    ``last_change``: :func:`last_change_by_shard` of the feed since the oldest recorded version, None
    when the feed cannot answer. A shard is skipped only when the feed proves that nothing of its
    month changed since its sync.
    """
    keys = {
        VectorShard(version, month)
        for source in (table_months, index_months)
        for version, months in source.items()
        for month in months
    }
    plans = []
    for shard in sorted(keys):
        was = recorded.get(shard)
        in_index = shard.month in set(index_months.get(shard.model_version, ()))
        if was is None or not in_index:
            verdict = (True, "new" if not in_index else "no sync state")
        elif was > target:
            verdict = (True, f"the face table is at {target}, below the recorded {was}: reload")
        elif was == target:
            verdict = (False, "up to date")
        elif last_change is None:
            verdict = (True, "the change data feed cannot answer")
        elif last_change.get((shard.model_version, shard.month), -1) > was:
            verdict = (True, f"changed since {was}")
        else:
            verdict = (False, f"no change since {was}")
        plans.append(ShardPlan(shard, verdict[0], verdict[1], was, target))
    return plans


class Ranked(Protocol):
    @property
    def face_id(self) -> str: ...

    @property
    def similarity(self) -> float: ...


R = TypeVar("R", bound=Ranked)


def merge_top_k(answers: Iterable[Iterable[R]], k: int) -> list[R]:
    """The ``k`` most similar of the shards' answers to one query, most similar first (ties by
    face_id); a face found in two shards (moved month, the old shard not yet synced) counts once."""
    best: dict[str, R] = {}
    for answer in answers:
        for match in answer:
            held = best.get(match.face_id)
            if held is None or match.similarity > held.similarity:
                best[match.face_id] = match
    return sorted(best.values(), key=lambda m: (-m.similarity, m.face_id))[:k]
