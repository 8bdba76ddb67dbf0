"""Identity runs over the tables: the incremental run, the full re-cluster, the corrections.

The face table gives the faces (``faceidx.store.table.FaceTable``); :mod:`faceidx.store.persons` keeps
persons, the face -> person mapping (with the buffer) and the correction events. The algorithms are
the pure modules beside this one; this module reads, decides through them, and writes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from faceidx.people.clustering import ClusterPolicy, as_unit, cluster_faces, encode
from faceidx.people.corrections import EventKind, PeopleState, PersonEvent, replay
from faceidx.people.incremental import (
    WAITING,
    Outcome,
    PersonIndex,
    assign_faces,
    person_centroids,
    promote_buffer,
)
from faceidx.people.matching import FaceKey, match_clusters, new_person_id, pair_faces
from faceidx.store.location import IndexLocation
from faceidx.store.persons import PeopleStore, now, sql_string

FACE_COLUMNS = ["face_id", "image_id", "embedding", "quality_passed", "quality_reasons"]


@dataclass
class Faces:
    face_ids: list[str]
    image_ids: list[str]
    embeddings: np.ndarray
    passed: np.ndarray
    reasons: list[list[str]]

    def __len__(self) -> int:
        return len(self.face_ids)

    def take(self, rows: np.ndarray | list[int]) -> Faces:
        rows = np.asarray(rows, dtype=np.int64)
        return Faces(
            [self.face_ids[i] for i in rows],
            [self.image_ids[i] for i in rows],
            self.embeddings[rows] if len(rows) else self.embeddings[:0],
            self.passed[rows],
            [self.reasons[i] for i in rows],
        )

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Faces:
        n = table.num_rows
        column = table.column("embedding").combine_chunks() if n else None
        if n and column is not None:
            flat = column.flatten().to_numpy(zero_copy_only=False)
            embeddings = flat.reshape(n, -1).astype(np.float32)
        else:
            embeddings = np.zeros((0, 1), np.float32)
        names = table.column_names
        passed = (
            np.array([v is not False for v in table.column("quality_passed").to_pylist()], dtype=bool)
            if "quality_passed" in names
            else np.ones(n, dtype=bool)
        )
        reasons = table.column("quality_reasons").to_pylist() if "quality_reasons" in names else [[]] * n
        return cls(
            table.column("face_id").to_pylist(),
            table.column("image_id").to_pylist(),
            embeddings,
            passed,
            [list(r or []) for r in reasons],
        )


def read_faces(location: IndexLocation, model_version: str, filter: str | None = None) -> Faces:
    """The faces (face rows, not image-level rows) of one model version in the face table."""
    from faceidx.store.table import FaceTable

    table = FaceTable.open(location)
    names = set(table.read(model_version, filter="1 = 0").column_names)
    columns = [c for c in FACE_COLUMNS if c in names]
    condition = "face_index IS NOT NULL AND embedding IS NOT NULL"
    rows = table.read(
        model_version, columns=columns, filter=f"{condition} AND ({filter})" if filter else condition
    )
    from faceidx.store.intents import ErasureIntents

    erased = ErasureIntents(location).erased_face_ids()
    if erased and rows.num_rows:  # an erasure in progress (its intent open): never assign its faces
        import pyarrow.compute as pc

        rows = rows.filter(pc.invert(pc.is_in(rows.column("face_id"), pa.array(sorted(erased), pa.string()))))
    return Faces.from_arrow(rows)


@dataclass
class RunReport:
    """What one identities run did: logged as a table by the DAG and the CLI."""

    model_version: str
    mode: str  # incremental | full re-cluster | correction
    faces_seen: int = 0
    passed: int = 0
    gated: Counter[str] = field(default_factory=Counter)
    assigned: int = 0
    buffered: int = 0
    new_persons: int = 0
    persons: int = 0
    merges_proposed: int = 0
    retired: int = 0
    corrections_replayed: int = 0
    seconds: float = 0.0

    def pairs(self) -> list[tuple[str, Any]]:
        rows: list[tuple[str, Any]] = [
            ("model version", self.model_version),
            ("mode", self.mode),
            ("faces seen", self.faces_seen),
            ("passed the quality gate", self.passed),
        ]
        rows += [(f"gated: {reason}", count) for reason, count in sorted(self.gated.items())]
        rows += [
            ("assigned to a person", self.assigned),
            ("buffered (waiting)", self.buffered),
            ("new persons", self.new_persons),
            ("persons now", self.persons),
            ("merges proposed", self.merges_proposed),
            ("persons retired (merged away)", self.retired),
            ("corrections replayed", self.corrections_replayed),
            ("seconds", round(self.seconds, 2)),
        ]
        return rows


def person_rows(
    faces: Faces,
    person_of_face: dict[str, str | None],
    labels: dict[str, str | None],
    model_version: str,
    policy: ClusterPolicy,
    *,
    only: set[str] | None = None,
) -> pa.Table:
    """persons rows (centroids, count, representative, label) computed from the faces they hold."""
    position = {face: i for i, face in enumerate(faces.face_ids)}
    members: dict[str, list[int]] = {}
    for face, pid in person_of_face.items():
        if pid is not None and face in position and (only is None or pid in only):
            members.setdefault(pid, []).append(position[face])
    stamp = now()
    rows = []
    x = as_unit(faces.embeddings) if len(faces) else faces.embeddings
    for pid in sorted(members):
        rows_of = np.asarray(sorted(members[pid]))
        centroids = person_centroids(x[rows_of], policy)
        representative = faces.face_ids[int(rows_of[np.argmax(x[rows_of] @ centroids[0])])]
        rows.append(
            {
                "person_id": pid,
                "model_version": model_version,
                "centroids": centroids.tolist(),
                "face_count": len(rows_of),
                "representative_face_id": representative,
                "label": labels.get(pid),
                "updated_at": stamp,
            }
        )
    from faceidx.store.persons import PERSONS_SCHEMA

    return pa.Table.from_pylist(rows, schema=PERSONS_SCHEMA)


def mapping_rows(
    faces: Faces,
    person_of_face: dict[str, str | None],
    methods: dict[str, str],
    model_version: str,
    similarity: dict[str, float] | None = None,
) -> pa.Table:
    from faceidx.store.persons import FACE_PERSONS_SCHEMA

    stamp = now()
    similarity = similarity or {}
    rows = [
        {
            "face_id": face,
            "image_id": faces.image_ids[i],
            "person_id": person_of_face.get(face),
            "model_version": model_version,
            "assigned_at": stamp,
            "method": methods.get(face, Outcome.BUFFERED.value),
            "similarity": similarity.get(face),
        }
        for i, face in enumerate(faces.face_ids)
        if face in methods
    ]
    return pa.Table.from_pylist(rows, schema=FACE_PERSONS_SCHEMA)


def _gate(faces: Faces, report: RunReport, methods: dict[str, str]) -> np.ndarray:
    report.faces_seen += len(faces)
    report.passed += int(faces.passed.sum())
    for i in np.flatnonzero(~faces.passed):
        methods[faces.face_ids[i]] = Outcome.GATED.value
        for reason in faces.reasons[i] or ["UNSPECIFIED"]:
            report.gated[reason] += 1
    return np.flatnonzero(faces.passed)


def _persons_index(store: PeopleStore, model_version: str) -> PersonIndex | None:
    persons = store.read("persons", model_version)
    if persons.num_rows == 0:
        return None
    centroids = {
        row["person_id"]: np.asarray(row["centroids"], dtype=np.float32)
        for row in persons.select(["person_id", "centroids"]).to_pylist()
        if row["centroids"]
    }
    return PersonIndex.from_centroids(centroids) if centroids else None


def _proposals(index: PersonIndex | None, new: set[str], policy: ClusterPolicy) -> int:
    """Pairs of persons (one of them new or grown) whose centroids reach ``merge_proposal``."""
    if index is None or not new:
        return 0
    rows = [i for i, owner in enumerate(index.owner) if index.person_ids[owner] in new]
    if not rows:
        return 0
    sims = index.centroids[rows] @ index.centroids.T
    pairs = set()
    for r, row in zip(rows, sims, strict=True):
        for j in np.flatnonzero(row >= policy.merge_proposal):
            a, b = index.person_ids[index.owner[r]], index.person_ids[index.owner[j]]
            if a != b:
                pairs.add(tuple(sorted((a, b))))
    return len(pairs)


def run_incremental(location: IndexLocation, model_version: str, policy: ClusterPolicy) -> RunReport:
    """New faces (no face_persons row yet) and the buffer: assign, buffer, promote; write the result."""
    started = time.perf_counter()
    store = PeopleStore(location)
    report = RunReport(model_version, "incremental")
    mapping_table = store.read("face_persons", model_version)
    seen = dict(
        zip(
            mapping_table.column("face_id").to_pylist(),
            mapping_table.column("method").to_pylist(),
            strict=True,
        )
    )
    waiting_ids = [face for face, method in seen.items() if method in {o.value for o in WAITING}]
    everything = read_faces(location, model_version)
    fresh_rows = [i for i, face in enumerate(everything.face_ids) if face not in seen]
    waiting_set = set(waiting_ids)
    buffer_rows = [i for i, face in enumerate(everything.face_ids) if face in waiting_set]
    fresh = everything.take(fresh_rows)
    methods: dict[str, str] = {}
    passing = fresh.take(_gate(fresh, report, methods))
    index = _persons_index(store, model_version)
    person_of_face: dict[str, str | None] = {}
    similarity: dict[str, float] = {}
    taken = {
        (row["person_id"], row["image_id"])
        for row in mapping_table.select(["person_id", "image_id"]).to_pylist()
        if row["person_id"] is not None
    }
    if index is not None and len(passing):
        result = assign_faces(passing.embeddings, passing.image_ids, index, policy, taken=taken)
        for i, face in enumerate(passing.face_ids):
            person_of_face[face] = result.person_ids[i]
            methods[face] = result.outcomes[i].value
            similarity[face] = float(result.similarity[i])
    else:
        for face in passing.face_ids:
            methods[face] = Outcome.BUFFERED.value
    report.assigned = sum(1 for m in methods.values() if m == Outcome.ASSIGNED.value)
    # the buffer: earlier waiting faces plus this run's unmatched ones
    earlier = everything.take(buffer_rows)
    unmatched = [i for i, face in enumerate(passing.face_ids) if person_of_face.get(face) is None]
    pool = _concat(earlier, passing.take(unmatched))
    for face in pool.face_ids:
        methods.setdefault(face, seen.get(face) or Outcome.BUFFERED.value)
    promoted = promote_buffer(
        pool.embeddings,
        pool.image_ids,
        policy,
        lambda members: new_person_id(model_version, [pool.face_ids[m] for m in members]),
    )
    new_persons = {pid for pid in promoted if pid is not None}
    for face, pid in zip(pool.face_ids, promoted, strict=True):
        if pid is not None:
            person_of_face[face] = pid
            methods[face] = Outcome.PROMOTED.value
    report.new_persons = len(new_persons)
    report.buffered = sum(1 for face in pool.face_ids if person_of_face.get(face) is None)
    # persons touched: recompute their centroids from all their faces
    touched = {pid for pid in person_of_face.values() if pid is not None}
    full_map: dict[str, str | None] = {
        row["face_id"]: row["person_id"] for row in mapping_table.select(["face_id", "person_id"]).to_pylist()
    }
    full_map.update(person_of_face)
    labels = store.labels(model_version)
    written = _concat(fresh, earlier)  # each face once: the new ones and the earlier buffer
    store.upsert("face_persons", mapping_rows(written, full_map, methods, model_version, similarity))
    if touched:
        store.upsert(
            "persons", person_rows(everything, full_map, labels, model_version, policy, only=touched)
        )
    index = _persons_index(store, model_version)
    report.persons = len(index.person_ids) if index else 0
    report.merges_proposed = _proposals(index, touched, policy)
    report.seconds = time.perf_counter() - started
    return report


def _concat(a: Faces, b: Faces) -> Faces:
    if not len(a):
        return b
    if not len(b):
        return a
    return Faces(
        a.face_ids + b.face_ids,
        a.image_ids + b.image_ids,
        np.concatenate([a.embeddings, b.embeddings]),
        np.concatenate([a.passed, b.passed]),
        a.reasons + b.reasons,
    )


def events(store: PeopleStore, model_version: str) -> list[PersonEvent]:
    return [PersonEvent.from_row(row) for row in store.read("person_events", model_version).to_pylist()]


def voting_mapping(store: PeopleStore, model_version: str) -> dict[str, str]:
    """face -> person of the faces that vote in a re-cluster's id matching: every placed face but those
    a correction placed (method ``corrected``). The replay puts those back; were they to vote, a face
    moved into person B would pull B's id onto the cluster of the face's own look-alikes (a tie broken
    by id order), and B's label and corrections would follow the wrong faces."""
    rows = store.read("face_persons", model_version).select(["face_id", "person_id", "method"]).to_pylist()
    return {
        row["face_id"]: row["person_id"]
        for row in rows
        if row["person_id"] is not None and row["method"] != Outcome.CORRECTED.value
    }


