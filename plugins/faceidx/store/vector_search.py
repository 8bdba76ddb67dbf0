"""The vector index's search over the open tables of one model version (its month shards): each table
answers its own top-k, in threads when there are several, and the answers merge into one top-k
(:func:`faceidx.store.vector_shards.merge_top_k`). :meth:`faceidx.store.vectors.VectorIndex.search`
opens the tables and retries; this module only asks them."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceidx.store.vector_rows import FACE_COLUMNS
from faceidx.store.vector_shards import merge_top_k

# At most this many shards are searched at once (one thread each; Lance's scans release the GIL).
SEARCH_THREADS = 8


@dataclass(frozen=True)
class Match:
    face_id: str
    image_bucket: str
    image_key: str
    face_index: int
    bbox: tuple[float, ...]
    similarity: float
    model_version: str
    quality_passed: bool | None = None


def match_of(row: dict[str, Any], model_version: str) -> Match:
    """A result row of a Lance search (cosine ``_distance``) as a :class:`Match`."""
    return Match(
        face_id=row["face_id"],
        image_bucket=row["image_bucket"],
        image_key=row["image_key"],
        face_index=int(row["face_index"]),
        bbox=tuple(float(v) for v in (row["bbox"] or ())),
        similarity=min(1.0, float(1.0 - row["_distance"])),
        model_version=model_version,
        quality_passed=row.get("quality_passed"),
    )


def search_table(
    lance_table: Any,
    queries: np.ndarray,
    model_version: str,
    *,
    indexed: bool,
    k: int,
    quality_only: bool,
    nprobes: int,
    ef: int,
    refine_factor: int,
    exact: bool,
) -> list[list[Match]]:
    """The top ``k`` of one table for each query: through its ANN index when ``indexed`` (candidates
    re-ranked on the stored vectors), else a flat scan (``exact`` bypasses an index the table has)."""
    answers: list[list[Match]] = []
    for query in queries:
        builder = lance_table.search(query, vector_column_name="vector").distance_type("cosine")
        if quality_only:
            builder = builder.where("quality_passed = true", prefilter=True)
        if indexed:
            builder = builder.nprobes(nprobes).ef(max(ef, k)).refine_factor(refine_factor)
        elif exact:
            builder = builder.bypass_vector_index()
        found = builder.select([*FACE_COLUMNS, "_distance"]).limit(k).to_arrow().to_pylist()
        answers.append([match_of(row, model_version) for row in found])
    return answers


def search_tables(
    tables: Sequence[Any],
    queries: np.ndarray,
    model_version: str,
    *,
    indexed: Sequence[bool],
    k: int,
    pool: Executor | None,
    **options: Any,
) -> list[list[Match]]:
    """The top ``k`` over every table for each query: each table's top ``k`` (on ``pool`` when there
    are several tables), merged. With flat (exact) tables, the same faces as one table of them all."""

    def one(position: int) -> list[list[Match]]:
        return search_table(
            tables[position], queries, model_version, indexed=indexed[position], k=k, **options
        )

    if len(tables) == 1 or pool is None:
        per_table = [one(position) for position in range(len(tables))]
    else:
        per_table = list(pool.map(one, range(len(tables))))
    if len(per_table) == 1:
        return per_table[0]
    return [merge_top_k((answers[row] for answers in per_table), k) for row in range(len(queries))]
