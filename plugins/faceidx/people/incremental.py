"""Incremental identities: new faces join known persons, or wait in a buffer until they form one.

Pure numpy over plain arrays; the DAG's task feeds it from the tables.

* **Centroids** (:func:`person_centroids`): a person is matched through up to
  ``ClusterPolicy.max_centroids`` unit centroids, one per ``faces_per_centroid`` faces, found by a
  few rounds of spherical k-means from farthest-point seeds: a frontal and a profile cluster of one
  person each get a centroid, where one mean would sit between them.
* **Assignment** (:func:`assign_faces`): a face joins the person whose nearest centroid is at least
  ``threshold`` similar *and* beats the best centroid of any other person by ``margin``. Siblings and
  look-alikes score close to both persons: they fail the margin and wait in the buffer rather than
  merging two families into one person. A face never joins a person that already holds a face of its
  image (nor two faces of one image the same person in one batch): the closer one wins, the other waits.
* **Promotion** (:func:`promote_buffer`): the buffer and the faces that matched no one are clustered
  together with :func:`faceidx.people.clustering.cluster_faces`; a cluster that passes the core rule
  becomes a new person, everything else stays buffered. One face alone never creates a person.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from faceidx.people.clustering import NOISE, ClusterPolicy, as_unit, cluster_faces, knn


class Outcome(StrEnum):
    """What became of one face in an incremental run: the ``method`` column of face_persons."""

    ASSIGNED = "assigned"  # joined a known person (centroid match)
    PROMOTED = "promoted"  # part of a new person formed from the buffer
    BUFFERED = "buffered"  # no person yet: waits for more faces like it
    AMBIGUOUS = "ambiguous"  # two persons within the margin: buffered, not guessed
    IMAGE_CONFLICT = "image_conflict"  # its best person already holds a face of this image: buffered
    GATED = "gated"  # failed the quality gate: never clustered
    CLUSTERED = "clustered"  # placed by a full re-cluster
    CORRECTED = "corrected"  # placed by a user's correction


WAITING = frozenset({Outcome.BUFFERED, Outcome.AMBIGUOUS, Outcome.IMAGE_CONFLICT})


def person_centroids(x: np.ndarray, policy: ClusterPolicy, seed: int = 0) -> np.ndarray:
    """Up to ``max_centroids`` unit centroids for one person's unit embeddings ``x`` (faces x D)."""
    x = as_unit(x)
    count = min(policy.max_centroids, max(1, len(x) // policy.faces_per_centroid))
    mean = as_unit(x.mean(axis=0, keepdims=True))
    if count == 1:
        return mean
    # farthest-point seeds, starting from the face farthest from the mean
    seeds = [int(np.argmin(x @ mean[0]))]
    best = x @ x[seeds[0]]
    for _ in range(count - 1):
        seeds.append(int(np.argmin(best)))
        best = np.maximum(best, x @ x[seeds[-1]])
    centroids = x[seeds].copy()
    for _ in range(4):
        owner = np.argmax(x @ centroids.T, axis=1)
        for c in range(count):
            members = x[owner == c]
            if len(members):
                centroids[c] = members.mean(axis=0)
        centroids = as_unit(centroids)
    return centroids


@dataclass
class PersonIndex:
    """Centroids of the known persons: ``owner[i]`` is the position in ``person_ids`` of row ``i``."""

    person_ids: list[str]
    centroids: np.ndarray  # (m, D) float32, unit rows
    owner: np.ndarray  # (m,) int64

    @classmethod
    def empty(cls, dim: int) -> PersonIndex:
        return cls([], np.zeros((0, dim), np.float32), np.zeros(0, np.int64))

    @classmethod
    def from_centroids(cls, persons: dict[str, np.ndarray]) -> PersonIndex:
        """From person id -> (c, D) centroids."""
        ids = list(persons)
        if not ids:
            raise ValueError("no persons: use PersonIndex.empty(dim)")
        blocks = [as_unit(np.atleast_2d(persons[pid])) for pid in ids]
        owner = np.concatenate([np.full(len(b), i, np.int64) for i, b in enumerate(blocks)])
        return cls(ids, np.concatenate(blocks).astype(np.float32), owner)

    @classmethod
    def from_faces(
        cls, embeddings: np.ndarray, person_of_face: list[str], policy: ClusterPolicy
    ) -> PersonIndex:
        """Centroids computed from the faces of each person."""
        x = as_unit(embeddings)
        people = np.asarray(person_of_face, dtype=object)
        if len(people) == 0:
            return cls.empty(x.shape[1])
        ids, codes = np.unique(people.astype(str), return_inverse=True)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(ids) + 1))
        persons = {
            str(pid): person_centroids(x[order[bounds[i] : bounds[i + 1]]], policy)
            for i, pid in enumerate(ids)
        }
        return cls.from_centroids(persons)


