"""The corrections as actions on the tables: record the event, then apply it to the current persons.

Shared by the ``face_people`` DAG and ``faceidx people``. Each action checks what it names exists,
appends one event to person_events (the source of truth a re-cluster replays) and updates
face_persons and persons at once, so the correction shows before the next re-cluster.
"""

from __future__ import annotations

from typing import Any

from faceidx.people.clustering import ClusterPolicy
from faceidx.people.corrections import (
    EventKind,
    PeopleState,
    PersonEvent,
    anchors,
    apply_event,
    split_person_id,
)
from faceidx.people.identities import mapping_rows, person_rows, read_faces
from faceidx.people.incremental import Outcome
from faceidx.store.location import IndexLocation
from faceidx.store.persons import PeopleStore, sql_string

ACTIONS = ("label", "merge", "split", "move")  # face_people's; keep_apart comes from the review


class CorrectionError(ValueError):
    """A correction that names something unknown or contradicts itself; nothing was recorded."""


def _require_person(mapping: dict[str, str | None], labels: dict[str, Any], person_id: str | None) -> str:
    if not person_id:
        raise CorrectionError("a person_id is required: list them with `faceidx people list`")
    if person_id not in labels and person_id not in set(mapping.values()):
        raise CorrectionError(
            f"person {person_id} is not known in this model version: see `faceidx people list`"
        )
    return person_id


def correct(
    location: IndexLocation,
    model_version: str,
    action: str,
    *,
    person_id: str | None = None,
    other_person_id: str | None = None,
    face_ids: list[str] | None = None,
    label: str | None = None,
    actor: str = "unknown",
    policy: ClusterPolicy | None = None,
) -> PersonEvent:
    """Record and apply one correction; returns the event written."""
    policy = policy or ClusterPolicy()
    store = PeopleStore(location)
    mapping = store.mapping(model_version)
    labels = store.labels(model_version)
    face_ids = list(face_ids or [])
    unknown = [face for face in face_ids if face not in mapping]
    if unknown:
        raise CorrectionError(f"faces not in the persons tables of {model_version}: {', '.join(unknown[:5])}")
    if action == EventKind.LABEL:
        pid = _require_person(mapping, labels, person_id)
        payload: dict[str, Any] = {"person_id": pid, "label": label or None, "faces": anchors(mapping, pid)}
    elif action == EventKind.MERGE:
        pid = _require_person(mapping, labels, person_id)
        other = _require_person(mapping, labels, other_person_id)
        if pid == other:
            raise CorrectionError("merge needs two different persons")
        payload = {
            "person_id": pid,
            "other_person_id": other,
            "faces": anchors(mapping, pid),
            "other_faces": sorted(f for f, p in mapping.items() if p == other),
        }
    elif action == EventKind.SPLIT:
        pid = _require_person(mapping, labels, person_id)
        if not face_ids:
            raise CorrectionError("split needs the face_ids that leave the person")
        outside = [face for face in face_ids if mapping.get(face) != pid]
        if outside:
            raise CorrectionError(f"faces not in person {pid}: {', '.join(outside[:5])}")
        payload = {
            "person_id": pid,
            "face_ids": sorted(face_ids),
            "new_person_id": split_person_id(pid, face_ids),
        }
    elif action == EventKind.MOVE:
        if not face_ids:
            raise CorrectionError("move needs face_ids")
        target = _require_person(mapping, labels, person_id) if person_id else None
        payload = {
            "face_ids": sorted(face_ids),
            "person_id": target,
            "faces": anchors(mapping, target) if target else [],
        }
    elif action == EventKind.KEEP_APART:
        payload = _keep_apart_payload(mapping, labels, person_id, other_person_id, face_ids)
    else:
        raise CorrectionError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
    event = PersonEvent(EventKind(action), payload, actor=actor)
    store.append("person_events", _event_table(event, model_version))
    _apply(store, location, model_version, event, mapping=mapping, labels=labels, policy=policy)
    return event


def _keep_apart_payload(
    mapping: dict[str, str | None],
    labels: dict[str, Any],
    person_id: str | None,
    other_person_id: str | None,
    face_ids: list[str],
) -> dict[str, Any]:
    """A rejected merge (two persons) or a rejected assignment (faces that are not ``person_id``)."""
    pid = _require_person(mapping, labels, person_id)
    payload: dict[str, Any] = {"person_id": pid, "faces": anchors(mapping, pid)}
    if other_person_id:
        other = _require_person(mapping, labels, other_person_id)
        if other == pid:
            raise CorrectionError("keep_apart needs two different persons")
        other_faces = sorted(f for f, p in mapping.items() if p == other)
        return {**payload, "other_person_id": other, "other_faces": other_faces}
    if not face_ids:
        raise CorrectionError("keep_apart needs another person or the face_ids that are not this person")
    return {**payload, "face_ids": sorted(face_ids)}


def _event_table(event: PersonEvent, model_version: str) -> Any:
    import pyarrow as pa

    from faceidx.store.persons import EVENTS_SCHEMA

    return pa.Table.from_pylist([event.row(model_version)], schema=EVENTS_SCHEMA)


def _apply(
    store: PeopleStore,
    location: IndexLocation,
    model_version: str,
    event: PersonEvent,
    *,
    mapping: dict[str, str | None],
    labels: dict[str, str | None],
    policy: ClusterPolicy,
) -> None:
    before = dict(mapping)
    faces = read_faces(location, model_version)
    state = PeopleState(dict(mapping), dict(labels), dict(zip(faces.face_ids, faces.image_ids, strict=True)))
    apply_event(state, event)
    changed = {face for face in state.corrected if before.get(face) != state.person_of_face.get(face)}
    touched = {before.get(f) for f in changed} | {state.person_of_face.get(f) for f in changed}
    touched |= {pid for pid in state.labels if state.labels.get(pid) != labels.get(pid)}
    touched.discard(None)
    if changed:
        methods = {
            face: Outcome.CORRECTED.value if state.person_of_face.get(face) else Outcome.BUFFERED.value
            for face in changed
        }
        store.upsert("face_persons", mapping_rows(faces, state.person_of_face, methods, model_version))
    rows = person_rows(
        faces, state.person_of_face, state.labels, model_version, policy, only={str(t) for t in touched}
    )
    store.upsert("persons", rows)
    emptied = {str(t) for t in touched} - set(rows.column("person_id").to_pylist())
    for pid in sorted(emptied):
        store.delete(
            "persons", f"person_id = {sql_string(pid)} AND model_version = {sql_string(model_version)}"
        )
