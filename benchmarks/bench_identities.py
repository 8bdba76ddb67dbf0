"""Identity clustering benchmark: quality on labelled photos, time and memory on synthetic sets.

    make bench-identities                                    # labelled set + 10^5 and 10^6 faces
    .venv/bin/python benchmarks/bench_identities.py --sizes 100000 --no-labelled

(a) **Labelled**: every labelled face of ``expected.json`` in the asset photos and in augmented
copies of each photo (horizontal flip, 90 % crop, darker and brighter, JPEG quality 30), each copy a
photo of its own, embedded with the worker's model code (det_500m + the 128-d MobileFaceNet).
Clustered in full and incrementally (faces arriving in batches through assignment and the buffer).
(b) **Synthetic**: :func:`faceidx.people.evaluation.synthetic_faces` (512-d, ArcFace-like
similarities): a full re-cluster of all faces, then the last 10 % re-played incrementally on top of
the persons of the first 90 %. The full re-cluster runs as a Batch job would: in a child process
that memory-maps the embeddings from a ``.npy`` file. Time is wall time; memory is the peak of traced
allocations (numpy's arrays included) and the child's peak RSS (``getrusage``: what a job's memory
limit sees, the mapped embeddings included).
(c) **kNN in shards** (:mod:`faceidx.people.knn`): the graph searched in one child process (cells,
then all rows) and as 2 array children running
:func:`~faceidx.people.knn.run_shard` side by side on the same saved cells, their parts merged and
compared with the one-process graph. Each of these uses one BLAS thread, as an array child on
its own vCPU would (on this 2-core host a second thread adds little at the search's shape: see the
BLAS line the bench prints).
Children fork from a fork server started first, so their getrusage peak RSS is their own.
Targets: pairwise F >= 0.95 on the labelled set and on the synthetic re-clusters; 10^6 faces
re-clustered in <= 600 s within 4 GiB (traced peak and peak RSS); the merged shards equal to the
one-process graph. A missed target prints MISSED and the command exits 1.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.process
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from faceidx.common.tables import format_table
from faceidx.people.clustering import MOBILEFACENET_128D, ClusterPolicy, cluster_faces, encode
from faceidx.people.evaluation import Scores, scores, synthetic_faces
from faceidx.people.incremental import PersonIndex, assign_faces, promote_buffer
from faceidx.people.knn import build_cells, merge_shards, save_cells, search_rows

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("FACEIDX_ASSETS", REPO.parent / "shared" / "assets"))
PACK = ("det_500m.onnx", "mobilefacenet_128d_dynbatch.onnx")
F_TARGET = 0.95
RECLUSTER_TARGET_S = 600.0
RECLUSTER_TARGET_GIB = 4.0
TARGET_SIZE = 1_000_000
SHARDS = 2


def _augmented(pixels: np.ndarray) -> dict[str, np.ndarray]:
    import cv2

    h, w = pixels.shape[:2]
    dy, dx = int(h * 0.05), int(w * 0.05)
    ok, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 30])
    assert ok
    return {
        "original": pixels,
        "flip": np.ascontiguousarray(pixels[:, ::-1]),
        "crop": np.ascontiguousarray(pixels[dy : h - dy, dx : w - dx]),
        "dark": cv2.convertScaleAbs(pixels, alpha=0.6, beta=0),
        "bright": cv2.convertScaleAbs(pixels, alpha=1.2, beta=30),
        "jpeg30": cv2.imdecode(jpeg, cv2.IMREAD_COLOR),
    }


def labelled_faces(assets: Path) -> tuple[np.ndarray, list[str], list[str]]:
    """Embeddings, identities and photo names of the labelled faces and their augmented copies."""
    from faceidx_worker.images import decode_image
    from faceidx_worker.model import InsightFaceModelPack

    pack = Path(tempfile.mkdtemp(prefix="bench_identities_"))
    for name in PACK:
        (pack / name).symlink_to(assets / "models" / name)
    model = InsightFaceModelPack(pack, det_thresh=0.7, ort_threads=1)
    model.load()
    expected = json.loads((assets / "expected.json").read_text())["images"]
    vectors: list[np.ndarray] = []
    identities: list[str] = []
    photos: list[str] = []
    for name, spec in expected.items():
        if "ids" not in spec:
            continue
        image = decode_image((assets / "images" / name).read_bytes(), max_pixels=10**8)
        for variant, pixels in _augmented(image.pixels).items():
            boxes, landmarks = model.detect(pixels)
            order = np.argsort(boxes[:, 0])
            if variant == "flip":
                order = order[::-1]  # mirrored: the left-to-right order reverses
            if len(order) != len(spec["ids"]):
                print(f"  skipped {name} {variant}: {len(order)} faces detected, {len(spec['ids'])} labelled")
                continue
            vectors.extend(model.embed([model.align(pixels, landmarks[i]) for i in order]))
            identities.extend(spec["ids"])
            photos.extend([f"{name}#{variant}"] * len(order))
    return np.asarray(vectors, dtype=np.float32), identities, photos


def incremental(
    x: np.ndarray, photos: list[str], policy: ClusterPolicy, batch: int, base_labels: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Labels from feeding faces in batches (after ``base_labels`` faces, when given); seconds taken."""
    labels = np.full(len(x), -1, dtype=np.int64)
    start = 0
    if base_labels is not None:
        start = len(base_labels)
        labels[:start] = base_labels
    names: dict[str, int] = {}
    started = time.perf_counter()
    waiting: list[int] = []
    for lo in range(start, len(x), batch):
        placed = np.flatnonzero(labels[:lo] >= 0)
        persons = (
            PersonIndex.from_faces(x[placed], [str(v) for v in labels[placed]], policy)
            if len(placed)
            else PersonIndex.empty(x.shape[1])
        )
        taken = {(str(labels[i]), photos[i]) for i in placed}
        rows = np.arange(lo, min(lo + batch, len(x)))
        result = assign_faces(x[rows], [photos[i] for i in rows], persons, policy, taken=taken)
        for i, pid in zip(rows, result.person_ids, strict=True):
            if pid is not None:
                labels[i] = int(pid)
            else:
                waiting.append(int(i))
        pool = np.asarray(waiting, dtype=np.int64)
        next_label = [int(labels.max()) + 1]

        def name(members: np.ndarray, pool: np.ndarray = pool, next_label: list[int] = next_label) -> str:
            label = next_label[0]
            next_label[0] += 1
            names[str(label)] = len(members)
            return str(label)

        promoted = promote_buffer(x[pool], [photos[i] for i in pool], policy, name) if len(pool) else []
        for i, pid in zip(pool, promoted, strict=True):
            if pid is not None:
                labels[i] = int(pid)
        waiting = [int(i) for i in pool if labels[i] < 0]
    return labels, time.perf_counter() - started