def face_pairs(location: IndexLocation, old_version: str, new_version: str) -> dict[str, str]:
    """new face_id -> old face_id: the faces both versions found in the same photo
    (:func:`faceidx.people.matching.pair_faces`)."""
    from faceidx.store.table import FaceTable

    table = FaceTable.open(location)
    columns = ["face_id", "image_id", "face_index", "bbox"]
    where = "face_index IS NOT NULL"
    keys = {
        version: [
            FaceKey(
                r["face_id"], r["image_id"], int(r["face_index"]), tuple(r["bbox"]) if r["bbox"] else None
            )
            for r in table.read(version, columns=columns, filter=where).to_pylist()
        ]
        for version in (old_version, new_version)
    }
    return pair_faces(keys[old_version], keys[new_version])


def carried_mapping(
    location: IndexLocation, old_version: str, new_version: str, pairs: dict[str, str] | None = None
) -> tuple[dict[str, str], dict[str, str | None]]:
    """The old version's face -> person mapping translated to the new version's faces (same photo,
    same face: :func:`face_pairs`), and the old labels."""
    store = PeopleStore(location)
    old_mapping = voting_mapping(store, old_version)
    if pairs is None:
        pairs = face_pairs(location, old_version, new_version)
    translated = {new: old_mapping[old] for new, old in pairs.items() if old in old_mapping}
    return translated, store.labels(old_version)


