"""Whether labels and corrections survived a re-cluster or a model switch: counted, not assumed.

A correction is a user's decision about faces, so its *effect* can be checked on any later state:

| kind | effect checked after |
| --- | --- |
| label | the person holding most of the labelled person's faces has the label |
| merge | the faces of both persons that were one person are still one person |
| split | the faces split off are one person, and not the person they left |
| move | the faces moved are with the target's faces (or in the buffer when moved there) |

:func:`compare` takes the persons *before* (the state the user left, every correction applied),
the persons *after* (a re-cluster of the same version, or of a new model version) and the events,
and counts what is gone. Across versions, faces are translated through the pairs of
:func:`faceidx.people.identities.face_pairs` (same photo, same face); a face the new model did not
find cannot carry anything, so an effect whose faces are all unpaired counts as lost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from faceidx.people.corrections import EventKind, PersonEvent
from faceidx.store.location import IndexLocation


@dataclass(frozen=True)
class PeopleSnapshot:
    """One model version's face -> person mapping and labels, as read at one moment."""

    model_version: str
    person_of_face: dict[str, str | None]
    labels: dict[str, str]

    def faces_of(self, person_id: str) -> list[str]:
        return sorted(face for face, pid in self.person_of_face.items() if pid == person_id)

    def holder(self, faces: Iterable[str]) -> str | None:
        """The person holding most of ``faces`` (ties: the smallest id)."""
        counts = Counter(p for f in faces if (p := self.person_of_face.get(f)) is not None)
        if not counts:
            return None
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[0][0]


@dataclass
class SurvivalReport:
    """Labels and corrections before, and those whose effect is gone after."""

    before_version: str
    after_version: str
    labels: int = 0
    labels_kept: int = 0
    labels_lost: list[str] = field(default_factory=list)  # the labels
    corrections: int = 0
    corrections_lost: list[str] = field(default_factory=list)  # "<kind> <event id>"
    by_kind: Counter[str] = field(default_factory=Counter)

    @property
    def lost(self) -> int:
        return len(self.labels_lost) + len(self.corrections_lost)

    def line(self) -> str:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.by_kind.items()))
        return (
            f"labels {self.labels} -> {self.labels_kept} ({len(self.labels_lost)} lost), "
            f"corrections {self.corrections} replayed ({len(self.corrections_lost)} lost)"
            + (f" [{kinds}]" if kinds else "")
        )


class _Check:
    """Effects checked on ``after`` for faces named in ``before``'s version."""

    def __init__(self, after: PeopleSnapshot, new_of_old: Mapping[str, str] | None) -> None:
        self.after = after
        self.new_of_old = new_of_old

    def new(self, faces: Iterable[str]) -> list[str]:
        if self.new_of_old is None:
            return [f for f in faces if f in self.after.person_of_face]
        return [self.new_of_old[f] for f in faces if f in self.new_of_old]

    def persons(self, faces: Iterable[str]) -> set[str | None]:
        return {self.after.person_of_face.get(f) for f in self.new(faces)}

    def together(self, faces: Iterable[str]) -> bool:
        found = self.persons(faces)
        return len(found) == 1 and None not in found

    def label_kept(self, faces: list[str], label: str) -> bool:
        holder = self.after.holder(self.new(faces))
        return holder is not None and self.after.labels.get(holder) == label


def _effect_kept(event: PersonEvent, before: PeopleSnapshot, check: _Check) -> bool:
    p = event.payload
    if event.kind is EventKind.LABEL:
        holder = before.holder([*p.get("faces", []), *before.faces_of(p["person_id"])])
        label = before.labels.get(holder) if holder else None
        if holder is None or label is None:
            return True  # cleared or relabelled since: the label check covers the final label
        return check.label_kept(before.faces_of(holder), label)
    if event.kind is EventKind.MERGE:
        group = [*p.get("faces", []), *p.get("other_faces", [])]
        holder = before.holder(group)
        members = [f for f in group if holder is not None and before.person_of_face.get(f) == holder]
        return check.together(members) if members else True
    if event.kind is EventKind.SPLIT:
        split = [f for f in p["face_ids"] if before.person_of_face.get(f) is not None]
        holder = before.holder(split)
        split = [f for f in split if before.person_of_face.get(f) == holder]
        if not split:
            return True  # moved on by a later correction
        rest = (
            [f for f in before.faces_of(p["person_id"]) if f not in split] if holder != p["person_id"] else []
        )
        return check.together(split) and not (check.persons(split) & check.persons(rest))
    if event.kind is EventKind.MOVE:
        if p.get("person_id") is None:
            waiting = [
                f for f in p["face_ids"] if f in before.person_of_face and before.person_of_face[f] is None
            ]
            return bool(check.new(waiting)) and check.persons(waiting) == {None} if waiting else True
        holder = before.holder(p["face_ids"])
        if holder is None:
            return True
        moved = [f for f in p["face_ids"] if before.person_of_face.get(f) == holder]
        anchors = [f for f in p.get("faces", []) if before.person_of_face.get(f) == holder]
        return check.together([*moved, *anchors])
    return True


def compare(
    before: PeopleSnapshot,
    after: PeopleSnapshot,
    events: list[PersonEvent],
    new_of_old: Mapping[str, str] | None = None,
) -> SurvivalReport:
    """Labels and correction effects of ``before`` that ``after`` lost.

    ``new_of_old`` translates ``before``'s face ids to ``after``'s (a model switch); None: the same
    version, the same face ids.
    """
    report = SurvivalReport(before.model_version, after.model_version)
    check = _Check(after, new_of_old)
    for person, label in sorted(before.labels.items()):
        faces = before.faces_of(person)
        if not faces:
            continue  # a label on a person with no face: nothing to carry
        report.labels += 1
        if check.label_kept(faces, label):
            report.labels_kept += 1
        else:
            report.labels_lost.append(label)
    for event in sorted(events, key=lambda e: (e.at, e.event_id)):
        report.corrections += 1
        report.by_kind[event.kind.value] += 1
        if not _effect_kept(event, before, check):
            report.corrections_lost.append(f"{event.kind.value} {event.event_id}")
    return report


def snapshot(location: IndexLocation, model_version: str) -> PeopleSnapshot:
    """The persons tables of one version as they are now."""
    from faceidx.store.persons import PeopleStore

    store = PeopleStore(location)
    labels = {pid: label for pid, label in store.labels(model_version).items() if label}
    return PeopleSnapshot(model_version, store.mapping(model_version), labels)


def survival(location: IndexLocation, before: PeopleSnapshot, after_version: str) -> SurvivalReport:
    """:func:`compare` of ``before`` with ``after_version``'s persons now, over ``before``'s events."""
    from faceidx.people.identities import events, face_pairs
    from faceidx.store.persons import PeopleStore

    history = events(PeopleStore(location), before.model_version)
    new_of_old = None
    if after_version != before.model_version:
        pairs = face_pairs(location, before.model_version, after_version)
        new_of_old = {old: new for new, old in pairs.items()}
    return compare(before, snapshot(location, after_version), history, new_of_old)