def _row(
    name: str, result: Scores, seconds: float | None, peak: float | None, rss: float | None = None
) -> list[object]:
    return [
        name,
        round(result.pairwise_precision, 4),
        round(result.pairwise_recall, 4),
        round(result.pairwise_f, 4),
        round(result.bcubed_f, 4),
        result.persons,
        result.noise,
        None if seconds is None else round(seconds, 1),
        None if peak is None else round(peak, 2),
        None if rss is None else round(rss, 2),
    ]


HEADERS = (
    "case",
    "pair P",
    "pair R",
    "pair F",
    "BCubed F",
    "persons",
    "left out",
    "seconds",
    "peak GiB",
    "peak RSS GiB",
)


def run_labelled(policy: ClusterPolicy) -> tuple[list[list[object]], bool]:
    x, identities, photos = labelled_faces(ASSETS)
    truth = encode(identities)
    print(f"labelled: {len(x)} faces of {len(set(identities))} identities in {len(set(photos))} photos")
    started = time.perf_counter()
    full = cluster_faces(x, encode(photos), policy)
    full_s = time.perf_counter() - started
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    inc, inc_s = incremental(x[order], [photos[i] for i in order], policy, batch=8)
    full_scores = scores(full, truth)
    inc_scores = scores(inc, truth[order])
    ok = full_scores.pairwise_f >= F_TARGET
    return [
        _row("labelled, full", full_scores, full_s, None),
        _row("labelled, incremental (batches of 8)", inc_scores, inc_s, None),
    ], ok


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


# Children fork from a fork server started at the beginning (before any faces exist): a child's
# getrusage peak RSS is then its own, not the parent's (Linux carries ru_maxrss across fork and exec).
CHILDREN = multiprocessing.get_context("forkserver")


def _child_main(
    conn: Connection, kind: str, folder: str, extra: tuple[int, ...], threads: int | None
) -> None:
    if threads is not None:
        set_blas_threads(threads)
    run = {"recluster": child_recluster, "knn": child_knn, "shard": child_shard, "gflops": child_gflops}[kind]
    conn.send(run(Path(folder), *extra))
    conn.close()


def _child(
    kind: str, folder: Path, *extra: int, threads: int | None = None
) -> tuple[multiprocessing.process.BaseProcess, Connection]:
    receive, send = CHILDREN.Pipe(duplex=False)
    process = CHILDREN.Process(target=_child_main, args=(send, kind, str(folder), extra, threads))  # type: ignore[attr-defined]
    process.start()
    send.close()
    return process, receive


