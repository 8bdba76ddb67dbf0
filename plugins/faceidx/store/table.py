"""The face table: a Delta Lake table at ``location.table_uri`` fed from the landing files.

Partitioned by ``(model_version, indexed_date)``, change data feed on. :meth:`FaceTable.ingest` turns
pending landing files into one atomic MERGE commit (the dedup rule is in
:mod:`faceidx.store.dedup`), records the landing files it holds in the commit's metadata
(``faceidx.landing_files``) and deletes them only after the commit:

* a crash before the commit loses nothing (the landing files are still there);
* a crash after the commit, before the deletes, duplicates nothing: the next ingest finds the files
  in a recent commit's metadata, skips their rows and deletes them (and the dedup rule would drop
  their rows anyway).

Every write is retried on a commit conflict, and every read and write on a file that a vacuum
removed under it (:mod:`faceidx.store.retry`): the table is reloaded and the operation re-planned
from what it re-reads (an ingest lists, validates and plans its MERGE again).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc

from faceidx.store.dedup import ACTION, DELETE, EXISTING_COLUMNS, REPLACE, Tombstone, plan_merge
from faceidx.store.indexed import INDEXED_COLUMNS, IndexedQuery, indexed_pairs
from faceidx.store.landing import LandingStore, ValidatedFile, split_s3_uri, validate
from faceidx.store.location import IndexLocation
from faceidx.store.retry import retrying
from faceidx.store.schema import (
    PARTITION_COLUMNS,
    STATUS_REMOVED,
    embedding_dimension,
    fixed_embeddings,
    table_schema,
)

log = logging.getLogger(__name__)

LANDING_FILES_KEY = "faceidx.landing_files"
OPERATION_KEY = "faceidx.operation"
HISTORY_SCANNED = 100  # commits searched for landing files already ingested
IN_LIST_MAX = 10_000  # values of one SQL IN list (DataFusion overflows near 40,000)
DEFAULT_TARGET_FILE_BYTES = 128 * 1024 * 1024
DEFAULT_RETENTION_HOURS = 7 * 24
CHANGE_DATA_DIR = "_change_data"
LOG_DIR = "_delta_log"
COMMIT_FILE = re.compile(r"^\d{20}\.json$")
# A change data file that no commit references yet may belong to a commit still being written: it is
# kept this long whatever the retention (delta-rs's own vacuum never deletes unreferenced files).
IN_FLIGHT_GRACE = timedelta(hours=1)
MERGE_PREDICATE = (
    "t.face_id = s.face_id AND t.model_version = s.model_version AND t.indexed_date = s.indexed_date"
)


@dataclass
class IngestReport:
    files_listed: int = 0
    files_ingested: int = 0
    files_already_ingested: int = 0  # committed by an earlier ingest that stopped before deleting them
    files_rejected: dict[str, str] = field(default_factory=dict)  # landing file -> reason
    rows_read: int = 0
    rows_inserted: int = 0
    rows_replaced: int = 0
    rows_deleted: int = 0
    duplicates_dropped: int = 0
    erased_in_batch: int = 0
    erased_dropped: int = 0  # landing rows of faces an erasure captured: never written back
    outcomes_upgraded: int = 0
    rejected_rows: dict[str, int] = field(default_factory=dict)  # reason -> rows
    rejected_objects: list[str] = field(default_factory=list)
    tombstones: list[dict[str, Any]] = field(default_factory=list)
    version_before: int = 0
    version_after: int = 0
    committed: bool = False
    seconds: float = 0.0

    max_files: int = 0

    @property
    def files(self) -> int:
        """Landing files this ingest dealt with (ingested, already ingested or rejected)."""
        return self.files_ingested + self.files_already_ingested + len(self.files_rejected)

    @property
    def more(self) -> bool:
        """The listing was cut at ``max_files``: call ingest again."""
        return bool(self.max_files) and self.files_listed >= self.max_files

    @property
    def noop(self) -> bool:
        """Nothing was pending: no file, no commit."""
        return self.files_listed == 0 and not self.committed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"noop": self.noop, "files": self.files, "more": self.more}


@dataclass
class CompactReport:
    indexed_date: str | None
    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    files_added: int
    files_removed: int
    version_before: int
    version_after: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class VacuumReport(list[str]):
    """The files a vacuum removed (a list of their names, as before), and when history was purged.

    ``purged_at`` (ISO 8601, UTC) is when the deletes finished: from then on no table version older
    than ``purged_at`` minus ``retention_hours`` can be read, nor its change data.
    ``change_data_kept`` counts the ``_change_data/`` files left because a retained commit (or a
    commit still being written) needs them.
    """

    purged_at: str = ""
    retention_hours: float = 0
    change_data_kept: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": list(self),
            "purged_at": self.purged_at,
            "retention_hours": self.retention_hours,
            "change_data_kept": self.change_data_kept,
        }


@dataclass(frozen=True)
class StoredFile:
    """A file under the table's root: its path relative to the root, and when it was written."""

    path: str
    modified: datetime


