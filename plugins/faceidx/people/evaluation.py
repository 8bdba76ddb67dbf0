"""Measuring identities: pairwise and BCubed scores, and synthetic faces with ArcFace-like structure.

**Scores** (:func:`scores`) compare predicted persons with true identities. A face the clustering left
out (noise, ``-1``) counts as a person of its own, so leaving faces out costs recall, never precision.
Pairwise precision/recall are over pairs of faces put in one person; BCubed averages, per face, the
share of its predicted person that is truly its identity (precision) and of its identity that its
person holds (recall).

**Synthetic faces** (:func:`synthetic_faces`) imitate a 512-d ArcFace pack on real photos:

* identity centres are unit vectors in a random 150-d subspace of the space, tilted by 0.2 towards a
  shared direction, so centre similarities are about N(0.04, 0.08);
* a face is ``sqrt(q) * centre + sqrt(1 - q) * noise`` with a per-face quality ``q`` drawn from
  N(0.62, 0.12) clipped to [0.2, 0.95]: same-identity pairs score about N(0.60, 0.09) and different
  identities about N(0.02, 0.05), what ArcFace-r50 gives on unconstrained photos;
* a share of identities have a *sibling*: a centre at similarity 0.6 to another's, so their faces
  score about 0.36 across, above the edge threshold: the case that merges families;
* persons have a long-tailed number of faces (1 + a geometric draw, mean ``mean_faces``); a share of
  faces are strangers seen once;
* faces are grouped into photos: most alone, the rest 2 to 5 distinct identities per photo, siblings
  often together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scores:
    pairwise_precision: float
    pairwise_recall: float
    pairwise_f: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f: float
    persons: int  # predicted persons (noise excluded)
    noise: int  # faces left out

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def _f(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def scores(predicted: np.ndarray, truth: np.ndarray) -> Scores:
    """Pairwise and BCubed precision, recall and F of ``predicted`` labels against ``truth`` labels."""
    predicted = np.asarray(predicted, dtype=np.int64).copy()
    truth = np.asarray(truth)
    n = len(predicted)
    noise = predicted < 0
    # each noise face its own person
    base = int(predicted.max()) + 1 if (~noise).any() else 0
    predicted[noise] = base + np.arange(int(noise.sum()))
    _, p_codes = np.unique(predicted, return_inverse=True)
    _, t_codes = np.unique(truth, return_inverse=True)
    joint = p_codes.astype(np.int64) * (int(t_codes.max()) + 1) + t_codes
    _, j_codes, j_counts = np.unique(joint, return_inverse=True, return_counts=True)
    p_sizes = np.bincount(p_codes)
    t_sizes = np.bincount(t_codes)
    true_pairs = float((j_counts * (j_counts - 1) / 2).sum())
    pred_pairs = float((p_sizes * (p_sizes - 1) / 2).sum())
    real_pairs = float((t_sizes * (t_sizes - 1) / 2).sum())
    pp = true_pairs / pred_pairs if pred_pairs else 1.0
    pr = true_pairs / real_pairs if real_pairs else 1.0
    overlap = j_counts[j_codes]
    bp = float((overlap / p_sizes[p_codes]).mean()) if n else 1.0
    br = float((overlap / t_sizes[t_codes]).mean()) if n else 1.0
    return Scores(pp, pr, _f(pp, pr), bp, br, _f(bp, br), int(len(p_sizes) - noise.sum()), int(noise.sum()))


@dataclass(frozen=True)
class SyntheticFaces:
    embeddings: np.ndarray  # (n, dim) float32, unit rows
    identity: np.ndarray  # (n,) int64 true identity
    image_codes: np.ndarray  # (n,) int64 photo of each face
    quality: np.ndarray  # (n,) float32 the per-face q

    @property
    def image_ids(self) -> list[str]:
        return [f"img{code}" for code in self.image_codes]


def synthetic_faces(
    n_faces: int,
    *,
    dim: int = 512,
    mean_faces: float = 10.0,
    stranger_share: float = 0.05,
    sibling_share: float = 0.1,
    group_share: float = 0.3,
    seed: int = 0,
    chunk: int = 100_000,
) -> SyntheticFaces:
    """``n_faces`` synthetic faces; see the module docstring for the distributions."""
    rng = np.random.default_rng(seed)
    strangers = int(n_faces * stranger_share)
    sizes: list[int] = []
    total = 0
    while total < n_faces - strangers:
        size = 1 + int(rng.geometric(1.0 / max(mean_faces - 1.0, 1.0)))
        sizes.append(size)
        total += size
    sizes[-1] -= total - (n_faces - strangers)
    sizes = [s for s in sizes if s > 0] + [1] * strangers
    persons = len(sizes)
    identity = np.repeat(np.arange(persons, dtype=np.int64), sizes)[:n_faces]
    # identity centres: a 150-d subspace, tilted towards a shared direction
    sub = min(150, dim - 1)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, sub + 1)).astype(np.float32))
    shared, basis = basis[:, 0], basis[:, 1:]
    z = rng.standard_normal((persons, sub)).astype(np.float32)
    centres = z @ basis.T
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    centres = 0.98 * centres + 0.2 * shared[None, :]
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    siblings = rng.random(persons) < sibling_share
    partner = rng.integers(0, persons, size=persons)
    fresh = rng.standard_normal((int(siblings.sum()), dim)).astype(np.float32)
    fresh /= np.linalg.norm(fresh, axis=1, keepdims=True)
    mixed = np.sqrt(0.6) * centres[partner[siblings]] + np.sqrt(0.4) * fresh
    centres[siblings] = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
    quality = np.clip(rng.normal(0.62, 0.12, n_faces), 0.2, 0.95).astype(np.float32)
    x = np.empty((n_faces, dim), dtype=np.float32)
    for start in range(0, n_faces, chunk):
        stop = min(start + chunk, n_faces)
        noise = rng.standard_normal((stop - start, dim)).astype(np.float32)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        q = quality[start:stop, None]
        block = np.sqrt(q) * centres[identity[start:stop]] + np.sqrt(1.0 - q) * noise
        x[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    image_codes = _photos(identity, siblings, partner, group_share, rng)
    order = rng.permutation(n_faces)  # arrival order is not identity order
    return SyntheticFaces(x[order], identity[order], image_codes[order], quality[order])


def _photos(
    identity: np.ndarray,
    siblings: np.ndarray,
    partner: np.ndarray,
    group_share: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A photo per face: most alone, ``group_share`` in photos of 2-5 distinct identities."""
    n = len(identity)
    codes = np.arange(n, dtype=np.int64)
    grouped = rng.permutation(np.flatnonzero(rng.random(n) < group_share))
    next_code = n
    i = 0
    while i < len(grouped):
        size = int(rng.integers(2, 6))
        seen: set[int] = set()
        for face in grouped[i : i + size]:
            if int(identity[face]) not in seen:  # one identity once per photo
                seen.add(int(identity[face]))
                codes[face] = next_code
        next_code += 1
        i += size
    # siblings photographed together: a face of each sibling with a face of its partner
    order = np.argsort(identity, kind="stable")
    first = np.searchsorted(identity[order], np.arange(int(identity.max()) + 1))
    for person in np.flatnonzero(siblings):
        other = int(partner[person])
        if other == person or other > identity.max():
            continue
        a, b = order[first[person]], order[first[other]]
        if identity[a] == person and identity[b] == other:
            codes[a] = codes[b] = next_code
            next_code += 1
    return codes
