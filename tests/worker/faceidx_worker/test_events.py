"""Every event shape in AWS_NOTES.md, as a table."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from faceidx_worker.events import ImageRef, MessageKind, parse_body
from tests.support.worker_harness import TEST_EVENT_BODY, eventbridge_body, s3_event_body, s3_record, sns_wrap


def removed_record(bucket, key, when, name="ObjectRemoved:Delete"):
    record = s3_record(bucket, key)
    return {**record, "eventName": name, "eventTime": when}


CASES = [
    (
        "one record",
        s3_event_body([s3_record("b", "a/photo.jpg", size=10, etag="e1")]),
        MessageKind.IMAGES,
        [ImageRef("b", "a/photo.jpg", "e1", 10)],
    ),
    (
        "several records, URL-encoded keys",
        s3_event_body([s3_record("b", "my photos/été+1.jpg", size=1), s3_record("c", "x/y z.png")]),
        MessageKind.IMAGES,
        [ImageRef("b", "my photos/été+1.jpg", None, 1), ImageRef("c", "x/y z.png", None, None)],
    ),
    ("test event", TEST_EVENT_BODY, MessageKind.TEST, []),
    ("test event via SNS", sns_wrap(TEST_EVENT_BODY), MessageKind.TEST, []),
    (
        "via SNS",
        sns_wrap(s3_event_body([s3_record("b", "k k.jpg", size=3, etag="e")])),
        MessageKind.IMAGES,
        [ImageRef("b", "k k.jpg", "e", 3)],
    ),
    (
        "EventBridge: keys are not encoded there",
        eventbridge_body("b", "raw key+plus.jpg", size=5, etag="e"),
        MessageKind.IMAGES,
        [ImageRef("b", "raw key+plus.jpg", "e", 5)],
    ),
    (
        "EventBridge other detail-type",
        json.dumps({"detail-type": "Object Restore Completed", "detail": {"bucket": {"name": "b"}}}),
        MessageKind.IGNORED,
        [],
    ),
    (
        "EventBridge Object Deleted: a removal at the event's time",
        json.dumps(
            {
                "detail-type": "Object Deleted",
                "time": "2026-03-04T05:06:07Z",
                "detail": {"bucket": {"name": "b"}, "object": {"key": "raw key.jpg"}},
            }
        ),
        MessageKind.IMAGES,
        [ImageRef("b", "raw key.jpg", removed_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC))],
    ),
    (
        "an ObjectRemoved record: a removal, key decoded, no etag",
        s3_event_body([removed_record("b", "old photo+1.jpg", "2026-03-04T05:06:07.890Z")]),
        MessageKind.IMAGES,
        [ImageRef("b", "old photo+1.jpg", removed_at=datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC))],
    ),
    (
        "a delete marker is a removal too",
        s3_event_body(
            [removed_record("b", "k", "2026-03-04T05:06:07Z", "ObjectRemoved:DeleteMarkerCreated")]
        ),
        MessageKind.IMAGES,
        [ImageRef("b", "k", removed_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC))],
    ),
    (
        "a removal without an eventTime",
        json.dumps({"Records": [{**removed_record("b", "k", ""), "eventTime": None}]}),
        MessageKind.MALFORMED,
        [],
    ),
    (
        "a removal with a bad eventTime",
        s3_event_body([removed_record("b", "k", "yesterday")]),
        MessageKind.MALFORMED,
        [],
    ),
    (
        "only an ObjectRestore record",
        json.dumps({"Records": [{"eventName": "ObjectRestore:Completed", "s3": {}}]}),
        MessageKind.IGNORED,
        [],
    ),
    (
        "quoted eTag",
        s3_event_body([s3_record("b", "k", etag='"abc"')]),
        MessageKind.IMAGES,
        [ImageRef("b", "k", "abc")],
    ),
    ("not JSON", "{oops", MessageKind.MALFORMED, []),
    ("JSON list", "[1, 2]", MessageKind.MALFORMED, []),
    ("unknown object", '{"hello": 1}', MessageKind.MALFORMED, []),
    (
        "record without key",
        json.dumps(
            {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {}}}]}
        ),
        MessageKind.MALFORMED,
        [],
    ),
    ("negative size", s3_event_body([s3_record("b", "k", size=-1)]), MessageKind.MALFORMED, []),
    ("Records not a list", '{"Records": {}}', MessageKind.MALFORMED, []),
    (
        "SNS Message not JSON",
        json.dumps({"Type": "Notification", "Message": "hi"}),
        MessageKind.MALFORMED,
        [],
    ),
    ("SNS in SNS", sns_wrap(sns_wrap(TEST_EVENT_BODY)), MessageKind.MALFORMED, []),
]


@pytest.mark.parametrize(("label", "body", "kind", "images"), CASES, ids=[c[0] for c in CASES])
def test_parse_body(label, body, kind, images):
    parsed = parse_body(body)
    assert parsed.kind is kind, parsed.reason
    assert list(parsed.images) == images
    if kind is MessageKind.MALFORMED:
        assert parsed.reason


def test_mixed_records_keep_the_created_and_removed_ones():
    body = json.dumps(
        {
            "Records": [
                {"eventName": "ObjectRestore:Post"},
                removed_record("b", "gone.jpg", "2026-03-04T05:06:07Z"),
                s3_record("b", "k.jpg"),
            ]
        }
    )
    parsed = parse_body(body)
    assert parsed.kind is MessageKind.IMAGES
    assert parsed.images == (
        ImageRef("b", "gone.jpg", removed_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),
        ImageRef("b", "k.jpg"),
    )
    assert parsed.ignored_records == 1
