"""Face search at scale: the LanceDB IVF-HNSW-SQ index against exact search (DuckDB, numpy, Lance flat).

``make bench-search`` (``--n 100000`` for a shorter run). One run, same data, same queries:

1. **Data**: ``--n`` synthetic 512-d unit face embeddings with identity structure
   (``benchmarks/synthetic_faces.py``; the measured same-person and different-person cosine spreads are
   printed), plus the real faces of ``../shared/assets/images`` embedded by the worker's model pack
   (128-d MobileFaceNet, zero-padded to 512-d: cosines unchanged).
2. **Queries**: ``--queries`` new photos of people in the index (a fresh face of a random identity) and
   the real photos whose person is indexed under another photo (lfw_Rob_Lowe_0002 -> 0001,
   obama2 -> obama).
3. **Ground truth**: exact top-10 by numpy over all vectors.
4. **Lance**: the index's own table layout and ``faceidx.store.vectors.build_ann_index`` parameters;
   every query goes through ``VectorIndex.search``, one at a time, for each ``--settings``
   ``nprobes:refine_factor:ef`` triple: recall@10 against the ground truth, p50/p95 latency,
   queries/s. The search defaults are one of the triples.
5. **Exact baselines** on the first ``--exact-queries`` queries: DuckDB
   ``array_cosine_similarity`` over ``FLOAT[512]``, numpy (one matrix-vector product per query) and
   Lance's flat scan (the index bypassed).

The target (single query at a time on this machine): recall@10 >= 0.95 at p95 <= 50 ms. The last line
says whether the best setting meets it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_faces import face_of, lift, measure_spreads, synthetic_faces  # noqa: E402

MODEL_VERSION = "bench-synthetic-512"
K = 10
REAL_PAIRS = (("lfw_Rob_Lowe_0002.jpg", "lfw_Rob_Lowe_0001.jpg"), ("obama2.jpg", "obama.jpg"))
PACK = ("det_500m.onnx", "mobilefacenet_128d_dynbatch.onnx")
DEFAULT_SETTINGS = "4:4:100,8:4:100,16:4:100,16:4:200"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="synthetic faces (default 1,000,000)")
    parser.add_argument("--queries", type=int, default=200, help="ANN queries (default 200)")
    parser.add_argument("--exact-queries", type=int, default=20, help="queries for the exact baselines")
    parser.add_argument(
        "--settings",
        default=DEFAULT_SETTINGS,
        help=f"nprobes:refine_factor:ef triples to measure (default {DEFAULT_SETTINGS})",
    )
    parser.add_argument("--partitions", type=int, default=0, help="IVF partitions (0: the index's rule)")
    parser.add_argument(
        "--workdir",
        default="",
        help="where the Lance table goes and stays (default: a temp folder, removed); a workdir that "
        "already holds the indexed table of the same --n and --seed is reused (no rebuild)",
    )
    parser.add_argument(
        "--assets", default=os.environ.get("FACEIDX_ASSETS", str(REPO.parent / "shared" / "assets"))
    )
    parser.add_argument("--no-real", action="store_true", help="synthetic faces only")
    parser.add_argument("--json", default="", help="also write the results to this file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--faiss",
        action="store_true",
        help="also an in-memory FAISS HNSW index (IndexHNSWFlat, m 32) beside Lance: the serving-tier route",
    )
    parser.add_argument(
        "--sync",
        type=int,
        default=0,
        metavar="FACES",
        help="instead: time VectorIndex.sync on a Delta table of FACES faces, first load, then 1%% "
        "changed through the change data feed and through the face_id set difference",
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=0,
        metavar="MONTHS",
        help="instead: one index of --n faces against the same faces split over MONTHS month shards, "
        "side by side (benchmarks/bench_shards.py): build time per shard and in all, query p50/p95, "
        "recall@10 against exact, peak memory",
    )
    return parser.parse_args(argv)


def real_faces(assets: Path) -> dict[str, np.ndarray]:
    """photo name -> its first face's embedding, by the worker's model (search's PhotoEmbedder)."""
    from faceidx.search.photo import PhotoEmbedder

    images = assets / "images"
    pack = Path(tempfile.mkdtemp(prefix="bench_search_pack_"))
    for name in PACK:
        (pack / name).symlink_to(assets / "models" / name)
    embedder = PhotoEmbedder.from_env({**os.environ, "FACEIDX_MODEL_DIR": str(pack)})
    found: dict[str, np.ndarray] = {}
    for path in sorted(images.iterdir()):
        for index, face in enumerate(embedder.faces(str(path)) if _is_photo(path) else []):
            found[f"{path.name}#{index}"] = np.asarray(face.embedding, dtype=np.float32)
    shutil.rmtree(pack)
    return found


def _is_photo(path: Path) -> bool:
    return path.suffix.lower() in (".jpg", ".jpeg", ".png")


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000.0, q))


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    hits = sum(len(set(row) & set(truth[i].tolist())) for i, row in enumerate(found))
    return hits / truth.size


