"""Corrections: label, merge, split, move. Each is an append-only event, replayed after every re-cluster.

An event records the faces it is about at the time it was made (not only person ids), so it can be
replayed onto clusters that a re-cluster renumbered: a person named in an event is *resolved* to the
person that holds it now (the same id when the matching kept it, else the person holding most of the
faces recorded with it). Replaying every event in order, after clustering, makes the corrections hard
constraints: a split stays split (cannot-link), a merge stays merged (must-link), a moved face stays
where the user put it, a label stays on its person, and two persons (or a face and a person) a user
kept apart stay apart (a rejected merge or assignment of the review in the Airflow UI).

The one-person-per-image rule holds against corrections too: moving a face into a person that holds
another face of the same image sends that other face back to the buffer (the user's face wins).

Payloads (JSON):

| kind | payload |
| --- | --- |
| label | ``person_id``, ``label`` (null clears it), ``faces`` |
| merge | ``person_id`` (kept), ``other_person_id`` (absorbed), ``faces``, ``other_faces`` |
| split | ``person_id``, ``face_ids`` (leave it), ``new_person_id`` |
| move | ``face_ids``, ``person_id`` (target; null: back to the buffer), ``faces`` |
| keep_apart | ``person_id``, ``faces``; ``other_person_id``, ``other_faces`` or ``face_ids`` (not it) |

``faces`` holds up to :data:`ANCHOR_FACES` face ids of the named person when the event was made.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

ANCHOR_FACES = 64


class EventKind(StrEnum):
    LABEL = "label"
    MERGE = "merge"
    SPLIT = "split"
    MOVE = "move"
    KEEP_APART = "keep_apart"


@dataclass(frozen=True)
class PersonEvent:
    """One correction: a row of the person_events table."""

    kind: EventKind
    payload: dict[str, Any]
    actor: str = "unknown"
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    event_id: str = ""

    def __post_init__(self) -> None:
        if not self.event_id:
            digest = hashlib.sha256(
                f"{self.at.isoformat()}\n{self.kind}\n{json.dumps(self.payload, sort_keys=True)}".encode()
            ).hexdigest()[:20]
            object.__setattr__(self, "event_id", f"e{digest}")

    def row(self, model_version: str) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "model_version": model_version,
            "at": self.at,
            "actor": self.actor,
            "kind": self.kind.value,
            "payload": json.dumps(self.payload, sort_keys=True),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PersonEvent:
        return cls(
            kind=EventKind(row["kind"]),
            payload=json.loads(row["payload"]),
            actor=row["actor"],
            at=row["at"],
            event_id=row["event_id"],
        )


def anchors(mapping: Mapping[str, str | None], person_id: str) -> list[str]:
    """Up to ANCHOR_FACES face ids of a person (sorted: the same call gives the same list)."""
    return sorted(face for face, pid in mapping.items() if pid == person_id)[:ANCHOR_FACES]


@dataclass
class PeopleState:
    """face_id -> person_id (None: waiting) and person_id -> label, as a replay sees them."""

    person_of_face: dict[str, str | None]
    labels: dict[str, str | None]
    image_of_face: dict[str, str]
    corrected: set[str] = field(default_factory=set)  # faces a correction placed
    _members: dict[str, set[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for face, pid in self.person_of_face.items():
            if pid is not None:
                self._members.setdefault(pid, set()).add(face)

    def members(self, person_id: str) -> set[str]:
        return set(self._members.get(person_id, ()))

    def resolve(self, person_id: str | None, faces: list[str]) -> str | None:
        """The person that ``person_id`` (recorded with ``faces``) is now."""
        if person_id is None:
            return None
        if self._members.get(person_id):
            return person_id
        holders = Counter(self.person_of_face.get(face) for face in faces)
        holders.pop(None, None)
        return holders.most_common(1)[0][0] if holders else person_id

    def _set(self, face: str, person_id: str | None) -> None:
        before = self.person_of_face.get(face)
        if before is not None:
            self._members.get(before, set()).discard(face)
        self.person_of_face[face] = person_id
        if person_id is not None:
            self._members.setdefault(person_id, set()).add(face)
        self.corrected.add(face)

    def place(self, face: str, person_id: str | None) -> None:
        """Put one face into a person (or the buffer), keeping one face per image per person."""
        if face not in self.person_of_face:
            return  # erased since, or another model version's face
        if person_id is not None:
            image = self.image_of_face.get(face)
            for other in list(self._members.get(person_id, ())):
                if other != face and image and self.image_of_face.get(other) == image:
                    self._set(other, None)
        self._set(face, person_id)


def apply_event(state: PeopleState, event: PersonEvent) -> None:
    """Apply one correction to ``state`` (in place)."""
    p = event.payload
    if event.kind is EventKind.LABEL:
        target = state.resolve(p["person_id"], p.get("faces", []))
        if target is not None:
            state.labels[target] = p.get("label")
    elif event.kind is EventKind.MERGE:
        target = state.resolve(p["person_id"], p.get("faces", []))
        source = state.resolve(p["other_person_id"], p.get("other_faces", []))
        if target is None or source is None or target == source:
            return
        moving = set(state.members(source)) | set(p.get("other_faces", []))
        for face in sorted(moving):
            state.place(face, target)
        if not state.labels.get(target) and state.labels.get(source):
            state.labels[target] = state.labels[source]
        state.labels.pop(source, None)
    elif event.kind is EventKind.SPLIT:
        new_id = p["new_person_id"]
        for face in p["face_ids"]:
            state.place(face, new_id)
    elif event.kind is EventKind.MOVE:
        target = state.resolve(p.get("person_id"), p.get("faces", []))
        for face in p["face_ids"]:
            state.place(face, target)
    elif event.kind is EventKind.KEEP_APART:
        _keep_apart(state, p)


def _keep_apart(state: PeopleState, p: dict[str, Any]) -> None:
    """Cannot-link: faces kept out of a person go back to the buffer if a re-cluster put them there;
    two persons a re-cluster joined are parted again (the other's faces under its own id, or a stable
    new one when that id is taken)."""
    target = state.resolve(p["person_id"], p.get("faces", []))
    if target is None:
        return
    for face in p.get("face_ids", []):
        if state.person_of_face.get(face) == target:
            state.place(face, None)
    if not p.get("other_person_id"):
        return
    other_faces = list(p.get("other_faces", []))
    source = state.resolve(p["other_person_id"], other_faces)
    if source != target:
        return
    parted = p["other_person_id"]
    if parted == target or state.members(parted):
        parted = split_person_id(p["other_person_id"], other_faces)
    for face in other_faces:
        if state.person_of_face.get(face) == target:
            state.place(face, parted)


def replay(state: PeopleState, events: list[PersonEvent]) -> PeopleState:
    """Every event, oldest first (by time, then id), applied to ``state``."""
    for event in sorted(events, key=lambda e: (e.at, e.event_id)):
        apply_event(state, event)
    return state


def split_person_id(person_id: str, face_ids: list[str]) -> str:
    """The id of the person a split creates: stable for the same split."""
    digest = hashlib.sha256(("\n".join([person_id, *sorted(face_ids)])).encode()).hexdigest()[:15]
    return "p" + digest