# payload keys that hold face ids, per correction kind
_FACE_LISTS = {
    EventKind.LABEL: ("faces",),
    EventKind.MERGE: ("faces", "other_faces"),
    EventKind.SPLIT: ("face_ids",),
    EventKind.MOVE: ("face_ids", "faces"),
    EventKind.KEEP_APART: ("faces", "other_faces", "face_ids"),
}


def translate_event(event: PersonEvent, new_of_old: Mapping[str, str]) -> PersonEvent:
    """``event`` with its face ids replaced by the other version's (faces without a pair dropped);
    person ids, time, actor and event id are kept, so carrying an event twice writes it once."""
    payload = dict(event.payload)
    for key in _FACE_LISTS[event.kind]:
        payload[key] = sorted(new_of_old[f] for f in payload.get(key) or [] if f in new_of_old)
    return PersonEvent(event.kind, payload, actor=event.actor, at=event.at, event_id=event.event_id)


def carried_events(
    store: PeopleStore, old_version: str, pairs: Mapping[str, str], known: set[str]
) -> list[PersonEvent]:
    """The old version's corrections (those not in ``known`` yet), translated to the new version's faces."""
    new_of_old = {old: new for new, old in pairs.items()}
    return [translate_event(e, new_of_old) for e in events(store, old_version) if e.event_id not in known]


