"""The vector index's month shards against one index of the same faces: build, query latency, recall,
memory, side by side in one run.

``python benchmarks/bench_search.py --shards 4`` (``make bench-search BENCH_SEARCH_ARGS="--shards 4"``;
``--n`` faces, default 10^6):

1. **Data**: ``--n`` synthetic 512-d faces (``benchmarks/synthetic_faces.py``), ``--queries`` fresh
   faces of people in the index, exact top-10 by numpy as the ground truth.
2. **One index**: every face in one table (one shard), IVF-HNSW-SQ built by ``build_ann_index`` with
   the index's own partition rule. **Shards**: the same faces dealt over ``--shards`` months, each
   month its own table and index, as ``VectorIndex.sync_shard`` leaves them. Each table is written and
   indexed in its own process (as one Batch job per shard would be): its seconds and its peak memory
   (the process's high-water RSS, the faces it holds included) are measured one by one.
3. **Search**: the same queries through ``VectorIndex.search`` with the defaults, one at a time, in a
   fresh process per layout: p50/p95 latency, recall@10 against exact, the process's peak memory. The
   sharded index also answers exactly (every shard scanned, ``exact=True``) on ``--exact-queries``
   queries: the merged top-10 must be the global top-10 (recall 1.0).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MODEL_VERSION = "bench-synthetic-512"
K = 10


def _peak_rss_mib() -> float:
    """This process's high-water resident memory (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _build_one(root: str, month: str, vectors_file: str, start: int, stop: int, answer: Any) -> None:
    """In a child process: write faces [start, stop) as the month's shard table, then build its index."""
    import pyarrow as pa

    from faceidx.store.location import IndexLocation
    from faceidx.store.vector_shards import VectorShard
    from faceidx.store.vectors import VectorIndex, build_ann_index, index_schema

    began = time.perf_counter()
    vectors = np.load(vectors_file, mmap_mode="r")[start:stop]
    index = VectorIndex(IndexLocation(root))
    shard = VectorShard(MODEL_VERSION, month)
    schema = index_schema(vectors.shape[1], MODEL_VERSION, month)
    table = index.db.create_table(shard.name, schema=schema, mode="overwrite")
    for first in range(0, len(vectors), 200_000):
        part = np.ascontiguousarray(vectors[first : first + 200_000])
        count = len(part)
        ids = [f"face-{start + first + i:08d}" for i in range(count)]
        table.add(
            pa.table(
                {
                    "face_id": pa.array(ids, pa.string()),
                    "image_bucket": pa.array(["bench"] * count, pa.string()),
                    "image_key": pa.array(ids, pa.string()),
                    "face_index": pa.array(np.zeros(count, dtype=np.int32)),
                    "bbox": pa.nulls(count, pa.list_(pa.float32())),
                    "quality_passed": pa.array(np.ones(count, dtype=bool)),
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(part.reshape(-1)), part.shape[1]),
                },
                schema=schema,
            )
        )
    written = time.perf_counter() - began
    began = time.perf_counter()
    partitions = build_ann_index(table, len(vectors))
    answer.put(
        {
            "month": month,
            "faces": len(vectors),
            "write_s": written,
            "index_s": time.perf_counter() - began,
            "partitions": partitions,
            "peak_rss_mib": _peak_rss_mib(),
        }
    )


def _search_all(root: str, queries_file: str, exact_queries: int, answer: Any) -> None:
    """In a child process: every query through VectorIndex.search, one at a time."""
    from faceidx.store.location import IndexLocation
    from faceidx.store.vectors import VectorIndex

    queries = np.load(queries_file)
    index = VectorIndex(IndexLocation(root))
    index.search(queries[:1], model_version=MODEL_VERSION, k=K)  # warm: open the tables, load the indexes
    seconds, found = [], []
    for query in queries:
        began = time.perf_counter()
        matches = index.search(query[None, :], model_version=MODEL_VERSION, k=K)[0]
        seconds.append(time.perf_counter() - began)
        found.append([int(m.face_id.removeprefix("face-")) for m in matches])
    exact, exact_seconds = [], []
    for query in queries[:exact_queries]:
        began = time.perf_counter()
        matches = index.search(query[None, :], model_version=MODEL_VERSION, k=K, exact=True)[0]
        exact_seconds.append(time.perf_counter() - began)
        exact.append([int(m.face_id.removeprefix("face-")) for m in matches])
    answer.put(
        {
            "seconds": seconds,
            "found": found,
            "exact": exact,
            "exact_seconds": exact_seconds,
            "tables": len(index._searched(MODEL_VERSION)),
            "peak_rss_mib": _peak_rss_mib(),
        }
    )


