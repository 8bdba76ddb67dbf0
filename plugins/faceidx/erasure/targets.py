"""What an erasure is about: its target (an image, a face, a person), the face table predicate that
selects the target's rows, and the refusals. Pure, but for the person resolver, which reads the
persons tables."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from faceidx.common.uris import split_s3_uri
from faceidx.store.location import IndexLocation

TARGET_IMAGE = "image"
TARGET_FACE = "face"
TARGET_PERSON = "person"
TARGET_TYPES = (TARGET_IMAGE, TARGET_FACE, TARGET_PERSON)

# person_id -> its face ids (None: no such person). Plugged in by faceidx.people when it exists.
PersonResolver = Callable[[IndexLocation, str], Sequence[str] | None]


class ForgetTargetNotFound(LookupError):
    """Nothing of the target is in the index: nothing was changed and no receipt was written."""


class ForgetUnavailable(LookupError):
    """The target type cannot be resolved yet (a person before identities are built)."""


class ForgetVerificationError(RuntimeError):
    """The erasure ran but the verification found traces; the receipt records them."""


@dataclass(frozen=True)
class ForgetTarget:
    """What to forget: ``image`` (``s3://bucket/key``, every ETag), ``face`` (a face_id) or ``person``."""

    kind: str
    value: str

    def __post_init__(self) -> None:
        if self.kind not in TARGET_TYPES:
            raise ValueError(f"target type {self.kind!r} is not one of {', '.join(TARGET_TYPES)}")
        if not self.value or not self.value.strip():
            raise ValueError(f"a {self.kind} target needs a value")
        if self.kind == TARGET_IMAGE:
            parts = split_s3_uri(self.value)
            if parts is None or not parts[1]:
                raise ValueError(f"an image target is s3://bucket/key, got {self.value!r}")

    @property
    def image(self) -> tuple[str, str]:
        parts = split_s3_uri(self.value)
        assert parts is not None
        return parts

    def describe(self) -> str:
        return f"{self.kind} {self.value}"


def sql_string(value: str) -> str:
    """A SQL string literal (delta-rs predicates)."""
    return "'" + value.replace("'", "''") + "'"


def in_list(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(sql_string(v) for v in sorted(set(values)))})"


def image_predicate(bucket: str, key: str, removed_before: datetime | None = None) -> str:
    predicate = f"image_bucket = {sql_string(bucket)} AND image_key = {sql_string(key)}"
    if removed_before is not None:
        moment = removed_before.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        predicate += f" AND indexed_at <= '{moment}'"
    return predicate


def default_person_resolver(location: IndexLocation, person_id: str) -> Sequence[str] | None:
    """The face ids of a person, from the persons tables (None: no such person)."""
    from faceidx.store.persons import face_ids_of_person

    found = face_ids_of_person(location, person_id)
    return None if found is None else list(found)


def target_predicate(
    location: IndexLocation, target: ForgetTarget, resolver: PersonResolver | None
) -> tuple[str, str | None]:
    """The face table predicate for the target, and the person id when the target is a person."""
    if target.kind == TARGET_IMAGE:
        return image_predicate(*target.image), None
    if target.kind == TARGET_FACE:
        return f"face_id = {sql_string(target.value)}", None
    face_ids = (resolver or default_person_resolver)(location, target.value)
    if face_ids is None:
        raise ForgetTargetNotFound(f"person {target.value} is not known: nothing was forgotten")
    if not face_ids:
        return "face_id IS NULL AND face_id IS NOT NULL", target.value  # matches nothing
    return in_list("face_id", face_ids), target.value