def write_lance(location: Any, vectors: np.ndarray, names: list[str]) -> Any:
    import pyarrow as pa

    from faceidx.store.vectors import VectorIndex, index_schema, table_name

    index = VectorIndex(location)
    schema = index_schema(vectors.shape[1], MODEL_VERSION)
    table = index.db.create_table(table_name(MODEL_VERSION), schema=schema, mode="overwrite")
    chunk = 200_000
    for start in range(0, len(vectors), chunk):
        part = vectors[start : start + chunk]
        count = len(part)
        batch = pa.table(
            {
                "face_id": pa.array(names[start : start + chunk], pa.string()),
                "image_bucket": pa.array(["bench"] * count, pa.string()),
                "image_key": pa.array(names[start : start + chunk], pa.string()),
                "face_index": pa.array(np.zeros(count, dtype=np.int32)),
                "bbox": pa.nulls(count, pa.list_(pa.float32())),
                "quality_passed": pa.array(np.ones(count, dtype=bool)),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(part.reshape(-1)), vectors.shape[1]),
            },
            schema=schema,
        )
        table.add(batch)
    return index, table


class _DeltaFaces:
    """A Delta table of face rows with the change data feed on (what ``VectorIndex.sync`` reads)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.feed = True

    def append(self, rows: Any) -> None:
        from deltalake import write_deltalake

        write_deltalake(self.uri, rows, mode="append", configuration={"delta.enableChangeDataFeed": "true"})

    def delete(self, predicate: str) -> None:
        from deltalake import DeltaTable

        DeltaTable(self.uri).delete(predicate)

    def read(
        self, model_version: str | None = None, columns: list[str] | None = None, filter: str | None = None
    ) -> Any:
        from deltalake import DeltaTable

        return DeltaTable(self.uri).to_pyarrow_table(
            columns=columns and [c for c in columns if c != "status"]
        )

    def version(self) -> int:
        from deltalake import DeltaTable

        return int(DeltaTable(self.uri).version())

    def changes_since(self, version: int) -> Any:
        from deltalake import DeltaTable

        if not self.feed:
            raise OSError("change data feed turned off for the measurement")
        return DeltaTable(self.uri).load_cdf(starting_version=version + 1).read_all()


def _face_rows(vectors: np.ndarray, start: int) -> Any:
    import pyarrow as pa

    count = len(vectors)
    return pa.table(
        {
            "face_id": [f"face-{start + i:08d}" for i in range(count)],
            "image_bucket": ["bench"] * count,
            "image_key": [f"img/{start + i:08d}.jpg" for i in range(count)],
            "face_index": pa.array(np.zeros(count, dtype=np.int32)),
            "bbox": pa.nulls(count, pa.list_(pa.float32())),
            "quality_passed": pa.array(np.ones(count, dtype=bool)),
            "model_version": [MODEL_VERSION] * count,
            "indexed_date": ["2026-11-05"] * count,
            "embedding": pa.ListArray.from_arrays(
                pa.array(np.arange(0, (count + 1) * vectors.shape[1], vectors.shape[1], dtype=np.int32)),
                pa.array(vectors.reshape(-1)),
            ),
        }
    )


def measure_sync(faces_count: int) -> int:
    """First sync, then 1% changed (new faces and deletes) applied by the feed and by the set difference."""
    from faceidx.common.tables import format_table
    from faceidx.store import vectors as vector_module
    from faceidx.store.location import IndexLocation
    from faceidx.store.vectors import VectorIndex

    vector_module.ANN_MIN_ROWS = 10**12  # time the sync, not an index build
    root = Path(tempfile.mkdtemp(prefix="bench_search_sync_"))
    changed = max(10, faces_count // 100)
    data = synthetic_faces(faces_count + 2 * changed).vectors
    rows = []
    for mode in ("cdf", "diff"):
        table = _DeltaFaces(str(root / mode / "faces"))
        for start in range(0, faces_count, 100_000):
            table.append(_face_rows(data[start : min(start + 100_000, faces_count)], start))
        index = VectorIndex(IndexLocation(str(root / mode)))
        first = index.sync(table, MODEL_VERSION)
        table.append(_face_rows(data[faces_count : faces_count + changed], faces_count))
        doomed = ", ".join(f"'face-{i:08d}'" for i in range(0, changed * 10, 10)[: changed // 10])
        table.delete(f"face_id IN ({doomed})")
        table.feed = mode == "cdf"
        later = index.sync(table, MODEL_VERSION)
        assert later.mode == mode, later
        rows.append(
            (mode, f"{first.seconds:.1f}", later.upserted, later.deleted, f"{later.seconds:.2f}", later.rows)
        )
    print(
        format_table(
            ("path", "first sync s", "upserted", "deleted", "incremental sync s", "faces"),
            rows,
            title=f"VectorIndex.sync on {faces_count:,} faces (512-d), then {changed:,} added and "
            f"{changed // 10:,} deleted",
        )
    )
    shutil.rmtree(root, ignore_errors=True)
    return 0


def _reusable(location: Any, total: int) -> tuple[Any, Any] | None:
    from faceidx.store.vectors import UnknownModelVersionError, VectorIndex, table_name

    index = VectorIndex(location)
    try:
        if index.versions().get(MODEL_VERSION) != total or not index.is_indexed(MODEL_VERSION):
            return None
    except (UnknownModelVersionError, OSError, ValueError):
        return None
    return index, index.db.open_table(table_name(MODEL_VERSION))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sync:
        return measure_sync(args.sync)
    if args.shards:
        from bench_shards import measure_shards

        return measure_shards(
            args.n,
            args.shards,
            queries=args.queries,
            exact_queries=args.exact_queries,
            seed=args.seed,
            workdir=args.workdir,
            json_path=args.json,
        )
    from faceidx.common.tables import format_pairs, format_table
    from faceidx.store.location import IndexLocation
    from faceidx.store.vectors import (
        DEFAULT_EF,
        DEFAULT_NPROBES,
        DEFAULT_REFINE_FACTOR,
        HNSW_M,
        ann_partitions,
        build_ann_index,
    )

    rng = np.random.default_rng(args.seed + 1)
    out: dict[str, Any] = {"n": args.n}
    started = time.perf_counter()
    faces = synthetic_faces(args.n, seed=args.seed)
    spreads = measure_spreads(faces)
    out["spreads"] = spreads
    print(
        f"data: {args.n:,} synthetic 512-d faces of {len(faces.centres):,} identities in "
        f"{time.perf_counter() - started:.1f} s; same person cosine {spreads['intra_mean']:.3f} "
        f"+- {spreads['intra_sd']:.3f}, different people {spreads['inter_mean']:.3f} "
        f"+- {spreads['inter_sd']:.3f} "
        f"(99.9th percentile {spreads['inter_p99_9']:.3f})",
        flush=True,
    )
    names = [f"synthetic/{i:07d}" for i in range(args.n)]
    vectors = faces.vectors
    real_queries: list[tuple[str, str, set[str]]] = []
    query_identities = rng.integers(0, len(faces.centres), args.queries)
    query_vectors = face_of(faces.centres[query_identities], rng)
    if not args.no_real:
        real = real_faces(Path(args.assets))
        stored = {
            key: vec for key, vec in real.items() if key.split("#")[0] not in {q for q, _ in REAL_PAIRS}
        }
        vectors = np.vstack([vectors, lift(np.vstack(list(stored.values())))])
        names += [f"real/{key}" for key in stored]
        for query, answer in REAL_PAIRS:
            query_vectors = np.vstack([query_vectors, lift(real[f"{query}#0"])])
            # the answer's person: every stored face the model puts within 0.5 cosine of the answer
            reference = stored[f"{answer}#0"]
            same = {f"real/{key}" for key, vec in stored.items() if float(vec @ reference) >= 0.5}
            real_queries.append((query, f"real/{answer}#0", same))
        print(
            f"real faces: {len(stored)} faces of {len({k.split('#')[0] for k in stored})} photos by the "
            f"worker's model (128-d, zero-padded to 512-d) mixed in; {len(REAL_PAIRS)} real queries",
            flush=True,
        )
    total = len(vectors)
    out["faces"] = total

    started = time.perf_counter()
    truth = np.empty((len(query_vectors), K), dtype=np.int64)
    for start in range(0, len(query_vectors), 50):
        scores = query_vectors[start : start + 50] @ vectors.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        truth[start : start + 50] = np.take_along_axis(top, order, axis=1)
    print(
        f"ground truth: exact top-{K} of {len(query_vectors)} queries in "
        f"{time.perf_counter() - started:.1f} s"
    )

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_search_"))
    location = IndexLocation(str(workdir))
    partitions = args.partitions or ann_partitions(total)
    reused = _reusable(location, total)
    if reused is not None:
        index, table = reused
        write_seconds = build_seconds = float("nan")
        print(f"reusing the indexed table in {workdir} (build figures are those of the run that built it)")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
        started = time.perf_counter()
        index, table = write_lance(location, vectors, names)
        write_seconds = time.perf_counter() - started
        started = time.perf_counter()
        build_ann_index(table, total, num_partitions=partitions)
        build_seconds = time.perf_counter() - started
    lance_dir = workdir / "vectors"
    index_bytes = sum(dir_bytes(p) for p in lance_dir.rglob("_indices"))
    total_bytes = dir_bytes(lance_dir)
    out["build"] = {
        "write_seconds": write_seconds,
        "index_seconds": build_seconds,
        "partitions": partitions,
        "hnsw_m": HNSW_M,
        "index_bytes": index_bytes,
        "table_bytes": total_bytes,
    }
    print(
        format_pairs(
            [
                ("rows written to Lance (s)", round(write_seconds, 1)),
                ("IVF-HNSW-SQ build (s)", round(build_seconds, 1)),
                ("IVF partitions / HNSW m", f"{partitions} / {HNSW_M} (vectors as 8-bit scalars)"),
                ("index size on disk (MiB)", round(index_bytes / 2**20, 1)),
                ("table + index on disk (MiB)", round(total_bytes / 2**20, 1)),
                ("raw float32 vectors (MiB)", round(vectors.nbytes / 2**20, 1)),
            ],
            title="build",
        ),
        flush=True,
    )
    position = {name: i for i, name in enumerate(names)}

    def run(label: str, queries: np.ndarray, search: Any) -> dict[str, Any]:
        search(queries[0])  # warm: open the table, load the index
        seconds, found = [], []
        for query in queries:
            begun = time.perf_counter()
            ids = search(query)
            seconds.append(time.perf_counter() - begun)
            found.append(ids)
        return {
            "method": label,
            "queries": len(queries),
            "recall_at_10": recall(found, truth[: len(queries)]),
            "same_person_recall": same_person_recall(found),
            "p50_ms": percentile_ms(seconds, 50),
            "p95_ms": percentile_ms(seconds, 95),
            "qps": len(queries) / sum(seconds),
            "found": found,
        }

    query_identity = np.concatenate([query_identities, np.full(len(real_queries), -1)])
    identity = np.concatenate([faces.identity, np.full(total - args.n, -2)])

    def same_person_recall(found: list[list[int]]) -> float:
        """Of the exact top-10 faces of the query's own person, the share found."""
        wanted = hits = 0
        for row, ids in enumerate(found):
            person = {int(i) for i in truth[row] if identity[i] == query_identity[row]}
            wanted += len(person)
            hits += len(person & set(ids))
        return hits / wanted if wanted else 1.0

    rows = []
    defaults = (DEFAULT_NPROBES, DEFAULT_REFINE_FACTOR, DEFAULT_EF)
    for setting in args.settings.split(","):
        nprobes, refine, ef = (int(v) for v in setting.split(":"))

        def ann(query: np.ndarray, nprobes: int = nprobes, refine: int = refine, ef: int = ef) -> list[int]:
            matches = index.search(
                query, model_version=MODEL_VERSION, k=K, nprobes=nprobes, refine_factor=refine, ef=ef
            )
            return [position[m.face_id] for m in matches[0]]

        label = f"lance ivf_hnsw_sq nprobes={nprobes} refine={refine} ef={ef}"
        if (nprobes, refine, ef) == defaults:
            label += " (defaults)"
        rows.append(run(label, query_vectors, ann))
        print(_row_text(rows[-1]), flush=True)

    if args.faiss:
        rows += faiss_hnsw(vectors, query_vectors, run)

    exact_queries = query_vectors[: args.exact_queries]

    def lance_flat(query: np.ndarray) -> list[int]:
        matches = index.search(query, model_version=MODEL_VERSION, k=K, exact=True)
        return [position[m.face_id] for m in matches[0]]

    rows.append(run("lance flat (exact)", exact_queries, lance_flat))
    print(_row_text(rows[-1]), flush=True)

    def numpy_exact(query: np.ndarray) -> list[int]:
        scores = vectors @ query
        top = np.argpartition(-scores, K)[:K]
        return top[np.argsort(-scores[top])].tolist()

    rows.append(run("numpy exact", exact_queries, numpy_exact))
    print(_row_text(rows[-1]), flush=True)

    rows.append(duckdb_exact(vectors, exact_queries, run))
    print(_row_text(rows[-1]), flush=True)

    real_rows = []
    # the search defaults when they meet the target, else the first setting that does, else the best recall
    ann_rows = [r for r in rows[: len(args.settings.split(","))] if r["method"].startswith("lance")]
    meeting = [r for r in ann_rows if r["recall_at_10"] >= 0.95 and r["p95_ms"] <= 50]
    meeting.sort(key=lambda r: not r["method"].endswith("(defaults)"))
    ann_best = meeting[0] if meeting else max(ann_rows, key=lambda r: r["recall_at_10"])
    for offset, (query, answer, same) in enumerate(real_queries):
        q = len(query_vectors) - len(real_queries) + offset
        first = names[ann_best["found"][q][0]]
        verdict = "yes" if first == answer else ("same person" if first in same else "NO")
        real_rows.append((query, answer, first, verdict, names[truth[q][0]]))
    print()
    print(
        format_table(
            ("method", "queries", "recall@10", "same-person recall", "p50 ms", "p95 ms", "queries/s"),
            [
                (
                    r["method"],
                    r["queries"],
                    f"{r['recall_at_10']:.3f}",
                    f"{r['same_person_recall']:.3f}",
                    f"{r['p50_ms']:.1f}",
                    f"{r['p95_ms']:.1f}",
                    f"{r['qps']:.1f}",
                )
                for r in rows
            ],
            title=f"search over {total:,} faces, k={K}, one query at a time",
        )
    )
    if real_rows:
        print()
        print(
            format_table(
                ("real query", "expected first", "first match", "ok", "exact first"),
                real_rows,
                title=f"real photos among {total:,} faces ({ann_best['method']})",
            )
        )
    met = ann_best["recall_at_10"] >= 0.95 and ann_best["p95_ms"] <= 50
    print()
    print(
        f"target recall@10 >= 0.95 at p95 <= 50 ms: {'met' if met else 'MISSED'} by {ann_best['method']} "
        f"(recall@10 {ann_best['recall_at_10']:.3f}, p95 {ann_best['p95_ms']:.1f} ms)"
    )
    if args.json:
        out["results"] = [{k: v for k, v in r.items() if k != "found"} for r in rows]
        out["real"] = real_rows
        out["target_met"] = met
        Path(args.json).write_text(json.dumps(out, indent=2))
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)  # a --workdir stays for reuse
    return 0


