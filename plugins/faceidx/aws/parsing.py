"""AWS answers read into plain data: pure functions and types, no Airflow, no boto3.

The hooks of this package call AWS and hand the answers here; the features read what comes out. (The
Amazon provider keeps its own such readers in its ``utils/``.)

* SQS GetQueueAttributes: the three depth counters (:class:`QueueDepth`), and the dead-letter
  queue's name from a ``RedrivePolicy``;
* SQS SendMessageBatch: which entries went in, which may be retried, which never will
  (:func:`classify_batch_response`);
* S3 ListObjectsV2: one listed object (:class:`ListedObject`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

DEPTH_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


@dataclass(frozen=True)
class QueueDepth:
    """Approximate counts (they lag by up to a minute): backlog, in flight, delayed."""

    visible: int
    in_flight: int
    delayed: int

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueueDepth:
        return cls(int(data["visible"]), int(data["in_flight"]), int(data["delayed"]))


def parse_queue_depth(attributes: dict[str, str]) -> QueueDepth:
    """Read the three approximate counters out of a GetQueueAttributes ``Attributes`` map."""
    missing = [name for name in DEPTH_ATTRIBUTES if name not in attributes]
    if missing:
        raise ValueError(f"GetQueueAttributes answer lacks {', '.join(missing)}: got {sorted(attributes)}")
    return QueueDepth(
        visible=int(attributes["ApproximateNumberOfMessages"]),
        in_flight=int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        delayed=int(attributes["ApproximateNumberOfMessagesDelayed"]),
    )


def dlq_name_from_redrive_policy(redrive_policy: str | None) -> str | None:
    """The DLQ's queue name from a queue's ``RedrivePolicy`` attribute (JSON with deadLetterTargetArn)."""
    if not redrive_policy:
        return None
    arn = json.loads(redrive_policy).get("deadLetterTargetArn", "")
    return arn.rsplit(":", 1)[-1] or None


@dataclass(frozen=True)
class EntryFailure:
    entry_id: str
    code: str
    message: str
    sender_fault: bool


@dataclass(frozen=True)
class BatchOutcome:
    """One SendMessageBatch answer: which entries went in, which may be retried, which never will."""

    succeeded: tuple[str, ...]
    retryable: tuple[EntryFailure, ...]
    permanent: tuple[EntryFailure, ...]


def classify_batch_response(sent_ids: Sequence[str], response: Mapping[str, Any]) -> BatchOutcome:
    """Split a SendMessageBatch response. A sender fault (bad body, bad attribute) never succeeds on
    retry; a server-side failure (throttling, internal error) may. An entry SQS mentions in neither
    list is treated as a retryable failure: better a duplicate than a lost image."""
    succeeded = tuple(str(item["Id"]) for item in response.get("Successful", []))
    retryable: list[EntryFailure] = []
    permanent: list[EntryFailure] = []
    mentioned = set(succeeded)
    for item in response.get("Failed", []):
        failure = EntryFailure(
            entry_id=str(item.get("Id")),
            code=str(item.get("Code", "Unknown")),
            message=str(item.get("Message", "")),
            sender_fault=bool(item.get("SenderFault", False)),
        )
        mentioned.add(failure.entry_id)
        (permanent if failure.sender_fault else retryable).append(failure)
    for entry_id in sent_ids:
        if entry_id not in mentioned:
            retryable.append(
                EntryFailure(entry_id, "NotReported", "SQS reported neither success nor failure", False)
            )
    return BatchOutcome(succeeded, tuple(retryable), tuple(permanent))


@dataclass(frozen=True)
class ListedObject:
    """One object from ListObjectsV2. ``etag`` is kept as S3 lists it (quoted)."""

    key: str
    etag: str
    size: int
    last_modified: datetime
    storage_class: str = "STANDARD"

    @classmethod
    def from_listing(cls, item: Mapping[str, Any]) -> ListedObject:
        return cls(
            key=str(item["Key"]),
            etag=str(item.get("ETag", "")),
            size=int(item.get("Size", 0)),
            last_modified=item["LastModified"],
            storage_class=str(item.get("StorageClass") or "STANDARD"),
        )
