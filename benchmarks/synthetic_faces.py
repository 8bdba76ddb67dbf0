"""Synthetic face embeddings with the identity structure of a real face index.

A face embedding model (ArcFace and its kin) puts photos of one person in a tight cone and different
people almost orthogonal. :func:`synthetic_faces` imitates that in 512 dimensions:

* **identities**: ``n / faces_per_identity`` centre directions drawn from an anisotropic Gaussian
  (variance falling off over the dimensions as a power law), so two unrelated people have a cosine of
  about N(0, ``inter_sd``) rather than the N(0, 1/sqrt(512) = 0.044) of isotropic random vectors.
* **faces**: each face is its identity's centre plus an orthogonal random part,
  ``a * centre + sqrt(1 - a^2) * noise``, with its own "quality" ``a`` ~ N(``a_mean``, ``a_sd``). Two
  faces of one person then have a cosine of about ``a1 * a2``: N(0.65, ~0.1) with the defaults.
* **sizes**: identities hold 1 + Poisson(faces_per_identity - 1) faces (some one-off faces, some
  people photographed often), shuffled so one person's faces are not stored together.

:func:`measure_spreads` samples pairs and reports the cosines actually obtained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIMENSION = 512


@dataclass
class SyntheticFaces:
    vectors: np.ndarray  # (n, D) float32, unit rows
    identity: np.ndarray  # (n,) int64
    centres: np.ndarray  # (identities, D) float32, unit rows


def _power_law_scales(dimension: int, inter_sd: float) -> np.ndarray:
    """Per-dimension standard deviations s_j = j^-alpha whose random directions have a cosine spread of
    ``inter_sd``: for two independent draws, sd(cos) ~ sqrt(sum s^4) / sum s^2."""
    ranks = np.arange(1, dimension + 1, dtype=np.float64)
    low, high = 0.0, 2.0
    for _ in range(60):
        alpha = (low + high) / 2
        variances = ranks ** (-2 * alpha)
        spread = np.sqrt((variances**2).sum()) / variances.sum()
        low, high = (alpha, high) if spread < inter_sd else (low, alpha)
    return ranks ** (-(low + high) / 2)


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def synthetic_faces(
    n: int,
    *,
    dimension: int = DIMENSION,
    faces_per_identity: float = 10.0,
    a_mean: float = 0.805,
    a_sd: float = 0.085,
    inter_sd: float = 0.072,
    seed: int = 0,
    chunk: int = 100_000,
) -> SyntheticFaces:
    rng = np.random.default_rng(seed)
    scales = _power_law_scales(dimension, inter_sd).astype(np.float32)
    rotation = np.linalg.qr(rng.normal(size=(dimension, dimension)))[0].astype(np.float32)
    identities = max(1, round(n / faces_per_identity))
    centres = _unit((rng.normal(size=(identities, dimension)).astype(np.float32) * scales) @ rotation)
    sizes = 1 + rng.poisson(faces_per_identity - 1, size=identities)
    identity = np.repeat(np.arange(identities), sizes)
    if identity.size < n:
        identity = np.concatenate([identity, rng.integers(0, identities, n - identity.size)])
    identity = rng.permutation(identity[:n])
    vectors = np.empty((n, dimension), dtype=np.float32)
    for start in range(0, n, chunk):
        ids = identity[start : start + chunk]
        vectors[start : start + chunk] = face_of(centres[ids], rng, a_mean=a_mean, a_sd=a_sd)
    return SyntheticFaces(vectors=vectors, identity=identity, centres=centres)


def face_of(
    centres: np.ndarray, rng: np.random.Generator, *, a_mean: float = 0.805, a_sd: float = 0.085
) -> np.ndarray:
    """One new face per centre row: another photo of that person."""
    count, dimension = centres.shape
    noise = rng.normal(size=(count, dimension)).astype(np.float32)
    noise -= (noise * centres).sum(axis=1, keepdims=True) * centres  # orthogonal to the centre
    noise = _unit(noise)
    a = np.clip(rng.normal(a_mean, a_sd, size=(count, 1)), 0.45, 0.98).astype(np.float32)
    return _unit(a * centres + np.sqrt(1 - a**2) * noise)


def measure_spreads(faces: SyntheticFaces, *, pairs: int = 20_000, seed: int = 1) -> dict[str, float]:
    """Mean and standard deviation of the cosine of same-identity and different-identity face pairs."""
    rng = np.random.default_rng(seed)
    order = np.argsort(faces.identity, kind="stable")
    ids = faces.identity[order]
    same = np.nonzero(ids[1:] == ids[:-1])[0]
    picked = rng.choice(same, size=min(pairs, same.size), replace=False)
    a, b = order[picked], order[picked + 1]
    intra = (faces.vectors[a] * faces.vectors[b]).sum(axis=1)
    x = rng.integers(0, len(ids), pairs)
    y = rng.integers(0, len(ids), pairs)
    keep = faces.identity[x] != faces.identity[y]
    inter = (faces.vectors[x[keep]] * faces.vectors[y[keep]]).sum(axis=1)
    return {
        "intra_mean": float(intra.mean()),
        "intra_sd": float(intra.std()),
        "inter_mean": float(inter.mean()),
        "inter_sd": float(inter.std()),
        "inter_p99_9": float(np.quantile(inter, 0.999)),
    }


def lift(vectors: np.ndarray, dimension: int = DIMENSION) -> np.ndarray:
    """Zero-pad lower-dimensional embeddings to ``dimension``: dot products and norms, hence cosines, are
    unchanged (the real 128-d faces sit in a subspace of the synthetic 512-d ones)."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    padded = np.zeros((vectors.shape[0], dimension), dtype=np.float32)
    padded[:, : vectors.shape[1]] = vectors
    return padded
