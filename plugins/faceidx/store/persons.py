"""The persons tables (Delta Lake, partitioned by ``model_version``), beside the face table.

* **persons** (``IndexLocation.persons_uri``), one row per person: person_id, model_version,
  centroids (list of unit vectors), face_count, representative_face_id, label, updated_at.
* **face_persons** (``IndexLocation.face_persons_uri``), one row per face seen: face_id, image_id,
  person_id (null: waiting in the buffer, or gated), model_version, assigned_at, method, similarity.
* **person_events** (``IndexLocation.person_events_uri``), one row per correction: event_id,
  model_version, at, actor, kind, payload (JSON).

A face that has a face_persons row has been seen: the incremental run reads only faces without one,
plus the buffer (``method`` buffered / ambiguous / image_conflict). Gated faces keep their row with a
null person and are not read again. person_events is append-only; a full re-cluster replays it.

Every write is retried on a commit conflict, and every read or write on a file vacuumed under it
(:mod:`faceidx.store.retry`); each attempt opens the table again at its latest version.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from faceidx.store.location import IndexLocation
from faceidx.store.retry import retrying

PERSONS_SCHEMA = pa.schema(
    [
        pa.field("person_id", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("centroids", pa.list_(pa.list_(pa.float32()))),
        pa.field("face_count", pa.int64()),
        pa.field("representative_face_id", pa.string()),
        pa.field("label", pa.string()),
        pa.field("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)
FACE_PERSONS_SCHEMA = pa.schema(
    [
        pa.field("face_id", pa.string(), nullable=False),
        pa.field("image_id", pa.string()),
        pa.field("person_id", pa.string()),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("assigned_at", pa.timestamp("us", tz="UTC")),
        pa.field("method", pa.string()),
        pa.field("similarity", pa.float32()),
    ]
)
EVENTS_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("at", pa.timestamp("us", tz="UTC")),
        pa.field("actor", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("payload", pa.string()),
    ]
)
PARTITION = ["model_version"]
KEYS = {"persons": ("person_id",), "face_persons": ("face_id",), "person_events": ("event_id",)}
SCHEMAS = {"persons": PERSONS_SCHEMA, "face_persons": FACE_PERSONS_SCHEMA, "person_events": EVENTS_SCHEMA}


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def now() -> datetime:
    return datetime.now(UTC)


class PeopleStore:
    """Read and write the three persons tables of one location."""

    def __init__(self, location: IndexLocation) -> None:
        self.location = location

    def uri(self, name: str) -> str:
        return {
            "persons": self.location.persons_uri,
            "face_persons": self.location.face_persons_uri,
            "person_events": self.location.person_events_uri,
        }[name]

    def _table(self, name: str) -> Any | None:
        from deltalake import DeltaTable

        options = self.location.storage_options()
        if not DeltaTable.is_deltatable(self.uri(name), storage_options=options):
            return None
        return DeltaTable(self.uri(name), storage_options=options)

    def read(self, name: str, model_version: str | None = None, filter: str | None = None) -> pa.Table:
        """Rows of one table (empty with its schema before the first write)."""
        result: pa.Table = retrying(
            f"a read of {self.uri(name)}", lambda: self._read(name, model_version, filter)
        )
        return result

    def _read(self, name: str, model_version: str | None, filter: str | None) -> pa.Table:
        table = self._table(name)
        if table is None:
            return SCHEMAS[name].empty_table()
        conditions = []
        if model_version is not None:
            conditions.append(f"model_version = {sql_string(model_version)}")
        if filter:
            conditions.append(filter)
        from deltalake import QueryBuilder

        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        result = pa.table(QueryBuilder().register("t", table).execute(f"SELECT * FROM t{where}"))  # noqa: S608 values quoted by sql_string
        if result.num_rows == 0:
            return SCHEMAS[name].empty_table()
        return result.select(SCHEMAS[name].names).cast(SCHEMAS[name])

    def upsert(self, name: str, rows: pa.Table) -> None:
        """Insert or replace rows by their key within their model version."""

        rows = rows.select(SCHEMAS[name].names).cast(SCHEMAS[name])
        if rows.num_rows == 0:
            return
        retrying(f"upsert into {self.uri(name)}", lambda: self._upsert(name, rows))

    def _upsert(self, name: str, rows: pa.Table) -> None:
        from deltalake import write_deltalake

        table = self._table(name)
        if table is None:
            write_deltalake(
                self.uri(name),
                rows,
                mode="append",
                partition_by=PARTITION,
                storage_options=self.location.storage_options(),
            )
            return
        on = " AND ".join(f"t.{key} = s.{key}" for key in (*KEYS[name], "model_version"))
        (
            table.merge(rows, on, source_alias="s", target_alias="t")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )

    def append(self, name: str, rows: pa.Table) -> None:
        from deltalake import write_deltalake

        data = rows.select(SCHEMAS[name].names).cast(SCHEMAS[name])
        retrying(
            f"append to {self.uri(name)}",
            lambda: write_deltalake(
                self.uri(name),
                data,
                mode="append",
                partition_by=PARTITION,
                storage_options=self.location.storage_options(),
            ),
        )

    def replace_version(self, name: str, model_version: str, rows: pa.Table) -> None:
        """The whole ``model_version`` partition of a table replaced by ``rows`` (one commit)."""
        from deltalake import write_deltalake

        data = rows.select(SCHEMAS[name].names).cast(SCHEMAS[name])
        retrying(
            f"replacing {model_version} in {self.uri(name)}",
            lambda: write_deltalake(
                self.uri(name),
                data,
                mode="overwrite",
                predicate=f"model_version = {sql_string(model_version)}",
                partition_by=PARTITION,
                storage_options=self.location.storage_options(),
            ),
        )

    def delete(self, name: str, predicate: str) -> int:
        def run() -> int:
            table = self._table(name)
            if table is None:
                return 0
            return int(table.delete(predicate).get("num_deleted_rows", 0))

        deleted: int = retrying(f"deleting rows of {self.uri(name)}", run)
        return deleted

    # -- views -------------------------------------------------------------------------------
    def mapping(self, model_version: str) -> dict[str, str | None]:
        """face_id -> person_id (None: waiting or gated) of one model version."""
        rows = self.read("face_persons", model_version).select(["face_id", "person_id"]).to_pylist()
        return {row["face_id"]: row["person_id"] for row in rows}

    def labels(self, model_version: str) -> dict[str, str | None]:
        rows = self.read("persons", model_version).select(["person_id", "label"]).to_pylist()
        return {row["person_id"]: row["label"] for row in rows}


def _in_list(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(sql_string(v) for v in sorted(set(values)))})"


def faces_of_person(location: IndexLocation, person_id: str) -> list[str]:
    """The face ids a person holds, in every model version (empty when unknown)."""
    rows = PeopleStore(location).read("face_persons", filter=f"person_id = {sql_string(person_id)}")
    return sorted(rows.column("face_id").to_pylist())


def face_ids_of_person(location: IndexLocation, person_id: str) -> list[str] | None:
    """For erasure: the person's faces, None when no such person exists."""
    store = PeopleStore(location)
    known = store.read("persons", filter=f"person_id = {sql_string(person_id)}").num_rows > 0
    faces = faces_of_person(location, person_id)
    return faces if (known or faces) else None