def _result(child: tuple[multiprocessing.process.BaseProcess, Connection]) -> dict[str, float]:
    process, receive = child
    try:
        result: dict[str, float] = receive.recv()
    except EOFError:
        process.join()
        raise RuntimeError(f"bench child {process.name} exited {process.exitcode} without a result") from None
    process.join()
    return result


def _openblas(*names: str) -> Any:
    import ctypes
    import glob

    for lib in glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "*openblas*")):
        for name in names:
            function = getattr(ctypes.CDLL(lib), name, None)
            if function is not None:
                return function
    return None


def set_blas_threads(threads: int) -> None:
    function = _openblas(
        "scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads"
    )
    if function is None:
        raise RuntimeError("cannot set numpy's OpenBLAS threads (no openblas_set_num_threads)")
    function(threads)


def blas_threads() -> int | None:
    """Threads of numpy's OpenBLAS (its default: every core), or None where it cannot be asked."""
    function = _openblas(
        "scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"
    )
    return None if function is None else int(function())


def sgemm_gflops(seconds: float = 3.0) -> float:
    """float32 matrix-product speed at the kNN's shape (768 x 512 by 512 x 768 per cell)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((768, 512), dtype=np.float32)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ a.T
        done += 1
    return done * 2 * 768 * 768 * 512 / (time.perf_counter() - started) / 1e9


def child_gflops(folder: Path) -> dict[str, float]:
    return {"gflops": sgemm_gflops(), "threads": float(blas_threads() or 0)}


def child_recluster(folder: Path) -> dict[str, float]:
    """The full re-cluster of ``folder``'s embeddings, as one Batch job runs it."""
    x = np.load(folder / "embeddings.npy", mmap_mode="r")
    codes = np.load(folder / "image_codes.npy")
    tracemalloc.start()
    started = time.perf_counter()
    labels = cluster_faces(x, codes, ClusterPolicy())
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**30
    tracemalloc.stop()
    np.save(folder / "labels.npy", labels)
    return {"seconds": seconds, "peak_gib": peak, "rss_gib": _peak_rss_gib()}


def child_knn(folder: Path) -> dict[str, float]:
    """The kNN graph in one process: cells (saved for the shards), then every row."""
    x = np.load(folder / "embeddings.npy", mmap_mode="r")
    k = ClusterPolicy().k
    started = time.perf_counter()
    cells = build_cells(x, seed=ClusterPolicy().seed)
    save_cells(folder / "cells.npz", cells)
    cells_s = time.perf_counter() - started
    sims, idx = search_rows(x, cells, k)
    search_s = time.perf_counter() - started - cells_s
    np.savez(folder / "graph.npz", sims=sims, idx=idx)
    return {"cells_s": cells_s, "search_s": search_s, "rss_gib": _peak_rss_gib()}


def child_shard(folder: Path, shard: int, shards: int) -> dict[str, float]:
    from faceidx.people.knn import run_shard

    started = time.perf_counter()
    run_shard(
        folder / "embeddings.npy", folder / "cells.npz", shard, shards, folder / "parts", k=ClusterPolicy().k
    )
    return {"seconds": time.perf_counter() - started, "rss_gib": _peak_rss_gib()}


def run_shards(folder: Path, size: int) -> tuple[list[list[object]], bool]:
    """The kNN graph in one process, then as SHARDS array children on its cells; merged == one?"""
    one = _result(_child("knn", folder, threads=1))
    started = time.perf_counter()
    children = [_child("shard", folder, i, SHARDS, threads=1) for i in range(SHARDS)]
    parts = [_result(child) for child in children]
    shards_s = time.perf_counter() - started
    started = time.perf_counter()
    sims, idx = merge_shards(folder / "parts", SHARDS)
    merge_s = time.perf_counter() - started
    with np.load(folder / "graph.npz") as graph:
        same_idx = float(np.mean(graph["idx"] == idx))
        equal = bool(np.array_equal(graph["idx"], idx) and np.array_equal(graph["sims"], sims))
    print(
        f"synthetic {size:,}: kNN in one process: cells {one['cells_s']:.0f} s + search"
        f" {one['search_s']:.0f} s; {SHARDS} children: "
        + ", ".join(f"{p['seconds']:.0f} s ({p['rss_gib']:.2f} GiB)" for p in parts)
        + f" side by side, {shards_s:.0f} s wall, merge {merge_s:.1f} s; merged == one process: {equal}"
        f" ({same_idx:.6f} of neighbour entries equal)"
    )
    rows: list[list[object]] = [
        [
            f"synthetic {size:,}",
            "one process (1 BLAS thread)",
            round(one["cells_s"], 1),
            round(one["search_s"], 1),
            round(one["search_s"], 1),
            round(one["rss_gib"], 2),
            "",
        ],
        [
            f"synthetic {size:,}",
            f"{SHARDS} array children (1 BLAS thread each)",
            "(the same cells)",
            round(max(p["seconds"] for p in parts), 1),
            round(shards_s + merge_s, 1),
            round(max(p["rss_gib"] for p in parts), 2),
            "equal" if equal else f"DIFFERENT ({same_idx:.6f})",
        ],
    ]
    return rows, equal


