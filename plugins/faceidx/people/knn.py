"""The kNN graph of a large face set by an inverted-file (IVF) search, in shards.

Pure numpy; no Airflow, no storage client. Embeddings are L2-normalised float32 rows (inner
product = cosine), in memory or memory-mapped from a ``.npy`` file (nothing copies them whole).

The search, as :func:`faceidx.people.clustering.knn` runs it above ``ClusterPolicy.exact_below``:

1. **Cells** (:func:`build_cells`, once): spherical k-means on a sample of 16 faces per cell
   (``n / 256`` cells), then every face joins its ``probes`` nearest cells. :class:`IvfCells` holds
   the unit centroids and that cell list per face; :func:`save_cells` writes it as one ``.npz``.
2. **Search** (:func:`search_rows`, any range of faces): for every cell, the shard's faces in it
   against all of the cell's faces as one matrix product, the best ``k`` kept per face and cell;
   a face's ``probes`` candidate lists are then merged (repeats dropped), best ``k`` kept. A face's
   row depends only on the embeddings and the cells, never on which other faces share its shard
   (bit for bit: see :func:`_products`).
3. **Merge** (:func:`merge_shards`): the parts concatenated in shard order: the same graph as one
   in-process search of all faces.

Fan-out as an array job (one child per shard; each child needs only the two files)::

    cells = build_cells(np.load("embeddings.npy", mmap_mode="r"))  # once, before the array job
    save_cells("cells.npz", cells)                     # next to embeddings.npy
    run_shard("embeddings.npy", "cells.npz", shard=i, shards=n, out_dir="parts", k=10)  # child i
    sims, idx = merge_shards("parts", shards=n)       # after the array job

Files: ``embeddings.npy`` (faces x d float32, unit rows; opened with ``mmap_mode="r"``),
``cells.npz`` (``centroids`` cells x d float32, ``lists`` faces x probes int32), and per shard
``knn-<shard>-of-<shards>.npz`` (``lo``, ``hi``: the rows; ``sims`` float32 and ``idx`` int64,
(hi - lo) x k, best first, index -1 where fewer neighbours exist). Writing a part is atomic
(temporary name, then rename), so a retried child overwrites its own part and nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CELL_SIZE = 256  # faces per cell on average
PROBES = 3  # cells each face joins (and is searched in)
SAMPLE_PER_CELL = 16  # k-means training faces per cell
ROW_BLOCK = 8192  # rows per matrix product when faces meet centroids


@dataclass(frozen=True)
class IvfCells:
    """Trained cells of one face set: ``centroids`` (cells x d, unit float32) and ``lists``
    (faces x probes int32): the cells each face belongs to, nearest first."""

    centroids: np.ndarray
    lists: np.ndarray

    @property
    def probes(self) -> int:
        return int(self.lists.shape[1])


def top_k(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest entries per row, best first: (values, column indices)."""
    k = min(k, sims.shape[1])
    if k == 0:
        return np.zeros((sims.shape[0], 0), np.float32), np.zeros((sims.shape[0], 0), np.int64)
    if k < sims.shape[1]:
        part = np.argpartition(sims, sims.shape[1] - k, axis=1)[:, -k:]
    else:
        part = np.argsort(-sims, axis=1)
    values = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(values, order, axis=1), np.take_along_axis(part, order, axis=1).astype(np.int64)


def group_sums(x: np.ndarray, groups: np.ndarray, count: int, block: int = 16384) -> np.ndarray:
    """Row sums per group (float64, count x d) of the rows with ``groups >= 0``; ``x`` is read in
    blocks of rows, never copied whole (``np.add.at`` on rows is an order of magnitude slower).
    Sums within a block are in ``x``'s dtype, across blocks in float64."""
    sums = np.zeros((count, x.shape[1]), dtype=np.float64)
    for start in range(0, len(groups), block):
        g = groups[start : start + block]
        rows = np.flatnonzero(g >= 0)
        if len(rows) == 0:
            continue
        order = rows[np.argsort(g[rows], kind="stable")]
        keys = g[order]
        heads = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        chunk = np.asarray(x[start : start + block])[order]
        sums[keys[heads]] += np.add.reduceat(chunk, heads, axis=0)  # within a block: x's dtype
    return sums


def unit_rows(v: np.ndarray) -> np.ndarray:
    """Rows scaled to norm 1, as float32."""
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray((v / np.maximum(norms, 1e-12)).astype(np.float32))


