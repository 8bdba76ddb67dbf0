from __future__ import annotations

import numpy as np
import pytest

from faceidx.people.clustering import ClusterPolicy, exact_knn, knn
from faceidx.people.evaluation import synthetic_faces
from faceidx.people.knn import (
    build_cells,
    group_sums,
    load_cells,
    merge_shards,
    part_path,
    run_shard,
    save_cells,
    search_rows,
    shard_bounds,
)

K = 10


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return synthetic_faces(3000, dim=64, seed=5).embeddings


@pytest.mark.parametrize("shards", [1, 2, 3, 7])
def test_shards_merged_are_the_in_process_graph(faces, tmp_path, shards):
    cells = build_cells(faces, cell_size=64, seed=1)
    np.save(tmp_path / "embeddings.npy", faces)
    save_cells(tmp_path / "cells.npz", cells)
    for shard in range(shards):
        run_shard(tmp_path / "embeddings.npy", tmp_path / "cells.npz", shard, shards, tmp_path / "parts", k=K)
    sims, idx = merge_shards(tmp_path / "parts", shards)
    one_sims, one_idx = search_rows(faces, cells, K)
    assert idx.shape == (len(faces), K)
    np.testing.assert_array_equal(idx, one_idx)
    np.testing.assert_array_equal(sims, one_sims)


def test_the_cell_search_is_the_graph_of_knn(faces):
    policy = ClusterPolicy(exact_below=1000)
    sims, idx = knn(faces, policy)
    cells = build_cells(faces, seed=policy.seed)
    one_sims, one_idx = search_rows(faces, cells, policy.k)
    np.testing.assert_array_equal(idx, one_idx)
    np.testing.assert_array_equal(sims, one_sims)


def test_rows_are_neighbours_best_first_never_the_face_itself(faces):
    cells = build_cells(faces, cell_size=64)
    sims, idx = search_rows(faces, cells, K, 100, 400)
    assert (idx != np.arange(100, 400)[:, None]).all()
    assert (np.diff(sims, axis=1) <= 0).all()
    found = np.einsum("ij,ikj->ik", faces[100:400], faces[idx])
    np.testing.assert_allclose(found, sims, atol=1e-5)
    assert all(len(set(row)) == K for row in idx), "a neighbour listed twice"
    exact_sims, _ = exact_knn(faces, None, K)
    assert (sims <= exact_sims[100:400] + 1e-5).all()


def test_shard_bounds_tile_the_rows():
    bounds = [shard_bounds(10, shard, 4) for shard in range(4)]
    assert bounds == [(0, 2), (2, 5), (5, 7), (7, 10)]
    with pytest.raises(ValueError):
        shard_bounds(10, 4, 4)


def test_a_missing_part_is_named(faces, tmp_path):
    cells = build_cells(faces, cell_size=64)
    np.save(tmp_path / "e.npy", faces)
    save_cells(tmp_path / "c.npz", cells)
    assert load_cells(tmp_path / "c.npz").lists.shape == (len(faces), 3)
    run_shard(tmp_path / "e.npy", tmp_path / "c.npz", 0, 2, tmp_path, k=K)
    with pytest.raises(FileNotFoundError, match=str(part_path(tmp_path, 1, 2).name)):
        merge_shards(tmp_path, 2)


def test_cells_of_another_embeddings_file_are_refused(faces, tmp_path):
    save_cells(tmp_path / "c.npz", build_cells(faces[:2000], cell_size=64))
    np.save(tmp_path / "e.npy", faces)
    with pytest.raises(ValueError, match="build the cells again"):
        run_shard(tmp_path / "e.npy", tmp_path / "c.npz", 0, 1, tmp_path, k=K)


def test_group_sums_add_rows_per_group():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 8)).astype(np.float32)
    groups = rng.integers(-1, 30, size=1000)
    expected = np.zeros((30, 8))
    np.add.at(expected, groups[groups >= 0], x[groups >= 0].astype(np.float64))
    np.testing.assert_allclose(group_sums(x, groups, 30, block=128), expected, rtol=1e-6, atol=1e-6)


def test_a_small_cell_gives_each_face_the_same_similarities_in_any_shard():
    # OpenBLAS computes small products with another kernel: a cell's faces split between shards
    # must still get the bits the whole cell gets (plain matmul differs here on AVX-512 builds)
    from faceidx.people.knn import _products

    rng = np.random.default_rng(0)
    for _ in range(20):
        cell = rng.standard_normal((38, 512)).astype(np.float32)
        some = np.sort(rng.choice(38, 16, replace=False))
        np.testing.assert_array_equal(_products(cell, cell)[some], _products(cell[some], cell))
