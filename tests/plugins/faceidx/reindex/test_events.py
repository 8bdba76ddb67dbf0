"""Messages face_reindex sends: the worker's own parser must read them like S3's notifications."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from faceidx.aws.parsing import ListedObject
from faceidx.reindex.events import (
    batch_entries,
    encode_key,
    event_time,
    s3_event_record,
    sequencer,
)
from faceidx_worker.events import MessageKind, parse_body

AT = datetime(2026, 11, 20, 8, 15, 2, 123456, tzinfo=UTC)
ORIGIN = {"origin": "face_reindex", "dag_id": "face_reindex", "run_id": "backfill__2026-11-21T00:00:00+00:00"}

TRICKY_KEYS = [
    "plain.jpg",
    "uploads/2026-11-20/a.jpg",
    "my photo.jpg",
    "a+b.jpg",
    "100% real.png",
    "dir/sub dir/ünïcødé 照片.jpeg",
    "q?x=1&y=2#frag.jpg",
    "tilde~and'quote\".jpg",
    "  leading and trailing  .jpg",
]


def listed(key, etag='"9b2cf535f27731c974343645a3985328"', size=1234):
    return ListedObject(key=key, etag=etag, size=size, last_modified=AT)


@pytest.mark.parametrize("key", TRICKY_KEYS)
def test_the_worker_reads_back_bucket_key_etag_and_size(key):
    (entry,) = batch_entries([listed(key)], bucket="photos", region="eu-west-1", origin=ORIGIN)
    parsed = parse_body(entry["MessageBody"])
    assert parsed.kind == MessageKind.IMAGES
    (image,) = parsed.images
    assert (image.bucket, image.key, image.etag, image.size) == (
        "photos",
        key,
        "9b2cf535f27731c974343645a3985328",
        1234,
    )


@pytest.mark.parametrize(
    ("key", "encoded"),
    [("a b.jpg", "a+b.jpg"), ("a+b.jpg", "a%2Bb.jpg"), ("d/e.jpg", "d/e.jpg"), ("é.jpg", "%C3%A9.jpg")],
)
def test_keys_are_url_encoded_like_s3_does(key, encoded):
    assert encode_key(key) == encoded


def test_record_fields():
    record = s3_event_record(listed("a b.jpg"), bucket="photos", region="cn-north-1", partition="aws-cn")
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["eventSource"] == "aws:s3"
    assert record["eventVersion"] == "2.1"
    assert record["awsRegion"] == "cn-north-1"
    assert record["eventTime"] == "2026-11-20T08:15:02.123Z"
    assert record["s3"]["bucket"] == {"name": "photos", "arn": "arn:aws-cn:s3:::photos"}
    assert record["s3"]["object"]["eTag"] == "9b2cf535f27731c974343645a3985328"  # no quotes, as S3 sends


def test_one_record_per_message_and_the_origin_is_recorded():
    entries = batch_entries(
        [listed(f"{n}.jpg") for n in range(10)], bucket="b", region="us-east-1", origin=ORIGIN
    )
    assert [e["Id"] for e in entries] == [str(n) for n in range(10)]
    for entry in entries:
        body = json.loads(entry["MessageBody"])
        assert len(body["Records"]) == 1
        assert body["faceidx"] == ORIGIN


@pytest.mark.parametrize("pack", [None, "antelopev2"])
def test_a_model_pack_is_carried_in_every_body_and_the_worker_still_reads_it(pack):
    entries = batch_entries(
        [listed(f"{n}.jpg") for n in range(3)], bucket="b", region="us-east-1", origin=ORIGIN, model_pack=pack
    )
    for entry in entries:
        body = json.loads(entry["MessageBody"])
        assert body.get("model_pack") == pack
        assert ("model_pack" in body) is (pack is not None)
        assert parse_body(entry["MessageBody"]).kind == MessageKind.IMAGES


def test_at_most_ten_entries():
    with pytest.raises(ValueError, match="at most 10"):
        batch_entries([listed(f"{n}.jpg") for n in range(11)], bucket="b", region="us-east-1", origin=ORIGIN)


def test_event_time_is_utc_with_milliseconds():
    east = AT.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    assert event_time(east) == "2026-11-20T08:15:02.123Z"


def test_sequencer_orders_later_writes_higher():
    times = [AT + timedelta(microseconds=n) for n in (0, 1, 1000, 10**9)]
    sequences = [sequencer(t) for t in times]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == len(sequences)
    assert all(len(s) == 18 for s in sequences)


def test_same_shape_as_the_notifications_moto_sends(moto):
    """Every field moto's own S3 notification carries is in ours, with the same type."""
    s3, sqs = moto.client("s3"), moto.client("sqs")
    s3.create_bucket(Bucket="photos")
    queue_url = sqs.create_queue(QueueName="events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket="photos",
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    s3.put_object(Bucket="photos", Key="x y.jpg", Body=b"123")
    bodies = [
        json.loads(m["Body"])
        for m in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    ]
    (theirs,) = [b["Records"][0] for b in bodies if "Records" in b]
    (item,) = s3.list_objects_v2(Bucket="photos")["Contents"]
    ours = s3_event_record(ListedObject.from_listing(item), bucket="photos", region="us-east-1")

    def shape(value, path=""):
        if isinstance(value, dict):
            return {p for k, v in value.items() for p in shape(v, f"{path}.{k}")}
        return {(path, type(value).__name__)}

    assert shape(theirs) <= shape(ours)
    # and the worker reads the same image out of both
    images = [parse_body(json.dumps({"Records": [record]})).images for record in (theirs, ours)]
    assert images[0] == images[1]
    assert images[0][0].key == "x y.jpg"