@dataclass
class Assignment:
    """Per new face: the person id (None when not placed), the outcome, the best similarity."""

    person_ids: list[str | None]
    outcomes: list[Outcome]
    similarity: np.ndarray
    new_persons: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for outcome in self.outcomes:
            out[outcome.value] = out.get(outcome.value, 0) + 1
        return out


def assign_faces(
    embeddings: np.ndarray,
    image_ids: list[str],
    persons: PersonIndex,
    policy: ClusterPolicy,
    *,
    taken: set[tuple[str, str]] | None = None,
) -> Assignment:
    """Match each face (already through the quality gate) to a known person, or leave it waiting.

    ``taken`` holds (person_id, image_id) pairs already in the mapping: the one-person-per-image rule.
    """
    x = as_unit(embeddings)
    n = x.shape[0]
    result: list[str | None] = [None] * n
    outcomes = [Outcome.BUFFERED] * n
    best_sim = np.full(n, -1.0, dtype=np.float32)
    if n == 0 or not persons.person_ids:
        return Assignment(result, outcomes, best_sim)
    k = min(len(persons.owner), max(2 * policy.max_centroids + 2, 8))
    sims, idx = knn(persons.centroids, policy, queries=x, k=k)
    owners = np.where(idx >= 0, persons.owner[np.maximum(idx, 0)], -1)
    best_owner = owners[:, 0]
    best_sim = sims[:, 0].astype(np.float32)
    other = (owners != best_owner[:, None]) & (owners >= 0)
    runner_up = np.where(other.any(axis=1), sims[np.arange(n), np.argmax(other, axis=1)], -1.0)
    used = set(taken or ())
    for i in np.argsort(-best_sim, kind="stable"):
        if best_sim[i] < policy.threshold:
            continue
        if best_sim[i] - runner_up[i] < policy.margin:
            outcomes[i] = Outcome.AMBIGUOUS
            continue
        pid = persons.person_ids[int(best_owner[i])]
        if (pid, image_ids[i]) in used:
            outcomes[i] = Outcome.IMAGE_CONFLICT
            continue
        used.add((pid, image_ids[i]))
        result[i] = pid
        outcomes[i] = Outcome.ASSIGNED
    return Assignment(result, outcomes, best_sim)


def promote_buffer(
    embeddings: np.ndarray,
    image_ids: list[str],
    policy: ClusterPolicy,
    new_person_id: Callable[[np.ndarray], str],
) -> list[str | None]:
    """New persons from the waiting faces: a person id per face (None: still waiting).

    ``new_person_id(face_positions) -> str`` names each new person (a stable id from its faces).
    """
    from faceidx.people.clustering import encode

    n = len(image_ids)
    if n < policy.min_samples + 1:
        return [None] * n
    labels = cluster_faces(embeddings, encode(image_ids), policy)
    out: list[str | None] = [None] * n
    for label in np.unique(labels[labels != NOISE]):
        members = np.flatnonzero(labels == label)
        pid = new_person_id(members)
        for i in members:
            out[int(i)] = str(pid)
    return out