def run_recluster(
    location: IndexLocation, model_version: str, policy: ClusterPolicy, carry_from: str | None = None
) -> RunReport:
    """Every face of the version clustered again; ids kept by overlap; corrections replayed.

    With ``carry_from`` (another model version), ids and labels come from that version's persons
    through the faces both versions found in the same photos.
    """
    started = time.perf_counter()
    store = PeopleStore(location)
    report = RunReport(model_version, "full re-cluster")
    faces = read_faces(location, model_version)
    methods: dict[str, str] = {}
    passing_rows = _gate(faces, report, methods)
    passing = faces.take(passing_rows)
    labels = (
        cluster_faces(passing.embeddings, encode(passing.image_ids), policy)
        if len(passing)
        else np.zeros(0, np.int64)
    )
    by_face = {face: int(label) for face, label in zip(passing.face_ids, labels, strict=True) if label >= 0}
    previous = voting_mapping(store, model_version)
    old_labels = store.labels(model_version)
    history = events(store, model_version)
    if carry_from:
        pairs = face_pairs(location, carry_from, model_version)
        previous, carried_labels = carried_mapping(location, carry_from, model_version, pairs)
        old_labels = {**carried_labels, **{pid: label for pid, label in old_labels.items() if label}}
        report.mode = f"full re-cluster, ids, labels and corrections from {carry_from}"
        # the old version's corrections become this version's: replayed now and by every later
        # re-cluster (without them a split, merge or move made under the old model is undone)
        carried = carried_events(store, carry_from, pairs, {e.event_id for e in history})
        if carried:
            from faceidx.store.persons import EVENTS_SCHEMA

            rows = [e.row(model_version) for e in carried]
            store.upsert("person_events", pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA))
            history += carried
    reserved = frozenset(e.payload["new_person_id"] for e in history if e.kind is EventKind.SPLIT)
    matching = match_clusters(by_face, previous, model_version, reserved)
    person_of_face: dict[str, str | None] = {face: None for face in faces.face_ids}
    for face, label in by_face.items():
        person_of_face[face] = matching.person_of_label[label]
    for face in passing.face_ids:
        methods[face] = Outcome.CLUSTERED.value if face in by_face else Outcome.BUFFERED.value
    for i in np.flatnonzero(~faces.passed):
        person_of_face[faces.face_ids[i]] = None
    state = PeopleState(
        person_of_face,
        {pid: label for pid, label in old_labels.items() if label},
        dict(zip(faces.face_ids, faces.image_ids, strict=True)),
    )
    replay(state, history)
    for face in state.corrected:
        methods[face] = Outcome.CORRECTED.value if state.person_of_face.get(face) else Outcome.BUFFERED.value
    store.replace_version(
        "face_persons", model_version, mapping_rows(faces, state.person_of_face, methods, model_version)
    )
    persons = person_rows(faces, state.person_of_face, state.labels, model_version, policy)
    store.replace_version("persons", model_version, persons)
    report.persons = persons.num_rows
    report.new_persons = matching.created
    report.retired = len(matching.retired)
    report.assigned = sum(1 for pid in state.person_of_face.values() if pid is not None)
    report.buffered = sum(1 for face in passing.face_ids if state.person_of_face.get(face) is None)
    report.corrections_replayed = len(history)
    report.merges_proposed = _proposals(
        _persons_index(store, model_version), set(persons.column("person_id").to_pylist()), policy
    )
    report.seconds = time.perf_counter() - started
    return report