SHARD_HEADERS = ("set", "kNN graph", "cells s", "search s", "search wall s", "peak RSS GiB", "graph")


def run_synthetic(
    size: int, dim: int, policy: ClusterPolicy, shard_rows: list[list[object]]
) -> tuple[list[list[object]], list[str]]:
    started = time.perf_counter()
    faces = synthetic_faces(size, dim=dim, seed=size)
    print(f"synthetic {size:,}: generated in {time.perf_counter() - started:.0f} s")
    missed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench_identities_") as tmp:
        folder = Path(tmp)
        np.save(folder / "embeddings.npy", faces.embeddings)
        np.save(folder / "image_codes.npy", faces.image_codes)
        job = _result(_child("recluster", folder))
        labels = np.load(folder / "labels.npy")
        rows, equal = run_shards(folder, size)
        shard_rows += rows
    if not equal:
        missed.append(f"{size:,} faces: the merged kNN shards differ from the one-process graph")
    full_s, peak, rss = job["seconds"], job["peak_gib"], job["rss_gib"]
    full_scores = scores(labels, faces.identity)
    print(
        f"synthetic {size:,}: re-cluster {full_s:.0f} s, traced peak {peak:.2f} GiB, peak RSS {rss:.2f} GiB,"
        f" pairwise F {full_scores.pairwise_f:.4f}"
    )
    split = int(size * 0.9)
    base = cluster_faces(faces.embeddings[:split], faces.image_codes[:split], policy)
    tracemalloc.start()
    inc, inc_s = incremental(
        faces.embeddings, faces.image_ids, policy, batch=max(1, size // 20), base_labels=base
    )
    inc_peak = tracemalloc.get_traced_memory()[1] / 2**30
    tracemalloc.stop()
    inc_scores = scores(inc, faces.identity)
    rows = [
        _row(f"synthetic {size:,}, full re-cluster", full_scores, full_s, peak, rss),
        _row(f"synthetic {size:,}, last 10 % incremental (2 batches)", inc_scores, inc_s, inc_peak, None),
    ]
    if full_scores.pairwise_f < F_TARGET:
        missed.append(f"{size:,} faces re-clustered at pairwise F {full_scores.pairwise_f:.4f} < {F_TARGET}")
    if size >= TARGET_SIZE:
        if full_s > RECLUSTER_TARGET_S:
            missed.append(f"{size:,} faces re-clustered in {full_s:.0f} s > {RECLUSTER_TARGET_S:.0f} s")
        if max(peak, rss) > RECLUSTER_TARGET_GIB:
            missed.append(
                f"{size:,} faces re-clustered in traced peak {peak:.2f} GiB / peak RSS {rss:.2f} GiB"
                f" > {RECLUSTER_TARGET_GIB:.0f} GiB"
            )
    return rows, missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512, help="synthetic dimension (512: ArcFace packs)")
    parser.add_argument("--no-labelled", action="store_true", help="skip the labelled asset photos")
    args = parser.parse_args(argv)
    policy = ClusterPolicy()
    labelled_policy = MOBILEFACENET_128D
    print(f"policy: {policy}\nlabelled set policy: {labelled_policy}")
    one = _result(_child("gflops", REPO, threads=1))["gflops"]  # starts the fork server: do it first
    print(
        f"BLAS: numpy's OpenBLAS on {blas_threads()} threads ({os.cpu_count()} cores); sgemm 768x512x768:"
        f" {sgemm_gflops():.0f} GFLOP/s in this process, {one:.0f} GFLOP/s on 1 thread"
    )
    rows: list[list[object]] = []
    missed: list[str] = []
    if not args.no_labelled:
        labelled_rows, ok = run_labelled(labelled_policy)
        rows += labelled_rows
        if not ok:
            missed.append(f"labelled pairwise F < {F_TARGET}")
    shard_rows: list[list[object]] = []
    for size in args.sizes:
        size_rows, size_missed = run_synthetic(size, args.dim, policy, shard_rows)
        rows += size_rows
        missed += size_missed
        print(format_table(HEADERS, rows), flush=True)
    print()
    print(format_table(HEADERS, rows, title="identities"))
    if shard_rows:
        print()
        print(format_table(SHARD_HEADERS, shard_rows, title="kNN graph: one process and array children"))
    for line in missed:
        print(f"MISSED: {line}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
