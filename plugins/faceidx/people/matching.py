"""Stable person ids: new clusters matched to the previous persons by the faces they share.

* **Re-cluster** (:func:`match_clusters`): each new cluster takes the id of the previous person it
  shares the most faces with, pairs taken in descending overlap, each id at most once (a greedy
  maximum-overlap matching: on the one-to-one overlaps a re-cluster produces it is what the Hungarian
  method gives, without a persons x persons matrix at 10^5 persons). Clusters that match no one get a
  new id (:func:`new_person_id`, derived from their faces, so a rerun names them the same); previous
  persons left without a cluster were merged into another (or dissolved) and are reported.
* **Model change** (:func:`carry_over`): the faces of one image under two model versions are paired
  (:func:`pair_faces`: same image, boxes overlapping by IoU >= 0.5, else the same face index), the old
  face -> person mapping is translated through the pairs, and the new version's clusters take the old
  ids and labels by the same matching. Labels survive a model change; nobody has to name them again.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


def new_person_id(model_version: str, face_ids: Iterable[str]) -> str:
    """``p`` + 15 hex of sha256(model_version, the smallest face id): stable for the same faces."""
    anchor = min(face_ids)
    return "p" + hashlib.sha256(f"{model_version}\n{anchor}".encode()).hexdigest()[:15]


@dataclass
class Matching:
    """label -> person id, and what the matching did."""

    person_of_label: dict[int, str]
    kept: int = 0  # clusters that kept a previous id
    created: int = 0  # clusters with a new id
    retired: list[str] = field(default_factory=list)  # previous ids no cluster took


def match_clusters(
    labels: Mapping[str, int],
    previous: Mapping[str, str],
    model_version: str,
    reserved: frozenset[str] = frozenset(),
) -> Matching:
    """Ids for the clusters ``labels`` (face_id -> label), reusing ``previous`` (face_id -> person_id).

    ``reserved`` ids (persons a split created: the replay gives them their faces) are not taken.
    """
    overlap: Counter[tuple[int, str]] = Counter()
    members: dict[int, list[str]] = {}
    for face, label in labels.items():
        members.setdefault(label, []).append(face)
        pid = previous.get(face)
        if pid is not None and pid not in reserved:
            overlap[(label, pid)] += 1
    result: dict[int, str] = {}
    taken: set[str] = set()
    # most shared faces first; ties by id so the outcome does not depend on dict order
    for (label, pid), _count in sorted(overlap.items(), key=lambda item: (-item[1], item[0][1], item[0][0])):
        if label in result or pid in taken:
            continue
        result[label] = pid
        taken.add(pid)
    matching = Matching(result, kept=len(result))
    for label in sorted(members):
        if label not in result:
            # derived from the smallest face id: a cluster that lost its previous id to another cluster
            # can derive that very id (the person was first named after the same face), so a taken or
            # reserved id is derived again with a counter, never shared (two persons, one id, would be
            # one person holding two faces of a photo)
            pid, attempt = new_person_id(model_version, members[label]), 0
            while pid in taken or pid in reserved:
                attempt += 1
                pid = new_person_id(f"{model_version}\n{attempt}", members[label])
            result[label] = pid
            taken.add(pid)
            matching.created += 1
    matching.retired = sorted(set(previous.values()) - taken)
    return matching


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class FaceKey:
    """A face as both model versions see it: its image, index and box."""

    face_id: str
    image_id: str
    face_index: int
    bbox: tuple[float, ...] | None = None


def pair_faces(old: Iterable[FaceKey], new: Iterable[FaceKey], min_iou: float = 0.5) -> dict[str, str]:
    """new face_id -> old face_id for the same face of the same image under two model versions."""
    by_image: dict[str, list[FaceKey]] = {}
    for face in old:
        by_image.setdefault(face.image_id, []).append(face)
    pairs: dict[str, str] = {}
    for face in new:
        candidates = by_image.get(face.image_id, [])
        best: FaceKey | None = None
        if face.bbox is not None:
            scored = [(_iou(face.bbox, c.bbox), c) for c in candidates if c.bbox is not None]
            scored = [item for item in scored if item[0] >= min_iou]
            if scored:
                best = max(scored, key=lambda item: item[0])[1]
        if best is None:
            same_index = [c for c in candidates if c.face_index == face.face_index]
            if same_index and (face.bbox is None or same_index[0].bbox is None):
                best = same_index[0]
        if best is not None:
            pairs[face.face_id] = best.face_id
    return pairs


def carry_over(
    labels: Mapping[str, int],
    pairs: Mapping[str, str],
    old_person_of_face: Mapping[str, str],
    old_labels: Mapping[str, str | None],
    model_version: str,
) -> tuple[Matching, dict[str, str | None]]:
    """The new version's cluster ids and labels taken from the old version's persons.

    Returns the matching (label -> person id) and person id -> label for the persons that have one.
    """
    translated = {
        new_face: old_person_of_face[old_face]
        for new_face, old_face in pairs.items()
        if old_face in old_person_of_face
    }
    matching = match_clusters(labels, translated, model_version)
    carried = {pid: old_labels.get(pid) for pid in matching.person_of_label.values() if old_labels.get(pid)}
    return matching, carried
