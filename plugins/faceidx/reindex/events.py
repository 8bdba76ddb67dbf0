"""SQS messages shaped exactly like S3's own ``ObjectCreated`` notifications. Pure: no AWS, no Airflow.

The worker cannot tell a re-queued image from a fresh upload, which is the point: one parser, one
path. Each message holds one record, so one bad image never shares a message (and its retries and
dead-lettering) with good ones. A top-level ``faceidx`` field, which the worker ignores, records
where the message came from:

.. code-block:: json

    {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                  "eventTime": "2026-11-20T08:15:02.000Z", "eventName": "ObjectCreated:Put",
                  "userIdentity": {"principalId": "faceidx-reindex"},
                  "s3": {"s3SchemaVersion": "1.0", "configurationId": "faceidx-reindex",
                         "bucket": {"name": "photos", "arn": "arn:aws:s3:::photos"},
                         "object": {"key": "uploads/2026-11-20/a+b.jpg", "size": 1234,
                                    "eTag": "9b2cf535f27731c974343645a3985328",
                                    "sequencer": "00000660B0D73EED80"}}}],
     "faceidx": {"origin": "face_reindex", "dag_id": "face_reindex", "run_id": "backfill__..."}}

With the ``model_pack`` Param set, the body also carries ``"model_pack": "<name>"``: the worker indexes
the image with that pack (rows carry its ``model_version``, beside the old version's).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from faceidx.aws.parsing import ListedObject
from faceidx.reindex.selection import normalise_etag

SEND_BATCH_SIZE = 10  # SendMessageBatch takes at most 10 entries
EVENT_NAME = "ObjectCreated:Put"
CONFIGURATION_ID = "faceidx-reindex"


def encode_key(key: str) -> str:
    """URL-encode a key as S3 notifications do (space -> ``+``); the worker decodes with unquote_plus.

    S3 leaves ``/`` as is (moto encodes it as ``%2F``); both decode to the same key.
    """
    return quote_plus(key, safe="/")


def event_time(moment: datetime) -> str:
    """``2026-11-20T08:15:02.000Z``: S3's eventTime format (UTC, milliseconds)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def sequencer(moment: datetime) -> str:
    """An 18-hex-digit, time-ordered sequencer, like S3's: later writes of a key sort higher."""
    return f"{int(moment.timestamp() * 1_000_000):018X}"


def bucket_arn(bucket: str, partition: str = "aws") -> str:
    return f"arn:{partition}:s3:::{bucket}"


def s3_event_record(obj: ListedObject, *, bucket: str, region: str, partition: str = "aws") -> dict[str, Any]:
    """One ``Records[]`` entry for ``obj``; ``eventTime`` is the object's LastModified."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": event_time(obj.last_modified),
        "eventName": EVENT_NAME,
        "userIdentity": {"principalId": CONFIGURATION_ID},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": CONFIGURATION_ID,
            "bucket": {"name": bucket, "arn": bucket_arn(bucket, partition)},
            "object": {
                "key": encode_key(obj.key),
                "size": obj.size,
                "eTag": normalise_etag(obj.etag) or "",
                "sequencer": sequencer(obj.last_modified),
            },
        },
    }


MODEL_PACK_FIELD = "model_pack"  # the body field the worker reads (faceidx_worker.events)


def message_body(record: Mapping[str, Any], origin: Mapping[str, str], model_pack: str | None = None) -> str:
    body: dict[str, Any] = {"Records": [record], "faceidx": dict(origin)}
    if model_pack:
        body[MODEL_PACK_FIELD] = model_pack
    return json.dumps(body, separators=(",", ":"))


def batch_entries(
    objects: Sequence[ListedObject],
    *,
    bucket: str,
    region: str,
    origin: Mapping[str, str],
    partition: str = "aws",
    model_pack: str | None = None,
) -> list[dict[str, str]]:
    """SendMessageBatch entries for at most 10 objects; the entry ``Id`` is the position in ``objects``."""
    if len(objects) > SEND_BATCH_SIZE:
        raise ValueError(f"SendMessageBatch takes at most {SEND_BATCH_SIZE} entries, got {len(objects)}")
    return [
        {
            "Id": str(position),
            "MessageBody": message_body(
                s3_event_record(obj, bucket=bucket, region=region, partition=partition), origin, model_pack
            ),
        }
        for position, obj in enumerate(objects)
    ]