def persons_of_faces(location: IndexLocation, face_ids: Sequence[str]) -> dict[str, str]:
    """face_id -> person_id for the faces that belong to a person."""
    if not face_ids:
        return {}
    rows = PeopleStore(location).read("face_persons", filter=_in_list("face_id", face_ids))
    return {r["face_id"]: r["person_id"] for r in rows.to_pylist() if r["person_id"] is not None}


def person_lookup(location: IndexLocation) -> Callable[[list[str]], Mapping[str, str]]:
    """For search (``faceidx.search.photo.search_photo(person_lookup=...)``): face_id -> the person's
    label, or its id when it has none."""

    def lookup(face_ids: list[str]) -> Mapping[str, str]:
        persons = persons_of_faces(location, face_ids)
        if not persons:
            return {}
        store = PeopleStore(location)
        rows = store.read("persons", filter=_in_list("person_id", list(persons.values())))
        labels = {r["person_id"]: r["label"] for r in rows.to_pylist() if r["label"]}
        return {face: labels.get(pid, pid) for face, pid in persons.items()}

    return lookup


def purge_persons_history(location: IndexLocation) -> list[str]:
    """Vacuum each persons table with retention 0 (under the writer lease, for an erasure): no old
    version keeps a forgotten face's row. Returns the tables purged."""
    people = PeopleStore(location)
    purged = []
    for name in SCHEMAS:
        table = people._table(name)
        if table is None:
            continue
        table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
        purged.append(name)
    return purged