def faiss_hnsw(vectors: np.ndarray, queries: np.ndarray, run: Any) -> list[dict[str, Any]]:
    """FAISS IndexHNSWFlat (inner product on the unit vectors, m 32, efConstruction 100) in memory."""
    import faiss

    index = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 100
    started = time.perf_counter()
    index.add(vectors)
    print(f"faiss IndexHNSWFlat m=32 build: {time.perf_counter() - started:.1f} s", flush=True)
    rows = []
    for ef in (64, 128, 256):
        index.hnsw.efSearch = ef

        def search(query: np.ndarray) -> list[int]:
            return [int(i) for i in index.search(query[None, :], K)[1][0]]

        rows.append(run(f"faiss hnsw flat m=32 ef={ef} (in memory)", queries, search))
        print(_row_text(rows[-1]), flush=True)
    return rows


def duckdb_exact(vectors: np.ndarray, queries: np.ndarray, run: Any) -> dict[str, Any]:
    import duckdb
    import pyarrow as pa

    dimension = vectors.shape[1]
    con = duckdb.connect()
    con.execute(f"CREATE TABLE faces (id INTEGER, v FLOAT[{dimension}])")
    chunk = 200_000
    for start in range(0, len(vectors), chunk):
        part = vectors[start : start + chunk]
        batch = pa.table(
            {
                "id": pa.array(np.arange(start, start + len(part), dtype=np.int32)),
                "v": pa.FixedSizeListArray.from_arrays(pa.array(part.reshape(-1)), dimension),
            }
        )
        con.register("batch", batch)
        con.execute("INSERT INTO faces SELECT id, v FROM batch")
        con.unregister("batch")
    sql = f"SELECT id FROM faces ORDER BY array_cosine_similarity(v, $q::FLOAT[{dimension}]) DESC LIMIT {K}"

    def search(query: np.ndarray) -> list[int]:
        return [row[0] for row in con.execute(sql, {"q": query.tolist()}).fetchall()]

    result = run("duckdb exact (array_cosine_similarity)", queries, search)
    con.close()
    return result


def _row_text(row: dict[str, Any]) -> str:
    return (
        f"{row['method']}: recall@10 {row['recall_at_10']:.3f} (same person "
        f"{row['same_person_recall']:.3f}), p50 {row['p50_ms']:.1f} ms, "
        f"p95 {row['p95_ms']:.1f} ms, {row['qps']:.1f} queries/s ({row['queries']} queries)"
    )


if __name__ == "__main__":
    sys.exit(main())