def train_centroids(x: np.ndarray, cells: int, seed: int, iterations: int = 6) -> np.ndarray:
    """Unit centroids of ``cells`` cells: spherical k-means on a sample of 16 faces per cell."""
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(x), size=min(len(x), SAMPLE_PER_CELL * cells), replace=False))
    sample = np.asarray(x[picked], dtype=np.float32)
    centroids = sample[rng.choice(len(sample), size=cells, replace=False)].copy()
    for _ in range(iterations):
        owner = nearest_cells(sample, centroids, 1)[:, 0]
        sums = group_sums(sample, owner, cells)
        empty = np.bincount(owner, minlength=cells) == 0
        sums[empty] = sample[rng.choice(len(sample), size=int(empty.sum()))]
        centroids = unit_rows(sums)
    return centroids


def nearest_cells(x: np.ndarray, centroids: np.ndarray, probes: int) -> np.ndarray:
    """The ``probes`` nearest cells of every row of ``x``, nearest first (rows x probes, int32)."""
    probes = min(probes, len(centroids))
    out = np.empty((len(x), probes), dtype=np.int32)
    for start in range(0, len(x), ROW_BLOCK):
        sims = np.asarray(x[start : start + ROW_BLOCK], dtype=np.float32) @ centroids.T
        rows = np.arange(len(sims))
        for p in range(probes):  # a few argmax passes beat a partition of every row
            best = np.argmax(sims, axis=1)
            out[start : start + len(sims), p] = best
            sims[rows, best] = -np.inf
    return out