@dataclass(frozen=True)
class Commit:
    """One commit of the Delta log: its version, its timestamp, the change data files it adds."""

    version: int
    at: datetime
    change_data: frozenset[str]


def change_data_to_remove(
    files: list[StoredFile], commits: list[Commit], *, cutoff: datetime, now: datetime
) -> list[str]:
    """The ``_change_data/`` files that a vacuum with this ``cutoff`` deletes.

    ``commits`` holds every commit written since the oldest file older than ``cutoff`` (less a
    minute), and the newest commit. A file stays when the newest commit, or a commit at or after the
    cutoff, adds it (that version is retained: the change data feed must still answer for it), and
    when no commit adds it but it is younger than :data:`IN_FLIGHT_GRACE` (a writer may be about to
    commit it). Only the files of commits older than the cutoff, and old orphans, go.
    """
    newest = max((commit.version for commit in commits), default=None)
    retained: set[str] = set()
    referenced: set[str] = set()
    for commit in commits:
        referenced |= commit.change_data
        if commit.at >= cutoff or commit.version == newest:
            retained |= commit.change_data
    orphans_before = min(cutoff, now - IN_FLIGHT_GRACE)
    return sorted(
        item.path
        for item in files
        if item.modified < cutoff
        and item.path not in retained
        and (item.path in referenced or item.modified < orphans_before)
    )


