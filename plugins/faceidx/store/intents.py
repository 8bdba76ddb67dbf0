"""Erasure intent records: what an erasure is about to remove, written before it removes anything.

An erasure first captures its target (the face ids, the crop URIs, the images, the embeddings its
verification searches with) and writes that as an **open** intent,
``<output>/table/_faceidx/intents/erasure/<id>.json``. Only then does it delete. A process killed at
any step after that leaves the intent open, and whoever comes next (a rerun of the same erasure, any
other erasure, or the next ``face_table`` ingest) finishes it **from the record**, never by reading the
table again (whose rows may already be gone). Finishing writes the receipt once, named after the
intent, and marks the intent **finished**, dropping the embeddings it kept for the verification.

The face ids of every intent, open or finished, are the index's memory of what was erased: the ingest
drops landing rows with those ids and the people runs never write them back, so nothing comes back.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from faceidx.common.uris import split_s3_uri
from faceidx.store.location import IndexLocation

OPEN = "open"
FINISHED = "finished"


@dataclass
class ErasureIntent:
    id: str
    created_at: str
    target: dict[str, str]
    reason: str
    actor: str
    predicate: str  # the face table rows it deletes
    approver: str = ""  # the user who approved the erasure (face_forget's require_approval)
    person_id: str | None = None
    face_ids: list[str] = field(default_factory=list)
    crop_uris: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    table_rows: dict[str, int] = field(default_factory=dict)  # model version -> rows captured
    embeddings: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # version -> face -> vector
    landing_files: int = 0
    already_deleted: int = 0  # rows an ingest deleted before (ObjectRemoved)
    affected_persons: list[str] = field(default_factory=list)  # persons that lose faces: to refresh
    removed: dict[str, Any] = field(default_factory=dict)  # what each step removed, for the receipt
    resumed: bool = False  # finished by a later process than the one that opened it
    state: str = OPEN
    steps_done: list[str] = field(default_factory=list)
    receipt_uri: str = ""
    finished_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> ErasureIntent:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in document.items() if k in known})

    @property
    def compact_time(self) -> str:
        moment = datetime.fromisoformat(self.created_at)
        return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def new_intent_id() -> str:
    return uuid.uuid4().hex[:12]


def intents_uri(location: IndexLocation) -> str:
    return f"{location.output_uri}/table/_faceidx/intents/erasure"


class ErasureIntents:
    """The intent records of one location (small JSON documents, listed by prefix)."""

    def __init__(self, location: IndexLocation) -> None:
        self.location = location
        self.root = intents_uri(location)

    def uri(self, intent_id: str) -> str:
        return f"{self.root}/{intent_id}.json"

    def save(self, intent: ErasureIntent) -> None:
        self.location.write_json(self.uri(intent.id), intent.to_dict())

    def get(self, intent_id: str) -> ErasureIntent | None:
        document = self.location.read_json(self.uri(intent_id))
        return None if document is None else ErasureIntent.from_dict(document)

    def _uris(self) -> list[str]:
        if self.root.startswith("s3://"):
            parts = split_s3_uri(self.root)
            assert parts is not None
            bucket, prefix = parts[0], parts[1].rstrip("/") + "/"
            client = self.location.s3_client()
            uris = []
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                uris += [
                    f"s3://{bucket}/{o['Key']}"
                    for o in page.get("Contents", [])
                    if o["Key"].endswith(".json")
                ]
            return sorted(uris)
        root = Path(self.root.removeprefix("file://"))
        return sorted(str(p) for p in root.glob("*.json")) if root.exists() else []

    def all(self) -> list[ErasureIntent]:
        intents = []
        for uri in self._uris():
            try:
                document = self.location.read_json(uri)
            except json.JSONDecodeError:  # a write cut short by a kill: the next save replaces it
                continue
            if document is not None:
                intents.append(ErasureIntent.from_dict(document))
        return sorted(intents, key=lambda i: (i.created_at, i.id))

    def open(self) -> list[ErasureIntent]:
        return [i for i in self.all() if i.state == OPEN]

    def erased_face_ids(self) -> set[str]:
        """Every face id an erasure captured, open or finished: never to be written back."""
        return {face for intent in self.all() for face in intent.face_ids}

    def latest_for(self, kind: str, value: str) -> ErasureIntent | None:
        matching = [i for i in self.all() if i.target == {"type": kind, "value": value}]
        return matching[-1] if matching else None