def build_cells(
    x: np.ndarray, *, cell_size: int = CELL_SIZE, probes: int = PROBES, seed: int = 0
) -> IvfCells:
    """Train ``max(2, n / cell_size)`` cells on a sample of ``x`` and put every face in its
    ``probes`` nearest ones. Run once per face set, before the shards."""
    cells = max(2, len(x) // cell_size)
    centroids = train_centroids(x, cells, seed)
    return IvfCells(centroids, nearest_cells(x, centroids, probes))


def save_cells(path: str | Path, cells: IvfCells) -> Path:
    """Write ``cells`` to ``path`` (``.npz``: ``centroids``, ``lists``), atomically."""
    return _atomic_npz(Path(path), centroids=cells.centroids, lists=cells.lists)


def load_cells(path: str | Path) -> IvfCells:
    with np.load(path) as data:
        return IvfCells(data["centroids"], data["lists"])


def shard_bounds(n: int, shard: int, shards: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of shard ``shard`` (0-based) of ``shards``: contiguous, sizes differ by one."""
    if shards < 1 or not 0 <= shard < shards:
        raise ValueError(f"shard {shard} of {shards}: need 0 <= shard < shards")
    return n * shard // shards, n * (shard + 1) // shards


def search_rows(
    x: np.ndarray, cells: IvfCells, k: int, lo: int = 0, hi: int | None = None, *, block: int = 65536
) -> tuple[np.ndarray, np.ndarray]:
    """kNN rows ``lo..hi`` of ``x`` searched in their cells: (sims float32, idx int64), each
    (hi - lo) x k, best first, a face never its own neighbour, index -1 where fewer exist."""
    n = len(x)
    hi = n if hi is None else hi
    probes = cells.probes
    members = np.tile(np.arange(n, dtype=np.int64), probes)
    cell_of = cells.lists.T.reshape(-1)
    order = np.argsort(cell_of, kind="stable")
    members, cell_of = members[order], cell_of[order]
    bounds = np.searchsorted(cell_of, np.arange(len(cells.centroids) + 1))
    rank = np.empty(len(order), dtype=np.int64)  # which of its face's probes an entry is
    rank[:] = order // n
    del order, cell_of
    rows = hi - lo
    cand_sims = np.full((rows * probes, k), -np.inf, np.float32)
    cand_idx = np.full((rows * probes, k), -1, np.int64)
    for c in range(len(bounds) - 1):
        a, b = bounds[c], bounds[c + 1]
        if b - a < 2:
            continue
        ids = members[a:b]
        mine = np.flatnonzero((ids >= lo) & (ids < hi))
        if len(mine) == 0:
            continue
        base = np.asarray(x[ids], dtype=np.float32)
        sims = _products(base[mine], base)
        sims[np.arange(len(mine)), mine] = -np.inf  # not its own neighbour
        values, cols = top_k(sims, min(k, b - a - 1))
        slots = (ids[mine] - lo) * probes + rank[a:b][mine]
        cand_sims[slots, : values.shape[1]] = values
        cand_idx[slots, : cols.shape[1]] = ids[cols]
    del members, rank
    sims_out = np.empty((rows, k), np.float32)
    idx_out = np.empty((rows, k), np.int64)
    for start in range(0, rows, block):  # each face: its probes candidate lists -> best k
        stop = min(start + block, rows)
        s = cand_sims[start * probes : stop * probes].reshape(stop - start, probes * k)
        i = cand_idx[start * probes : stop * probes].reshape(stop - start, probes * k)
        order = np.argsort(i, axis=1, kind="stable")
        i = np.take_along_axis(i, order, axis=1)
        s = np.take_along_axis(s, order, axis=1)
        repeat = np.zeros_like(i, dtype=bool)
        repeat[:, 1:] = i[:, 1:] == i[:, :-1]
        s[repeat | (i < 0)] = -np.inf
        values, cols = top_k(s, k)
        chosen = np.take_along_axis(i, cols, axis=1)
        chosen[~np.isfinite(values)] = -1
        sims_out[start:stop] = values
        idx_out[start:stop] = chosen
    return sims_out, idx_out


SMALL_GEMM = 1_100_000  # OpenBLAS takes another kernel for m * n * k up to 10^6 (AVX-512 builds)


def _products(queries: np.ndarray, base: np.ndarray) -> np.ndarray:
    """``queries @ base.T`` whose every entry is the same whichever other queries come along.

    OpenBLAS computes small products (m * n * k <= 10^6) with another kernel, whose last bit
    differs, and a shard holds fewer of a cell's faces than the whole run: zero rows are added so
    that every product takes the large kernel (only tiny cells pay for it)."""
    rows = max(len(queries), -(-SMALL_GEMM // max(1, base.shape[0] * base.shape[1])))
    if rows == len(queries):
        return queries @ base.T
    padded = np.zeros((rows, base.shape[1]), dtype=np.float32)
    padded[: len(queries)] = queries
    return (padded @ base.T)[: len(queries)]


def part_path(out_dir: str | Path, shard: int, shards: int) -> Path:
    return Path(out_dir) / f"knn-{shard:05d}-of-{shards:05d}.npz"


def run_shard(
    embeddings_path: str | Path,
    cells_path: str | Path,
    shard: int,
    shards: int,
    out_dir: str | Path,
    *,
    k: int,
) -> Path:
    """One array child: the kNN rows of shard ``shard`` of ``shards``, written to
    ``out_dir/knn-<shard>-of-<shards>.npz``; returns that path.

    Reads ``embeddings_path`` (``.npy``, memory-mapped) and ``cells_path`` (:func:`save_cells`).
    Idempotent: a rerun writes the same part again.
    """
    x = np.load(embeddings_path, mmap_mode="r")
    cells = load_cells(cells_path)
    if len(cells.lists) != len(x):
        raise ValueError(
            f"cells {cells_path} list {len(cells.lists)} faces, embeddings {embeddings_path} hold"
            f" {len(x)}: build the cells again for this embeddings file"
        )
    lo, hi = shard_bounds(len(x), shard, shards)
    sims, idx = search_rows(x, cells, k, lo, hi)
    return _atomic_npz(part_path(out_dir, shard, shards), lo=lo, hi=hi, sims=sims, idx=idx)


def merge_shards(out_dir: str | Path, shards: int) -> tuple[np.ndarray, np.ndarray]:
    """The kNN graph (sims, idx) of all faces from the ``shards`` parts in ``out_dir``; raises
    when a part is missing or the parts do not tile the rows."""
    sims: list[np.ndarray] = []
    idx: list[np.ndarray] = []
    expected = 0
    for shard in range(shards):
        path = part_path(out_dir, shard, shards)
        if not path.exists():
            raise FileNotFoundError(f"kNN part {path} is missing: rerun array child {shard}")
        with np.load(path) as part:
            if int(part["lo"]) != expected:
                raise ValueError(f"kNN part {path} starts at row {int(part['lo'])}, expected {expected}")
            expected = int(part["hi"])
            sims.append(part["sims"])
            idx.append(part["idx"])
    return np.concatenate(sims), np.concatenate(idx)


def _atomic_npz(path: Path, **arrays: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)
    return path
