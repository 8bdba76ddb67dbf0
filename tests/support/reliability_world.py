"""A small moto "world" for the reliability tests: a work queue with its dead-letter queue, an input
bucket, an output location, and readers for what moto holds afterwards.

Queue contents are read from moto's in-process backend, so messages *in flight* (received, not
deleted) are seen too, with their receive counts: "nothing lost" means every announced message is
either still in a queue or has all its images in the index.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceidx_dev.index_query import DEDUP_KEY, deduplicate
from faceidx_worker.events import MessageKind, parse_body
from tests.support.moto_server import ACCOUNT_ID, REGION, MotoEndpoint
from tests.support.worker_harness import read_output_table, s3_event_body, s3_record, worker_env

DET_THRESH = "0.6"  # every asset photo gets its true face count with det_500m at 0.6 (see the worker tests)

# Small real photos from ../shared/assets/images (250-640 px, fast on a CPU) and their true face counts.
PHOTO_FACES = {
    "lfw_Rob_Lowe_0001.jpg": 1,
    "lfw_Rob_Lowe_0002.jpg": 1,
    "lfw_Nathalie_Baye_0002.jpg": 1,
    "obama_small.jpg": 1,
    "image_T1.jpeg": 1,
    "rot_r0.jpg": 1,
    "no_face.png": 0,
}


@dataclass(frozen=True)
class QueuedMessage:
    message_id: str
    body: str
    receive_count: int
    visible: bool


@dataclass
class ReliabilityWorld:
    moto: MotoEndpoint
    sqs: Any
    s3: Any
    name: str
    queue_url: str
    dlq_url: str
    input_bucket: str
    output_bucket: str
    output_prefix: str = "index"
    sent: dict[str, str] = field(default_factory=dict)  # message id -> body

    @property
    def output_uri(self) -> str:
        return f"s3://{self.output_bucket}/{self.output_prefix}"

    # -- input ----------------------------------------------------------------------------------
    def put(self, key: str, data: bytes, bucket: str | None = None) -> dict[str, Any]:
        response = self.s3.put_object(Bucket=bucket or self.input_bucket, Key=key, Body=data)
        return {"size": len(data), "etag": response["ETag"].strip('"')}

    def send(self, body: str) -> str:
        message_id = self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)["MessageId"]
        self.sent[message_id] = body
        return message_id

    def upload_and_announce(self, key: str, data: bytes) -> str:
        """Put ``data`` at ``key`` and send the S3 event for it (with size and ETag, as S3 does)."""
        meta = self.put(key, data)
        return self.send(s3_event_body([s3_record(self.input_bucket, key, **meta)]))

    def env(self, model_dir: Path, endpoint: str | None = None, **extra: Any) -> dict[str, str]:
        """The worker's environment; ``endpoint`` is where its AWS calls go (moto, or a fault proxy)."""
        settings = {"FACEIDX_DET_THRESH": DET_THRESH, **extra}
        return worker_env(
            moto_url=endpoint or self.moto.url,
            queue_url=self.queue_url,
            output_uri=self.output_uri,
            model_dir=model_dir,
            extra={key: str(value) for key, value in settings.items()},
        )

    # -- what moto holds ------------------------------------------------------------------------
    def _backend_queue(self, url: str) -> Any:
        from moto.sqs.models import sqs_backends

        return sqs_backends[ACCOUNT_ID][REGION].get_queue(url.rstrip("/").rsplit("/", 1)[-1])

    def messages(self, dlq: bool = False) -> list[QueuedMessage]:
        """Every message not deleted (visible or in flight), with its receive count."""
        queue = self._backend_queue(self.dlq_url if dlq else self.queue_url)
        with queue._messages_lock:
            return [
                QueuedMessage(m.id, m.body, int(m.approximate_receive_count), bool(m.visible))
                for m in queue._messages
            ]

    def counts(self) -> tuple[int, int]:
        """(visible, in flight) on the work queue."""
        found = self.messages()
        visible = sum(1 for m in found if m.visible)
        return visible, len(found) - visible

    def rows(self) -> list[dict[str, Any]]:
        table, _ = read_output_table(self.s3, self.output_bucket, f"{self.output_prefix}/")
        return [] if table is None else table.to_pylist()

    def parquet_keys(self) -> list[str]:
        _, keys = read_output_table(self.s3, self.output_bucket, f"{self.output_prefix}/")
        return [key for key in keys if key.endswith(".parquet")]


def create_world(
    moto: MotoEndpoint,
    name: str = "rel",
    *,
    visibility_timeout: int = 60,
    max_receive_count: int = 3,
) -> ReliabilityWorld:
    """A work queue ``faceidx-<name>`` with a DLQ, and the input and output buckets, on ``moto``."""
    sqs = moto.client("sqs")
    s3 = moto.client("s3")
    dlq_url = sqs.create_queue(QueueName=f"faceidx-{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=f"faceidx-{name}",
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
            ),
        },
    )["QueueUrl"]
    input_bucket, output_bucket = f"faceidx-{name}-uploads", f"faceidx-{name}-index"
    s3.create_bucket(Bucket=input_bucket)
    s3.create_bucket(Bucket=output_bucket)
    return ReliabilityWorld(moto, sqs, s3, name, queue_url, dlq_url, input_bucket, output_bucket)


def announced_keys(body: str) -> list[tuple[str, str]]:
    """(bucket, key) of every image a message body announces (none for test events, malformed bodies)."""
    parsed = parse_body(body)
    if parsed.kind is not MessageKind.IMAGES:
        return []
    return [(ref.bucket, ref.key) for ref in parsed.images]


def unaccounted_messages(world: ReliabilityWorld, rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Sent image messages that are in no queue and whose images are not all in the index: lost work.

    (An image's row may be an ``error`` row: that is an outcome, not a loss.)
    """
    indexed = {(row["image_bucket"], row["image_key"]) for row in rows}
    queued = {m.message_id for m in world.messages()} | {m.message_id for m in world.messages(dlq=True)}
    lost = []
    for message_id, body in world.sent.items():
        keys = announced_keys(body)
        if keys and message_id not in queued and not set(keys) <= indexed:
            lost.append(f"{message_id}: {sorted(set(keys) - indexed)}")
    return lost


def duplicate_groups(rows: Iterable[Mapping[str, Any]]) -> Counter[tuple[Any, ...]]:
    """How many rows share each dedup key, for the keys written more than once."""
    counts = Counter(tuple(row[name] for name in DEDUP_KEY) for row in rows)
    return Counter({key: count for key, count in counts.items() if count > 1})


def rows_by_key(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Deduplicated rows (the documented rule) grouped by image key, sorted by face index."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in deduplicate(list(rows)):
        grouped.setdefault(row["image_key"], []).append(row)
    for found in grouped.values():
        found.sort(key=lambda row: -1 if row["face_index"] is None else row["face_index"])
    return grouped