def _in_child(target: Any, *args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    answer = context.Queue()
    process = context.Process(target=target, args=(*args, answer))
    process.start()
    result = answer.get()
    process.join()
    if process.exitcode:
        raise RuntimeError(f"{target.__name__} exited with {process.exitcode}")
    return dict(result)


def _recall(found: list[list[int]], truth: np.ndarray) -> float:
    hits = sum(len(set(row) & set(truth[i].tolist())) for i, row in enumerate(found))
    return hits / max(1, truth[: len(found)].size)


def _ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000.0, q)) if seconds else float("nan")


def measure_shards(
    n: int, shards: int, *, queries: int, exact_queries: int, seed: int, workdir: str, json_path: str
) -> int:
    from synthetic_faces import face_of, synthetic_faces

    from faceidx.common.tables import format_table

    os.environ.setdefault("LANCE_LOG", "error")
    root = Path(workdir or tempfile.mkdtemp(prefix="bench_shards_"))
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    began = time.perf_counter()
    faces = synthetic_faces(n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    query_vectors = face_of(faces.centres[rng.integers(0, len(faces.centres), queries)], rng)
    np.save(root / "vectors.npy", faces.vectors)
    np.save(root / "queries.npy", query_vectors)
    truth = np.empty((queries, K), dtype=np.int64)
    for start in range(0, queries, 50):
        scores = query_vectors[start : start + 50] @ faces.vectors.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        truth[start : start + 50] = np.take_along_axis(top, order, axis=1)
    print(
        f"data: {n:,} synthetic 512-d faces, {queries} queries, exact top-{K}: "
        f"{time.perf_counter() - began:.1f} s"
    )
    del faces

    layouts = {"one index": 1, f"{shards} month shards": shards}
    out: dict[str, Any] = {"n": n, "shards": shards, "layouts": {}}
    rows = []
    for label, count in layouts.items():
        folder = str(root / label.replace(" ", "_"))
        bounds = np.linspace(0, n, count + 1).astype(int)
        builds = []
        for number in range(count):
            month = f"2026-{number + 1:02d}"
            builds.append(
                _in_child(
                    _build_one,
                    folder,
                    month,
                    str(root / "vectors.npy"),
                    int(bounds[number]),
                    int(bounds[number + 1]),
                )
            )
            done = builds[-1]
            print(
                f"{label}: {month} {done['faces']:,} faces written {done['write_s']:.1f} s, indexed "
                f"{done['index_s']:.1f} s ({done['partitions']} partitions), "
                f"peak {done['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
        searched = _in_child(_search_all, folder, str(root / "queries.npy"), exact_queries)
        result = {
            "builds": builds,
            "build_s_total": sum(b["write_s"] + b["index_s"] for b in builds),
            "build_s_longest_shard": max(b["write_s"] + b["index_s"] for b in builds),
            "build_peak_rss_mib_max": max(b["peak_rss_mib"] for b in builds),
            "p50_ms": _ms(searched["seconds"], 50),
            "p95_ms": _ms(searched["seconds"], 95),
            "recall_at_10": _recall(searched["found"], truth),
            "exact_recall_at_10": _recall(searched["exact"], truth),
            "exact_p50_ms": _ms(searched["exact_seconds"], 50),
            "search_peak_rss_mib": searched["peak_rss_mib"],
            "tables_searched": searched["tables"],
        }
        out["layouts"][label] = result
        rows.append(
            (
                label,
                f"{result['build_s_total']:.1f}",
                f"{result['build_s_longest_shard']:.1f}",
                f"{result['build_peak_rss_mib_max']:.0f}",
                f"{result['p50_ms']:.1f}",
                f"{result['p95_ms']:.1f}",
                f"{result['recall_at_10']:.3f}",
                f"{result['exact_recall_at_10']:.3f}",
                f"{result['search_peak_rss_mib']:.0f}",
            )
        )
    print(
        format_table(
            (
                "layout",
                "build s (all)",
                "build s (largest table)",
                "build peak MiB (per process)",
                "query p50 ms",
                "query p95 ms",
                "recall@10",
                "exact recall@10",
                "search peak MiB",
            ),
            rows,
            title=f"{n:,} faces: one index against {shards} month shards (search defaults, one query "
            f"at a time, {os.cpu_count()} CPUs)",
        )
    )
    if json_path:
        Path(json_path).write_text(json.dumps(out, indent=2))
    shutil.rmtree(root, ignore_errors=True)
    return 0