class FaceTable:
    def __init__(self, location: IndexLocation, table: Any) -> None:
        self.location = location
        self._table = table
        self._dimensions: dict[str, int] = {}

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, location: IndexLocation) -> FaceTable:
        """The table at ``location.table_uri``; created (empty, partitioned, CDF on) on first use, and
        given the columns of :func:`table_schema` it lacks (a table created before them)."""
        from deltalake import DeltaTable

        options = location.storage_options()
        if DeltaTable.is_deltatable(location.table_uri, storage_options=options):
            table = cls(location, DeltaTable(location.table_uri, storage_options=options))
            table._retrying("adding columns", table._add_missing_columns)
            return table
        created = DeltaTable.create(
            location.table_uri,
            table_schema(),
            mode="ignore",  # another process created it meanwhile: use theirs
            partition_by=list(PARTITION_COLUMNS),
            name="faces",
            description="faceidx: one row per face, one outcome per image and model version",
            configuration={"delta.enableChangeDataFeed": "true"},
            storage_options=options,
        )
        log.info("created the face table at %s", location.table_uri)
        return cls(location, created)

    def _add_missing_columns(self) -> None:
        """Add the (nullable) columns of :func:`table_schema` the table lacks; rows already in it read
        null there."""
        from deltalake import Schema

        present = set(pa.schema(self.delta.schema().to_arrow()).names)
        missing = [field for field in table_schema() if field.name not in present]
        if missing:
            self.delta.alter.add_columns(list(Schema.from_arrow(pa.schema(missing)).fields))
            log.info("added column(s) %s to the face table", ", ".join(field.name for field in missing))

    @classmethod
    def open_if_exists(cls, location: IndexLocation) -> FaceTable | None:
        """The table at ``location.table_uri``, or None before the first ingest (a reader creates nothing)."""
        from deltalake import DeltaTable

        options = location.storage_options()
        if not DeltaTable.is_deltatable(location.table_uri, storage_options=options):
            return None
        return cls(location, DeltaTable(location.table_uri, storage_options=options))

    @property
    def delta(self) -> Any:
        """The ``deltalake.DeltaTable`` (refreshed to the latest version)."""
        self._table.update_incremental()
        return self._table

    def reload(self) -> None:
        """Open the table again at its latest version (after a lost commit race or a vacuumed file)."""
        from deltalake import DeltaTable

        self._table = DeltaTable(self.location.table_uri, storage_options=self.location.storage_options())

    def _retrying(self, what: str, operation: Any, *, missing: bool = True) -> Any:
        return retrying(
            f"{what} on {self.location.table_uri}", operation, refresh=self.reload, missing=missing
        )

    def version(self) -> int:
        return int(self.delta.version())

    # -- reading -------------------------------------------------------------------------------
    def _query(self, sql: str) -> pa.Table:
        from deltalake import QueryBuilder

        def run() -> pa.Table:
            return pa.table(QueryBuilder().register("faces", self.delta).execute(sql))

        result = self._retrying("a read", run)
        schema = table_schema()
        fields = [
            schema.field(name) if name in schema.names else result.schema.field(name)
            for name in result.column_names
        ]
        target = pa.schema([item.with_nullable(True) for item in fields])
        return result.cast(target) if result.num_rows or result.num_columns else result

    def read(
        self, model_version: str | None = None, columns: list[str] | None = None, filter: str | None = None
    ) -> pa.Table:
        """The current snapshot; ``filter`` is a SQL predicate (DataFusion, as for :meth:`delete`)."""
        conditions = []
        if model_version is not None:
            conditions.append(f"model_version = {_literal(model_version)}")
        if filter:
            conditions.append(filter)
        if columns is None:  # a table older than a column reads without it until an ingest adds it
            present = set(pa.schema(self.delta.schema().to_arrow()).names)
            columns = [name for name in table_schema().names if name in present]
        return fixed_embeddings(self._query(_select(columns, conditions)))

    def indexed_images(self, query: IndexedQuery) -> set[tuple[str, str]]:
        """``(key, bare etag)`` of ``query.keys`` that an ``ok`` row indexes for ``query.model`` (see
        :mod:`faceidx.store.indexed`). Reads only its six columns, of the ``model_version`` and
        ``indexed_date`` partitions the query names, a few thousand keys per query."""
        found: set[tuple[str, str]] = set()
        for keys in query.chunks():
            rows = self._query(_select(list(INDEXED_COLUMNS), [query.predicate(keys)]))
            found |= indexed_pairs(rows, query)
        return found

    def dimension(self, model_version: str) -> int | None:
        """The embedding length of ``model_version`` in the table, None before its first face."""
        if model_version not in self._dimensions:
            where = [f"model_version = {_literal(model_version)}", "embedding IS NOT NULL"]
            rows = self._query(_select(["embedding"], where) + " LIMIT 1")
            found = embedding_dimension(rows)
            if found is None:
                return None
            self._dimensions[model_version] = found
        return self._dimensions[model_version]

    def model_versions(self) -> dict[str, int]:
        """Model version -> face rows (rows with a face_index)."""
        rows = self._query(
            "SELECT model_version, count(face_index) AS faces FROM faces GROUP BY model_version"
        )
        return dict(
            zip(rows.column("model_version").to_pylist(), rows.column("faces").to_pylist(), strict=True)
        )

    def partitions(self) -> list[tuple[str, str]]:
        """``(model_version, indexed_date)`` of every partition with data, from the Delta log (no data
        read): the vector index's shards follow them."""
        found = {(str(p["model_version"]), str(p["indexed_date"])) for p in self.delta.partitions()}
        return sorted(found)

    def changes_since(self, version: int) -> pa.Table:
        """Change data feed rows of the commits after ``version`` (``_change_type``, ``_commit_version``)."""
        current = self.version()
        if version >= current:
            return pa.table(
                {
                    name: pa.array([], type=f.type)
                    for name, f in zip(table_schema().names, table_schema(), strict=True)
                }
            )
        return pa.table(self.delta.load_cdf(starting_version=version + 1, ending_version=current))

    def file_uris(self) -> list[str]:
        return list(self.delta.file_uris())

    # -- writing -------------------------------------------------------------------------------
    def delete(self, predicate: str) -> int:
        """Delete the rows matching a SQL predicate (delta-rs syntax); returns the rows deleted."""

        def run() -> int:
            metrics = self.delta.delete(predicate, commit_properties=_commit("delete"))
            return int(metrics.get("num_deleted_rows", 0))

        return int(self._retrying("delete", run))

    def ingest(self, max_files: int = 500, erased_face_ids: set[str] | None = None) -> IngestReport:
        """Move up to ``max_files`` landing files into the table (see the module docstring).

        ``erased_face_ids``: faces an erasure captured (``faceidx.store.intents``); a landing row of
        one of them (a late or repeated delivery) is dropped, so an erased face never comes back.

        A lost commit race (or a file vacuumed under it) starts the ingest over: list, read, validate
        and plan again against the reloaded table; setting aside and the commit are idempotent."""
        started = time.perf_counter()
        report: IngestReport = self._retrying("ingest", lambda: self._ingest_once(max_files, erased_face_ids))
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _ingest_once(self, max_files: int, erased_face_ids: set[str] | None) -> IngestReport:
        store = LandingStore(self.location)
        report = IngestReport(version_before=self.version(), max_files=max_files)
        pending = store.pending(max_files)
        report.files_listed = len(pending)
        if not pending:
            report.version_after = report.version_before
            return report
        done = self._ingested_files()
        already = [item for item in pending if self._relative(item.uri) in done]
        todo = [item for item in pending if self._relative(item.uri) not in done]
        report.files_already_ingested = len(already)

        validated: list[ValidatedFile] = []
        for item in already:  # their tombstones are reported again; the forget that uses them is idempotent
            checked = validate(item, store.read_bytes(item.uri), {})
            if checked.rows is not None:
                gone = checked.rows.filter(pc.equal(checked.rows.column("status"), STATUS_REMOVED))
                for bucket, key, when in zip(
                    gone.column("image_bucket").to_pylist(),
                    gone.column("image_key").to_pylist(),
                    gone.column("indexed_at").to_pylist(),
                    strict=True,
                ):
                    report.tombstones.append(Tombstone(bucket, key, when).as_dict())
        dimensions = {
            version: found
            for version in self._versions_in_table()
            if (found := self.dimension(version)) is not None
        }
        reasons: Counter[str] = Counter()
        for item in todo:
            checked = validate(item, store.read_bytes(item.uri), dimensions)
            validated.append(checked)
            if checked.file_reason is not None:
                report.files_rejected[item.uri] = checked.file_reason
                log.warning("rejected landing file %s: %s", item.uri, checked.file_reason)
            reasons.update(checked.reasons)
        report.rejected_rows = dict(reasons)
        batches = [checked.rows for checked in validated if checked.rows is not None]
        report.rows_read = sum(batch.num_rows for batch in batches) + sum(
            checked.rejected_rows.num_rows for checked in validated if checked.rejected_rows is not None
        )
        for checked in validated:  # before the commit: a crash here rewrites the same objects next time
            report.rejected_objects.extend(store.set_aside(checked))

        if batches and erased_face_ids:
            kept = []
            for part in batches:
                erased = pc.fill_null(
                    pc.is_in(part.column("face_id"), pa.array(sorted(erased_face_ids))), False
                )
                report.erased_dropped += int(pc.sum(erased).as_py() or 0)
                kept.append(part.filter(pc.invert(erased)))
            batches = [part for part in kept if part.num_rows]
        if batches:
            batch = pa.concat_tables(batches)
            plan = plan_merge(batch, self._existing(batch))
            report.rows_inserted, report.rows_replaced = plan.inserted, plan.replaced
            report.rows_deleted, report.duplicates_dropped = plan.deleted, plan.duplicates
            report.erased_in_batch, report.outcomes_upgraded = plan.erased_in_batch, plan.outcomes_upgraded
            report.tombstones.extend(tombstone.as_dict() for tombstone in plan.tombstones)
            if plan.changes:
                ingested = [
                    self._relative(checked.file.uri) for checked in validated if checked.rows is not None
                ]
                self._merge(plan.source, ingested)
                report.committed = True
        report.files_ingested = sum(1 for checked in validated if checked.file_reason is None)
        # only now: every row of these files is in the committed table, or set aside, or a duplicate
        store.delete([item.uri for item in pending])
        report.version_after = self.version()
        return report

    def _merge(self, source: pa.Table, landing_files: list[str]) -> None:
        from deltalake import WriterProperties

        columns = table_schema().names
        updates = {name: f"s.{name}" for name in columns}
        (
            self.delta.merge(
                source,
                MERGE_PREDICATE,
                source_alias="s",
                target_alias="t",
                writer_properties=WriterProperties(compression="ZSTD"),
                commit_properties=_commit("ingest", {LANDING_FILES_KEY: json.dumps(landing_files)}),
            )
            .when_matched_update(updates=updates, predicate=f"s.{ACTION} = '{REPLACE}'")
            .when_matched_delete(predicate=f"s.{ACTION} = '{DELETE}'")
            .when_not_matched_insert(updates=updates, predicate=f"s.{ACTION} <> '{DELETE}'")
            .execute()
        )

    def _existing(self, batch: pa.Table) -> pa.Table:
        """Table rows of the batch's images, and of every key a tombstone of the batch names."""
        image_ids = pc.unique(batch.column("image_id")).to_pylist()
        removed = batch.filter(pc.equal(batch.column("status"), STATUS_REMOVED))
        keys = pc.unique(removed.column("image_key")).to_pylist()
        # DataFusion's SQL parser overflows its stack (the process dies with SIGSEGV) on an IN list of
        # some 40,000 literals: a round of 500 worker files names more images than that. So the lookup
        # goes IN_LIST_MAX values a query.
        parts = [
            self._query(_select(EXISTING_COLUMNS, [f"{column} IN ({', '.join(_literal(v) for v in chunk)})"]))
            for column, values in (("image_id", image_ids), ("image_key", keys))
            for chunk in _chunks(values, IN_LIST_MAX)
        ]
        if not parts:
            return self._query(_select(EXISTING_COLUMNS, ["false"]))
        found = pa.concat_tables(parts)
        if len(parts) > 1:  # a row may match both an image id and a tombstone's key
            found = found.group_by(list(found.column_names)).aggregate([]) if found.num_rows else found
        return found

    def _versions_in_table(self) -> list[str]:
        return sorted({str(values["model_version"]) for values in self.delta.partitions()})

    def _relative(self, uri: str) -> str:
        return uri.removeprefix(self.location.landing_uri + "/")

    def _ingested_files(self) -> set[str]:
        done: set[str] = set()
        for commit in self.delta.history(HISTORY_SCANNED):
            listed = commit.get(LANDING_FILES_KEY)
            if listed:
                done.update(json.loads(listed))
        return done

    # -- maintenance ---------------------------------------------------------------------------
    def _files(self, indexed_date: str | None) -> tuple[int, int]:
        actions = pa.table(self.delta.get_add_actions(flatten=True))
        if indexed_date is not None and actions.num_rows:
            actions = actions.filter(pc.equal(actions.column("partition.indexed_date"), indexed_date))
        return actions.num_rows, int(
            pc.sum(actions.column("size_bytes")).as_py() or 0
        ) if actions.num_rows else 0

    def row_count(self, indexed_dates: set[str] | None = None) -> tuple[int, int]:
        """Rows and data files (of the ``indexed_date`` partitions in ``indexed_dates``), from the Delta
        log's per-file statistics alone: no data file is read, so sizing a step costs the same at any size."""
        actions = pa.table(self.delta.get_add_actions(flatten=True))
        if indexed_dates is not None and actions.num_rows:
            dates = pc.cast(actions.column("partition.indexed_date"), pa.string())
            actions = actions.filter(pc.is_in(dates, value_set=pa.array(sorted(indexed_dates), pa.string())))
        if not actions.num_rows:
            return 0, 0
        return int(pc.sum(actions.column("num_records")).as_py() or 0), actions.num_rows

    def compact(
        self, indexed_date: str | None = None, target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES
    ) -> CompactReport:
        """Rewrite the small files of one ``indexed_date`` (every partition when None) into larger ones."""
        report: CompactReport = self._retrying(
            "compaction", lambda: self._compact_once(indexed_date, target_file_bytes)
        )
        return report

    def _compact_once(self, indexed_date: str | None, target_file_bytes: int) -> CompactReport:
        from deltalake import WriterProperties

        before_version = self.version()
        files_before, bytes_before = self._files(indexed_date)
        filters = [("indexed_date", "=", indexed_date)] if indexed_date is not None else None
        metrics = self.delta.optimize.compact(
            partition_filters=filters,
            target_size=target_file_bytes,
            writer_properties=WriterProperties(compression="ZSTD"),
            commit_properties=_commit("compact"),
        )
        files_after, bytes_after = self._files(indexed_date)
        return CompactReport(
            indexed_date=indexed_date,
            files_before=files_before,
            files_after=files_after,
            bytes_before=bytes_before,
            bytes_after=bytes_after,
            files_added=int(metrics.get("numFilesAdded", 0)),
            files_removed=int(metrics.get("numFilesRemoved", 0)),
            version_before=before_version,
            version_after=self.version(),
        )

    def vacuum(self, retention_hours: int = DEFAULT_RETENTION_HOURS) -> VacuumReport:
        """Delete the files that no version younger than ``retention_hours`` needs; returns them.

        delta-rs's vacuum deletes the data files that commits older than the retention removed; it
        never deletes a file that no commit names (a writer may be about to commit it). It leaves the
        change data feed's files (``_change_data/``, copies of changed rows): they are deleted here
        when only commits older than the retention add them (:func:`change_data_to_remove`), never
        the newest commit's, so the feed still answers for every retained version.
        """

        def run() -> VacuumReport:
            cutoff = datetime.now(UTC) - timedelta(hours=retention_hours)
            report = VacuumReport(
                self.delta.vacuum(
                    retention_hours=retention_hours,
                    dry_run=False,
                    enforce_retention_duration=False,
                    commit_properties=_commit("vacuum"),
                )
            )
            removed, kept = self._remove_change_data(cutoff)
            report.extend(removed)
            report.change_data_kept = kept
            return report

        report: VacuumReport = self._retrying("vacuum", run)
        report.retention_hours = retention_hours
        report.purged_at = datetime.now(UTC).isoformat()
        log.info(
            "vacuumed %s (retention %s h): %d file(s) removed, %d change data file(s) kept",
            self.location.table_uri,
            retention_hours,
            len(report),
            report.change_data_kept,
        )
        return report

    def _remove_change_data(self, cutoff: datetime) -> tuple[list[str], int]:
        """Delete the change data files of commits older than ``cutoff``; (deleted, kept)."""
        files = self._stored(CHANGE_DATA_DIR)
        older = [item for item in files if item.modified < cutoff]
        if not older:
            return [], len(files)
        since = min(item.modified for item in older) - timedelta(minutes=1)
        until = max(item.modified for item in older) + IN_FLIGHT_GRACE
        log_files = self._stored(LOG_DIR, nested=False)
        log_files = [item for item in log_files if COMMIT_FILE.match(item.path.rsplit("/", 1)[-1])]
        newest = max(log_files, key=lambda item: item.path, default=None)
        wanted = {item.path for item in log_files if since <= item.modified <= until}
        if newest is not None:
            wanted.add(newest.path)
        commits = [self._read_commit(path) for path in sorted(wanted)]
        doomed = change_data_to_remove(files, commits, cutoff=cutoff, now=datetime.now(UTC))
        self._delete_stored(doomed)
        return [f"{self.location.table_uri}/{path}" for path in doomed], len(files) - len(doomed)

    def _stored(self, directory: str, *, nested: bool = True) -> list[StoredFile]:
        """The files under ``<table>/<directory>/`` (its top level only unless ``nested``)."""
        root = self.location.table_uri
        if self.location.is_s3:
            bucket, prefix = split_s3_uri(f"{root}/{directory}/")
            table_prefix = prefix.removesuffix(f"{directory}/")
            client = self.location.s3_client()
            found = [
                StoredFile(item["Key"].removeprefix(table_prefix), item["LastModified"])
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                for item in page.get("Contents", [])
            ]
        else:
            base = Path(root)
            paths = (base / directory).rglob("*") if nested else (base / directory).glob("*")
            found = []
            for path in paths:
                try:
                    stat = path.stat()
                except FileNotFoundError:  # removed meanwhile (another vacuum, a log cleanup)
                    continue
                if path.is_file():
                    modified = datetime.fromtimestamp(stat.st_mtime, UTC)
                    found.append(StoredFile(path.relative_to(base).as_posix(), modified))
        return [item for item in found if nested or "/" not in item.path.removeprefix(f"{directory}/")]

    def _read_commit(self, path: str) -> Commit:
        uri = f"{self.location.table_uri}/{path}"
        if self.location.is_s3:
            bucket, key = split_s3_uri(uri)
            body = self.location.s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        else:
            body = Path(uri).read_bytes()
        at: datetime | None = None
        change_data = set()
        for line in body.decode().splitlines():
            action = json.loads(line) if line.strip() else {}
            if "commitInfo" in action and "timestamp" in action["commitInfo"]:
                at = datetime.fromtimestamp(int(action["commitInfo"]["timestamp"]) / 1000, UTC)
            elif "cdc" in action:
                change_data.add(unquote(action["cdc"]["path"]))
        version = int(path.rsplit("/", 1)[-1].split(".", 1)[0])
        return Commit(version, at or datetime.now(UTC), frozenset(change_data))

    def _delete_stored(self, paths: list[str]) -> None:
        if self.location.is_s3:
            bucket, prefix = split_s3_uri(self.location.table_uri + "/")
            client = self.location.s3_client()
            for start in range(0, len(paths), 1000):
                chunk = [{"Key": prefix + path} for path in paths[start : start + 1000]]
                client.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
            return
        for path in paths:
            (Path(self.location.table_uri) / path).unlink(missing_ok=True)

    def purge_history(self) -> VacuumReport:
        """Vacuum with retention 0 (erasure): the files of every older version, and the change data of
        every commit but the newest, are removed; ``purged_at`` says when. The vector index's sync
        then compares instead of reading the feed. Run it under the writer lease."""
        return self.vacuum(retention_hours=0)


def _commit(operation: str, extra: dict[str, str] | None = None) -> Any:
    from deltalake import CommitProperties

    return CommitProperties(custom_metadata={OPERATION_KEY: operation, **(extra or {})})


def _select(columns: list[str], conditions: list[str]) -> str:
    """``SELECT columns FROM faces WHERE c1 AND c2``: values are quoted by :func:`_literal`; a caller's
    filter is a SQL predicate by design (the table's API takes delta-rs / DataFusion predicates)."""
    sql = "SELECT " + ", ".join(f'"{name}"' for name in columns) + " FROM faces"  # noqa: S608
    if conditions:
        sql += " WHERE " + " AND ".join(f"({condition})" for condition in conditions)
    return sql


def _chunks(values: list[Any], size: int) -> list[list[Any]]:
    return [values[start : start + size] for start in range(0, len(values), size)]


def _literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"
