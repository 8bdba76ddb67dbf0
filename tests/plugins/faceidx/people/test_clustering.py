from __future__ import annotations

import numpy as np
import pytest

from faceidx.people.clustering import NOISE, ClusterPolicy, cluster_faces, encode, knn
from faceidx.people.evaluation import scores, synthetic_faces


def _blobs(persons: int, per: int, dim: int = 64, spread: float = 0.5, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((persons, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = np.repeat(np.arange(persons), per)
    noise = rng.standard_normal((persons * per, dim)) / np.sqrt(dim)
    x = np.sqrt(1 - spread) * centres[truth] + np.sqrt(spread) * noise
    return x.astype(np.float32), truth


def test_separated_persons_come_out_whole():
    x, truth = _blobs(5, 6)
    labels = cluster_faces(x, np.arange(len(x)), ClusterPolicy())
    assert scores(labels, truth).pairwise_f == 1.0


def test_singletons_never_become_persons():
    x, _ = _blobs(6, 1)
    labels = cluster_faces(x, np.arange(len(x)), ClusterPolicy())
    assert (labels == NOISE).all()


def test_two_faces_of_one_image_never_share_a_person():
    # twins: two identities whose faces are all above the threshold to each other, always together
    rng = np.random.default_rng(1)
    base = rng.standard_normal(64)
    a = base + 0.25 * rng.standard_normal((5, 64))
    b = base + 0.25 * rng.standard_normal((5, 64))
    x = np.concatenate([a, b]).astype(np.float32)
    images = np.concatenate([np.arange(5), np.arange(5)])  # photo i holds twin a_i and twin b_i
    labels = cluster_faces(x, images, ClusterPolicy())
    for image in range(5):
        pair = labels[images == image]
        assert pair[0] == NOISE or pair[0] != pair[1]
    assert len(set(labels[labels >= 0])) == 2


def test_a_weak_bridge_does_not_merge_two_persons():
    x, truth = _blobs(2, 8, spread=0.3)
    bridge = (x[0] + x[8]) / 2  # one face that looks like both
    x = np.vstack([x, bridge]).astype(np.float32)
    truth = np.append(truth, 2)
    labels = cluster_faces(x, np.arange(len(x)), ClusterPolicy(threshold=0.3))
    assert len(set(labels[:8])) == 1
    assert len(set(labels[8:16])) == 1
    assert labels[0] != labels[8]


def test_cell_search_finds_most_neighbours_of_a_large_set():
    faces = synthetic_faces(6000, dim=64, seed=3)
    policy = ClusterPolicy(exact_below=1000)
    _approx_sims, approx = knn(faces.embeddings, policy)
    exact_sims, exact = knn(faces.embeddings, ClusterPolicy())
    strong = exact_sims >= 0.3
    found = sum(len(np.intersect1d(exact[i][strong[i]], approx[i])) for i in range(len(exact)))
    assert found / strong.sum() > 0.8


def test_synthetic_set_clusters_to_target():
    faces = synthetic_faces(5000, seed=2)
    labels = cluster_faces(faces.embeddings, faces.image_codes, ClusterPolicy())
    result = scores(labels, faces.identity)
    assert result.pairwise_f >= 0.95, result
    valid = labels >= 0
    pairs = labels[valid] * 10**7 + faces.image_codes[valid]
    assert len(np.unique(pairs)) == valid.sum(), "a person holds two faces of one photo"


def test_scores_count_noise_as_singletons():
    result = scores(np.array([0, 0, -1, -1]), np.array([1, 1, 2, 2]))
    assert result.pairwise_precision == 1.0
    assert result.pairwise_recall == 0.5


@pytest.mark.assets
def test_friends_cast_comes_out_as_six_persons(labelled_faces):
    faces = labelled_faces
    friends = [i for i, name in enumerate(faces.images) if name in ("t1.jpg", "many_face.png")]
    labels = cluster_faces(
        faces.embeddings[friends], encode([faces.images[i] for i in friends]), ClusterPolicy()
    )
    truth = [faces.identities[i] for i in friends]
    assert (labels >= 0).all()
    assert len(set(labels)) == 6
    for label in set(labels):
        members = {truth[i] for i in np.flatnonzero(labels == label)}
        assert len(members) == 1, f"person {label} mixes {members}"


def test_photos_uploaded_many_times_still_join_across_photos(labelled_faces):
    """The Friends photos each uploaded 13 times (13 copies of every face): the copies must not fill
    every face's neighbours, or each photo's copies become their own persons (12 instead of 6)."""
    faces = labelled_faces
    friends = [i for i, name in enumerate(faces.images) if name in ("t1.jpg", "many_face.png")]
    rows = [i for _copy in range(13) for i in friends]
    images = [f"{faces.images[i]}#{copy}" for copy in range(13) for i in friends]
    labels = cluster_faces(faces.embeddings[rows], encode(images), ClusterPolicy())
    truth = [faces.identities[i] for i in rows]
    assert (labels >= 0).all()
    assert len(set(labels)) == 6
    for label in set(labels):
        assert len({truth[i] for i in np.flatnonzero(labels == label)}) == 1


@pytest.mark.assets
def test_all_labelled_faces_cluster_by_identity(labelled_faces):
    faces = labelled_faces
    labels = cluster_faces(faces.embeddings, encode(faces.images), ClusterPolicy())
    truth = encode(faces.identities)
    result = scores(labels, truth)
    assert result.pairwise_precision == 1.0, result
    for image in set(faces.images):
        in_image = labels[[i for i, name in enumerate(faces.images) if name == image]]
        placed = in_image[in_image >= 0]
        assert len(placed) == len(set(placed)), f"{image}: two faces in one person"
