"""The vector index's ANN index: IVF-HNSW-SQ parameters, their build, and the query-time defaults.

One HNSW graph per :data:`FACES_PER_PARTITION` faces of a table (a month shard), at most
:data:`MAX_PARTITIONS`, over 8-bit scalar-quantised vectors; ``make bench-search`` chose it over IVF-PQ
(docs/search.md). When a table gets one is the sync's decision (:mod:`faceidx.store.vectors`).
"""

from __future__ import annotations

import math
from typing import Any

ANN_INDEX = "ivf_hnsw_sq"  # the SyncReport's name for it
# One HNSW graph per FACES_PER_PARTITION faces, at most MAX_PARTITIONS graphs (1,000,000 faces: 16).
FACES_PER_PARTITION = 62_500
MAX_PARTITIONS = 16
HNSW_M = 20  # graph neighbours per face
HNSW_EF_CONSTRUCTION = 150
# Query-time defaults for an indexed table, measured by `make bench-search` on 10^6 faces:
# every partition probed, 100 graph candidates each, k x 4 candidates re-ranked exactly.
DEFAULT_NPROBES = MAX_PARTITIONS
DEFAULT_EF = 100
DEFAULT_REFINE_FACTOR = 4


def ann_partitions(rows: int) -> int:
    """IVF partitions of the HNSW index: one per :data:`FACES_PER_PARTITION` faces, 1 to
    :data:`MAX_PARTITIONS`. Each partition is searched as its own graph, so few large partitions keep
    both the probes per query and the share of a face's true neighbours outside the probed ones small."""
    return int(min(MAX_PARTITIONS, max(1, math.ceil(rows / FACES_PER_PARTITION))))


def build_ann_index(lance_table: Any, rows: int, *, num_partitions: int | None = None) -> int:
    """(Re)build the cosine IVF-HNSW-SQ index of ``vector``; returns its partition count."""
    from lancedb.index import HnswSq

    partitions = int(num_partitions or ann_partitions(rows))
    config = HnswSq(
        distance_type="cosine", num_partitions=partitions, m=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION
    )
    lance_table.create_index("vector", config=config, replace=True)
    return partitions


def deletion_rows(lance_table: Any) -> int:
    metadata = lance_table.list_versions()[-1].get("metadata") or {}
    return int(metadata.get("total_deletion_file_rows", 0) or 0)