def person_filter(person_id: str) -> str:
    return f"person_id = {sql_string(person_id)}"


def refresh_persons(
    location: IndexLocation,
    model_version: str,
    person_ids: Sequence[str],
    policy: ClusterPolicy | None = None,
) -> int:
    """Recompute the persons rows of ``person_ids`` from the faces they still hold (after an erasure
    took some away); a person left with no face is removed. Returns the persons rewritten or removed."""
    if not person_ids:
        return 0
    store = PeopleStore(location)
    wanted = sorted(set(person_ids))
    members = store.read(
        "face_persons",
        model_version,
        filter=f"person_id IN ({', '.join(sql_string(p) for p in wanted)})",
    )
    person_of_face: dict[str, str | None] = {
        row["face_id"]: row["person_id"] for row in members.select(["face_id", "person_id"]).to_pylist()
    }
    keeping = {pid for pid in person_of_face.values() if pid}
    changed = 0
    if person_of_face:
        faces = read_faces(
            location,
            model_version,
            filter=f"face_id IN ({', '.join(sql_string(f) for f in sorted(person_of_face))})",
        )
        rows = person_rows(
            faces,
            person_of_face,
            store.labels(model_version),
            model_version,
            policy or ClusterPolicy(),
            only=keeping,
        )
        store.upsert("persons", rows)
        changed += rows.num_rows
    gone = [pid for pid in wanted if pid not in keeping]
    if gone:
        changed += store.delete(
            "persons",
            f"model_version = {sql_string(model_version)} AND "
            f"person_id IN ({', '.join(sql_string(p) for p in gone)})",
        )
    return changed
