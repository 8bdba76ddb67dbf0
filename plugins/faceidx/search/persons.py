"""Search by person: for every face of a photo, the persons ranked by their best face or centroid.

Each query face is compared with every person of the version in two ways: its nearest faces in the
vector index (:data:`FACES_PER_PERSON_SEARCH` per requested person), mapped to their persons
(``face_persons``), give each person's *best face*; the persons table's centroids give each person's
*best centroid*. A person's similarity is the higher of the two, and the ranking is by it. Each person
is "same person" or "unknown" at the threshold in force (:func:`faceidx.search.photo.threshold_in_force`,
the calibrated one at FAR 1e-4 by default); unknowns are counted, listed only with ``list_all``.
Reads only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from faceidx.common.tables import format_pairs, format_table
from faceidx.search.photo import (
    DEFAULT_K,
    MAX_K,
    SAME_PERSON,
    UNKNOWN,
    PhotoEmbedder,
    PhotoSearchError,
    box_of,
    query_faces,
    resolve_model_version,
    threshold_in_force,
)

if TYPE_CHECKING:
    from faceidx.store.location import IndexLocation
    from faceidx.store.vectors import VectorIndex

FACES_PER_PERSON_SEARCH = 20  # nearest faces read per requested person (at most MAX_K)


@dataclass(frozen=True)
class PersonMatch:
    person_id: str
    label: str | None
    similarity: float
    by: str  # "face" or "centroid": which gave the similarity
    best_face_similarity: float | None
    centroid_similarity: float | None
    verdict: str
    face_count: int


@dataclass(frozen=True)
class PersonQueryFace:
    face_index: int
    bbox: tuple[float, ...]
    det_score: float
    persons: list[PersonMatch] = field(default_factory=list)
    below_threshold: int = 0


@dataclass(frozen=True)
class PersonSearchResult:
    photo: str
    model_version: str
    k: int
    threshold: float
    far: float | None
    threshold_source: str
    threshold_note: str | None
    list_all: bool
    faces: list[PersonQueryFace]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def rank_persons(
    best_face: dict[str, float],
    centroid: dict[str, float],
    persons: dict[str, dict[str, Any]],
    threshold: float,
    k: int,
) -> list[PersonMatch]:
    """The ``k`` persons with the highest similarity (best face or best centroid), each with its
    verdict at ``threshold``. Pure."""
    ranked = []
    for pid in set(best_face) | set(centroid):
        if pid not in persons:
            continue  # a face mapped to a person that was merged away
        face_sim, centroid_sim = best_face.get(pid), centroid.get(pid)
        candidates = [(s, by) for s, by in ((face_sim, "face"), (centroid_sim, "centroid")) if s is not None]
        similarity, by = max(candidates)
        similarity = round(float(similarity), 4)
        ranked.append(
            PersonMatch(
                person_id=pid,
                label=persons[pid].get("label"),
                similarity=similarity,
                by=by,
                best_face_similarity=None if face_sim is None else round(float(face_sim), 4),
                centroid_similarity=None if centroid_sim is None else round(float(centroid_sim), 4),
                verdict=SAME_PERSON if similarity >= threshold else UNKNOWN,
                face_count=int(persons[pid].get("face_count") or 0),
            )
        )
    ranked.sort(key=lambda m: (-m.similarity, m.person_id))
    return ranked[:k]


def centroid_similarities(vectors: np.ndarray, centroids: dict[str, np.ndarray]) -> list[dict[str, float]]:
    """For each query row, person -> its best centroid's cosine similarity. Pure."""
    if not centroids:
        return [{} for _ in range(len(vectors))]
    q = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    ids = sorted(centroids)
    blocks = [np.asarray(centroids[p], np.float32).reshape(-1, q.shape[1]) for p in ids]
    owner = np.concatenate([np.full(len(b), i) for i, b in enumerate(blocks)])
    stacked = np.vstack(blocks)
    stacked = stacked / np.maximum(np.linalg.norm(stacked, axis=1, keepdims=True), 1e-12)
    sims = q @ stacked.T
    out = []
    for row in sims:
        best = np.full(len(ids), -np.inf)
        np.maximum.at(best, owner, row)
        out.append({ids[i]: float(best[i]) for i in range(len(ids))})
    return out


