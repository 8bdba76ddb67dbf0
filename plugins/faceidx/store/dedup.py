"""The ingest decision, pure: which landing rows enter the table, which table rows leave it.

**One outcome per image and model version.** An outcome is the rows of one delivery of one
``(image_bucket, image_key, image_etag, model_version)``; a delivery is identified by
``(indexed_at, job_id)`` (the worker writes one image's rows in one flush).

* Within a batch the best delivery wins: ``ok`` before ``error``, then the latest ``indexed_at``, then
  the greatest ``job_id``. The other deliveries' rows are duplicates.
* Against the table the outcome already there wins (a re-delivery is a duplicate, so a rerun changes
  nothing), except that an ``error`` outcome is replaced by an ``ok`` one.
* A tombstone (status ``removed``) erases every row of its ``(image_bucket, image_key)`` indexed at or
  before its ``indexed_at``, in every model version, in the batch and in the table; tombstones
  themselves are never stored.

The result is a MERGE source keyed on ``(face_id, model_version, indexed_date)`` with an ``_action``
column (``insert``, ``replace``, ``delete``): one atomic commit applies all of it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from faceidx.store.schema import STATUS_OK, STATUS_REMOVED, table_schema

ACTION = "_action"
INSERT, REPLACE, DELETE = "insert", "replace", "delete"
EXISTING_COLUMNS = [
    "face_id",
    "image_bucket",
    "image_key",
    "image_etag",
    "model_version",
    "indexed_date",
    "indexed_at",
    "status",
]

Outcome = tuple[str, str, str, str]  # bucket, key, etag ("" for none), model_version
RowKey = tuple[str, str, str]  # face_id, model_version, indexed_date


@dataclass(frozen=True)
class Tombstone:
    """An S3 ObjectRemoved event: erase ``bucket/key`` as indexed at or before ``removed_at``."""

    bucket: str
    key: str
    removed_at: datetime
    face_ids: tuple[str, ...] = ()  # the table rows this ingest deleted for it

    def as_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "removed_at": self.removed_at.isoformat(),
            "face_ids": list(self.face_ids),
        }


@dataclass
class MergePlan:
    source: pa.Table
    inserted: int = 0  # rows new to the table
    replaced: int = 0  # rows rewritten in place (same face_id and partition)
    deleted: int = 0  # table rows removed (replaced error outcomes, tombstones)
    duplicates: int = 0  # landing rows dropped: another delivery, or already in the table
    erased_in_batch: int = 0  # landing rows dropped because a tombstone of the batch erases them
    outcomes_upgraded: int = 0  # error outcomes of the table replaced by ok ones
    tombstones: list[Tombstone] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return self.inserted + self.replaced + self.deleted


def tombstones_of(batch: pa.Table) -> dict[tuple[str, str], datetime]:
    """``(bucket, key) -> latest removal time`` of the batch's tombstone rows."""
    removed = batch.filter(pc.equal(batch.column("status"), STATUS_REMOVED))
    latest: dict[tuple[str, str], datetime] = {}
    for bucket, key, when in zip(
        removed.column("image_bucket").to_pylist(),
        removed.column("image_key").to_pylist(),
        removed.column("indexed_at").to_pylist(),
        strict=True,
    ):
        if (bucket, key) not in latest or when > latest[(bucket, key)]:
            latest[(bucket, key)] = when
    return latest


def _outcomes(rows: pa.Table) -> list[Outcome]:
    return list(
        zip(
            rows.column("image_bucket").to_pylist(),
            rows.column("image_key").to_pylist(),
            [etag or "" for etag in rows.column("image_etag").to_pylist()],
            rows.column("model_version").to_pylist(),
            strict=True,
        )
    )


def choose_deliveries(rows: pa.Table, erase: dict[tuple[str, str], datetime]) -> tuple[list[int], int, int]:
    """Positions of the rows kept (one delivery per outcome, one row per face_id), duplicates, erased."""
    outcomes = _outcomes(rows)
    statuses = rows.column("status").to_pylist()
    times = rows.column("indexed_at").to_pylist()
    jobs = rows.column("job_id").to_pylist()
    face_ids = rows.column("face_id").to_pylist()
    best: dict[Outcome, tuple[bool, datetime, str]] = {}
    erased = 0
    for position, outcome in enumerate(outcomes):
        removed_at = erase.get((outcome[0], outcome[1]))
        if removed_at is not None and times[position] <= removed_at:
            erased += 1
            continue
        rank = (statuses[position] == STATUS_OK, times[position], jobs[position])
        if outcome not in best or rank > best[outcome]:
            best[outcome] = rank
    kept: list[int] = []
    seen: set[str] = set()
    for position, outcome in enumerate(outcomes):
        chosen = best.get(outcome)
        if chosen is None or (statuses[position] == STATUS_OK, times[position], jobs[position]) != chosen:
            continue
        if face_ids[position] in seen:
            continue
        seen.add(face_ids[position])
        kept.append(position)
    return kept, len(outcomes) - erased - len(kept), erased


