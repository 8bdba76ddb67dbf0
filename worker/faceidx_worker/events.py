"""Parse SQS message bodies into the images they announce. Pure functions: no AWS, no I/O.

Shapes understood (the S3 event contract in ARCHITECTURE.md):

* S3 event notifications, ``{"Records": [...]}``, one or more records, keys URL-encoded;
* the ``s3:TestEvent`` S3 sends when a notification is configured (deleted without work);
* the same two wrapped in an SNS envelope (``{"Type": "Notification", "Message": "<json>"}``);
* EventBridge ``Object Created`` events (keys not encoded there);
* an S3-shaped body with a top-level ``"model_pack": "<name>"`` (``face_reindex`` stamps it): its
  images are indexed with that pack;
* ``ObjectRemoved:*`` records and EventBridge ``Object Deleted`` events: a *removal* (an
  :class:`ImageRef` with ``removed_at``, the event's time), which becomes a tombstone row.

Anything else is *malformed*: the loop logs it with the message id and leaves it for the dead-letter queue.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_plus


class MessageKind(StrEnum):
    IMAGES = "images"  # one or more images to index, or removals to record as tombstones
    TEST = "test"  # s3:TestEvent: delete without work
    IGNORED = "ignored"  # a well-formed event that asks for no work (e.g. ObjectRestore): delete
    MALFORMED = "malformed"  # cannot be parsed: log and leave for the DLQ


@dataclass(frozen=True)
class ImageRef:
    """One object to index, as the event announced it; with ``removed_at``, one that was removed then."""

    bucket: str
    key: str
    etag: str | None = None
    size: int | None = None
    removed_at: datetime | None = None
    model_pack: str | None = None  # the pack the message asks for; None = the worker's default


@dataclass(frozen=True)
class ParsedMessage:
    kind: MessageKind
    images: tuple[ImageRef, ...] = ()
    reason: str = ""
    ignored_records: int = 0


class MalformedEvent(ValueError):
    """The body is not an event this worker understands."""


def parse_body(body: str) -> ParsedMessage:
    """Classify an SQS body and extract its images. Never raises."""
    try:
        document = json.loads(body)
    except (TypeError, ValueError) as exc:
        return ParsedMessage(MessageKind.MALFORMED, reason=f"body is not JSON: {exc}")
    try:
        return _parse_document(document, depth=0)
    except MalformedEvent as exc:
        return ParsedMessage(MessageKind.MALFORMED, reason=str(exc))


def _parse_document(document: Any, depth: int) -> ParsedMessage:
    if not isinstance(document, dict):
        raise MalformedEvent(f"body is a JSON {type(document).__name__}, not an object")
    if document.get("Event") == "s3:TestEvent":
        return ParsedMessage(MessageKind.TEST, reason="s3:TestEvent")
    if "Records" in document:
        parsed = _parse_s3_records(document["Records"])
        pack = document.get("model_pack")
        if pack is None or parsed.kind is not MessageKind.IMAGES:
            return parsed
        if not isinstance(pack, str) or not pack.strip() or "/" in pack:
            raise MalformedEvent(f"model_pack {pack!r} is not a pack name")
        images = tuple(dataclasses.replace(ref, model_pack=pack.strip()) for ref in parsed.images)
        return dataclasses.replace(parsed, images=images)
    if document.get("Type") == "Notification" and "Message" in document:
        if depth > 0:
            raise MalformedEvent("SNS envelope nested inside another envelope")
        inner = document["Message"]
        if not isinstance(inner, str):
            raise MalformedEvent("SNS Message is not a string")
        try:
            inner_document = json.loads(inner)
        except ValueError as exc:
            raise MalformedEvent(f"SNS Message is not JSON: {exc}") from None
        return _parse_document(inner_document, depth + 1)
    if "detail-type" in document and "detail" in document:
        return _parse_eventbridge(document)
    raise MalformedEvent("not an S3, SNS or EventBridge event (no Records, Message or detail-type)")


def _parse_s3_records(records: Any) -> ParsedMessage:
    if not isinstance(records, list):
        raise MalformedEvent("Records is not a list")
    images: list[ImageRef] = []
    ignored = 0
    for position, record in enumerate(records):
        if not isinstance(record, dict):
            raise MalformedEvent(f"Records[{position}] is not an object")
        event_name = str(record.get("eventName", ""))
        removed = event_name.startswith("ObjectRemoved:")
        if not event_name.startswith("ObjectCreated:") and not removed:
            ignored += 1
            continue
        s3 = record.get("s3")
        if not isinstance(s3, dict):
            raise MalformedEvent(f"Records[{position}] has no s3 object")
        bucket = _dig(s3, ("bucket", "name"), position)
        key = _dig(s3, ("object", "key"), position)
        obj = s3["object"]
        if removed:
            when = _event_time(record.get("eventTime"), position)
            images.append(ImageRef(bucket=bucket, key=unquote_plus(key), removed_at=when))
            continue
        images.append(
            ImageRef(
                bucket=bucket,
                key=unquote_plus(key),
                etag=_etag(obj.get("eTag")),
                size=_size(obj.get("size"), position),
            )
        )
    if images:
        return ParsedMessage(MessageKind.IMAGES, images=tuple(images), ignored_records=ignored)
    return ParsedMessage(
        MessageKind.IGNORED, reason="no ObjectCreated or ObjectRemoved record", ignored_records=ignored
    )


def _parse_eventbridge(document: dict[str, Any]) -> ParsedMessage:
    detail_type = document.get("detail-type")
    detail = document.get("detail")
    if not isinstance(detail, dict):
        raise MalformedEvent("EventBridge detail is not an object")
    if detail_type not in ("Object Created", "Object Deleted"):
        return ParsedMessage(MessageKind.IGNORED, reason=f"EventBridge {detail_type!r} event")
    bucket = _dig(detail, ("bucket", "name"), 0)
    key = _dig(detail, ("object", "key"), 0)
    obj = detail["object"]
    if detail_type == "Object Deleted":
        removal = ImageRef(bucket=bucket, key=key, removed_at=_event_time(document.get("time"), 0))
        return ParsedMessage(MessageKind.IMAGES, images=(removal,))
    return ParsedMessage(
        MessageKind.IMAGES,
        images=(
            ImageRef(bucket=bucket, key=key, etag=_etag(obj.get("etag")), size=_size(obj.get("size"), 0)),
        ),
    )


def _dig(container: dict[str, Any], path: tuple[str, str], position: int) -> str:
    outer = container.get(path[0])
    value = outer.get(path[1]) if isinstance(outer, dict) else None
    if not isinstance(value, str) or not value:
        raise MalformedEvent(f"record {position}: {'.'.join(path)} is missing or not a string")
    return value


def _etag(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value).strip('"')


def _size(value: Any, position: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MalformedEvent(f"record {position}: object size {value!r} is not a number")
    try:
        size = int(value)
    except ValueError:
        raise MalformedEvent(f"record {position}: object size {value!r} is not a number") from None
    if size < 0:
        raise MalformedEvent(f"record {position}: object size {size} is negative")
    return size


def _event_time(value: Any, position: int) -> datetime:
    """An event's ISO 8601 time (``2026-03-04T05:06:07.890Z``) as an aware UTC datetime. A removal
    without one is malformed: its tombstone must say up to when it erases."""
    if not isinstance(value, str) or not value:
        raise MalformedEvent(f"record {position}: a removal without an eventTime")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedEvent(f"record {position}: eventTime {value!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)