def search_persons(
    location: IndexLocation,
    photo: str,
    *,
    k: int = DEFAULT_K,
    model_version: str | None = None,
    far: float | None = None,
    min_similarity: float | None = None,
    list_all: bool = False,
    embedder: PhotoEmbedder | None = None,
    index: VectorIndex | None = None,
) -> PersonSearchResult:
    """For each face of ``photo``, the ``k`` most similar persons of one model version."""
    from faceidx.store.persons import PeopleStore, persons_of_faces
    from faceidx.store.vectors import VectorIndex

    if not 1 <= k <= MAX_K:
        raise PhotoSearchError(f"k must be between 1 and {MAX_K}, got {k}")
    index = index or VectorIndex(location)
    version = resolve_model_version(location, index, model_version)
    rows = PeopleStore(location).read("persons", version).to_pylist()
    if not rows:
        raise LookupError(
            f"model version {version} has no persons yet: run face_identities (or `faceidx people "
            "cluster`) first, or search faces without --persons"
        )
    persons = {r["person_id"]: r for r in rows}
    centroids = {pid: np.asarray(r["centroids"], np.float32) for pid, r in persons.items() if r["centroids"]}
    choice = threshold_in_force(location, version, far=far, min_similarity=min_similarity)
    faces, vectors = query_faces(location, photo, version, embedder)
    found = index.search(vectors, model_version=version, k=min(MAX_K, k * FACES_PER_PERSON_SEARCH))
    person_of = persons_of_faces(location, sorted({m.face_id for matches in found for m in matches}))
    by_centroid = centroid_similarities(vectors, centroids)
    out = []
    for position, (face, matches, centroid) in enumerate(zip(faces, found, by_centroid, strict=True)):
        best: dict[str, float] = {}
        for match in matches:
            pid = person_of.get(match.face_id)
            if pid is not None:
                best[pid] = max(best.get(pid, -1.0), float(match.similarity))
        ranked = rank_persons(best, centroid, persons, choice.threshold, k)
        shown = ranked if list_all else [m for m in ranked if m.verdict == SAME_PERSON]
        out.append(
            PersonQueryFace(
                face_index=position,
                bbox=box_of(face.bbox),
                det_score=round(float(face.det_score), 4),
                persons=shown,
                below_threshold=len(ranked) - sum(1 for m in ranked if m.verdict == SAME_PERSON),
            )
        )
    return PersonSearchResult(
        photo=photo,
        model_version=version,
        k=k,
        threshold=choice.threshold,
        far=choice.far,
        threshold_source=choice.source,
        threshold_note=choice.note,
        list_all=list_all,
        faces=out,
    )


PERSON_HEADERS = ("rank", "person", "label", "similarity", "by", "verdict", "faces")


def format_persons(result: PersonSearchResult) -> str:
    """The threshold in force, then one table of persons per face of the photo."""
    pairs: list[tuple[str, Any]] = [
        ("model version", result.model_version),
        ("threshold (cosine)", f"{result.threshold:.4f}"),
        ("at FAR", f"{result.far:.0e}" if result.far is not None else "(set by hand)"),
        ("threshold source", result.threshold_source),
    ]
    if result.threshold_note:
        pairs.append(("note", result.threshold_note))
    blocks = [format_pairs(pairs, title="threshold in force")]
    for face in result.faces:
        box = "(" + ", ".join(f"{v:.0f}" for v in face.bbox) + ")"
        title = f"persons for face {face.face_index} of {result.photo} at {box} (top {result.k})"
        rows = [
            (rank, m.person_id, m.label, f"{m.similarity:.4f}", m.by, m.verdict, m.face_count)
            for rank, m in enumerate(face.persons, start=1)
        ]
        hidden = (
            f"{face.below_threshold} person(s) below the threshold {result.threshold:.4f}: unknown, not "
            "listed (--all lists them)"
            if face.below_threshold and not result.list_all
            else ""
        )
        if not rows:
            blocks.append(f"{title}\n(no person: {hidden or 'nobody is similar enough'})")
            continue
        blocks.append(format_table(PERSON_HEADERS, rows, title=title) + (f"\n{hidden}" if hidden else ""))
    return "\n\n".join(blocks)