def plan_merge(batch: pa.Table, existing: pa.Table) -> MergePlan:
    """The MERGE source for a validated batch, given the table rows of its images (``EXISTING_COLUMNS``)."""
    erase = tombstones_of(batch)
    rows = batch.filter(pc.not_equal(batch.column("status"), STATUS_REMOVED))
    kept, duplicates, erased = choose_deliveries(rows, erase)
    chosen = rows.take(pa.array(kept, pa.int64()))

    # table rows: erased by a tombstone, or grouped into the outcome they belong to
    deletes: dict[RowKey, None] = {}
    erased_ids: dict[tuple[str, str], list[str]] = defaultdict(list)
    existing_status: dict[Outcome, bool] = {}
    existing_keys: dict[Outcome, list[RowKey]] = defaultdict(list)
    all_existing: set[RowKey] = set()
    ex_outcomes = _outcomes(existing)
    for outcome, face_id, version, day, when, status in zip(
        ex_outcomes,
        existing.column("face_id").to_pylist(),
        existing.column("model_version").to_pylist(),
        existing.column("indexed_date").to_pylist(),
        existing.column("indexed_at").to_pylist(),
        existing.column("status").to_pylist(),
        strict=True,
    ):
        key = (face_id, version, day)
        all_existing.add(key)
        removed_at = erase.get((outcome[0], outcome[1]))
        if removed_at is not None and when <= removed_at:
            deletes[key] = None
            erased_ids[(outcome[0], outcome[1])].append(face_id)
            continue
        existing_keys[outcome].append(key)
        existing_status[outcome] = existing_status.get(outcome, False) or status == STATUS_OK

    plan = MergePlan(source=pa.table({}), duplicates=duplicates, erased_in_batch=erased)
    new_positions: list[int] = []
    new_actions: list[str] = []
    chosen_outcomes = _outcomes(chosen)
    chosen_status = chosen.column("status").to_pylist()
    upgraded: set[Outcome] = set()
    for position, outcome in enumerate(chosen_outcomes):
        if outcome in existing_status:
            if existing_status[outcome] or chosen_status[position] != STATUS_OK:
                plan.duplicates += 1  # the table's outcome stays
                continue
            if outcome not in upgraded:  # error in the table, ok now: its rows go
                upgraded.add(outcome)
                deletes.update(dict.fromkeys(existing_keys[outcome]))
        new_positions.append(position)
    plan.outcomes_upgraded = len(upgraded)
    new_rows = chosen.take(pa.array(new_positions, pa.int64()))
    for key in zip(
        new_rows.column("face_id").to_pylist(),
        new_rows.column("model_version").to_pylist(),
        new_rows.column("indexed_date").to_pylist(),
        strict=True,
    ):
        if key in all_existing:
            deletes.pop(key, None)
            new_actions.append(REPLACE)
        else:
            new_actions.append(INSERT)
    plan.inserted = new_actions.count(INSERT)
    plan.replaced = new_actions.count(REPLACE)
    plan.deleted = len(deletes)
    plan.tombstones = [
        Tombstone(bucket, key, when, tuple(sorted(erased_ids.get((bucket, key), []))))
        for (bucket, key), when in sorted(erase.items())
    ]
    plan.source = _source(new_rows, new_actions, list(deletes))
    return plan


def _source(new_rows: pa.Table, actions: list[str], deletes: list[RowKey]) -> pa.Table:
    schema = pa.schema([target.with_nullable(True) for target in table_schema()])
    schema = schema.append(pa.field(ACTION, pa.string()))
    upserts = new_rows.select(table_schema().names).append_column(ACTION, pa.array(actions, pa.string()))
    upserts = upserts.cast(schema)
    if not deletes:
        return upserts
    columns: dict[str, Any] = {name: pa.nulls(len(deletes), schema.field(name).type) for name in schema.names}
    columns["face_id"] = pa.array([key[0] for key in deletes], pa.string())
    columns["model_version"] = pa.array([key[1] for key in deletes], pa.string())
    columns["indexed_date"] = pa.array([key[2] for key in deletes], pa.string())
    columns[ACTION] = pa.array([DELETE] * len(deletes), pa.string())
    markers = pa.Table.from_pydict(columns, schema=schema)
    return pa.concat_tables([upserts, markers])
