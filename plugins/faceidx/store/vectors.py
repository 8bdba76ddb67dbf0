"""The vector index: LanceDB tables sharded by model version and month, kept in step with the Delta
face table.

* **Layout**: ``location.vectors_uri`` is a LanceDB database (a local folder, or S3 with
  :meth:`IndexLocation.lance_storage_options`). The faces of model version ``V`` whose ``indexed_date``
  falls in month ``M`` live in the shard table :func:`shard_name` ``(V, M)``
  (``faces__<V>__2026_11``, see :mod:`faceidx.store.vector_shards`), whose schema metadata records
  ``V`` and ``M``. Columns: ``face_id``, ``image_bucket``, ``image_key``, ``face_index``, ``bbox``,
  ``quality_passed`` and ``vector`` (``fixed_size_list<float32>[D]``). Versions never mix: a search
  names one, and is answered by every shard of it.
* **Sync, one shard** (:meth:`VectorIndex.sync_shard`): the first sync loads the shard's faces (one
  month's partitions of the face table); later syncs apply only what changed since the Delta version
  recorded by the shard's previous sync, read from the table's change data feed
  (``FaceTable.changes_since``). When the feed cannot answer (history vacuumed by ``purge_history``,
  or the table was recreated), the sync falls back to a face_id set difference between the month's
  rows and the shard. Both are idempotent (upsert / delete by face_id), so a sync that dies before
  recording its version is simply repeated; it touches no other shard. The recorded version sits in
  ``<vectors>/_faceidx/sync/<shard table>.json``. Each shard has its own ANN index, so shards are
  built independently (one process, job or array child per shard).
* **Which shards**: :meth:`VectorIndex.plan_shards` / :meth:`VectorIndex.shards_to_sync` read the face
  table's partitions and the feed once and name the shards with work to do;
  :meth:`VectorIndex.sync` (all shards of a version, what ``sync_vectors_task`` runs) syncs those and
  records the others as current.
* **Unsharded tables** of earlier releases (``faces__<V>``, one per version) keep answering searches
  until :meth:`VectorIndex.sync` has built every shard of ``V``; it then drops the old table
  (:meth:`VectorIndex.retire_unsharded`).
* **Search**: exact (flat) while a shard holds fewer than :data:`ANN_MIN_ROWS` faces; from then on an
  IVF-HNSW-SQ index (cosine): up to :data:`MAX_PARTITIONS` IVF partitions, each its own HNSW graph over
  8-bit scalar-quantised vectors. Later syncs extend it with ``optimize()`` and retrain it when the
  shard has doubled since training. ANN candidates are re-ranked on the full vectors
  (``refine_factor``), so the similarity returned is the exact cosine of the stored embedding.
  A search asks every shard of the version for its top-k (in threads) and keeps the top-k of the union
  (:func:`merge_top_k`). ``make bench-search`` chose this index over IVF-PQ (docs/search.md).
* **Erasure**: :meth:`VectorIndex.delete` removes face_ids from every table (every shard of every
  version); :meth:`VectorIndex.locate` says which tables still hold any of them.
  :meth:`VectorIndex.purge_history` then removes the old Lance versions, and rewrites a table whose
  files still hold deleted rows (Lance keeps them behind a deletion file until compaction), so the
  vectors are gone from disk, not only hidden. It never deletes a file that no version references
  (no ``delete_unverified``): such a file may belong to a commit another writer is still making.
* **Concurrency**: every write is retried on a commit conflict or a file cleaned up under it
  (:mod:`faceidx.store.retry`), reopening the table first; a sync is repeated whole (it is
  idempotent). A search reopens its tables at the latest version when a file of the version it holds
  is gone (a purge ran), and at most :data:`READER_REFRESH_S` seconds after opening them.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from faceidx.store.retry import CommitConflictError, retrying
from faceidx.store.vector_ann import (
    ANN_INDEX,
    DEFAULT_EF,
    DEFAULT_NPROBES,
    DEFAULT_REFINE_FACTOR,
    FACES_PER_PARTITION,
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    MAX_PARTITIONS,
    ann_partitions,
    build_ann_index,
    deletion_rows,
)
from faceidx.store.vector_reports import PurgeReport, SyncReport, combined
from faceidx.store.vector_rows import (
    DATE_COLUMN,
    FACE_COLUMNS,
    MONTH_METADATA_KEY,
    READ_COLUMNS,
    VERSION_METADATA_KEY,
    FaceSource,
    face_rows,
    index_schema,
    latest_changes,
    month_of,
    plain_arrow,
    table_months,
    to_index_rows,
)
from faceidx.store.vector_search import SEARCH_THREADS, Match, search_tables
from faceidx.store.vector_shards import (
    TABLE_PREFIX,
    ShardPlan,
    VectorShard,
    last_change_by_shard,
    merge_top_k,
    month_filter,
    month_in_name,
    plan_shards,
    rows_of_month,
    shard_changes,
    shard_name,
    table_name,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from faceidx.store.location import IndexLocation

log = logging.getLogger(__name__)

# Below this many faces a shard is searched exactly (a flat scan of 50k x 512 floats is ~10 ms);
# from this size on it gets an IVF-HNSW-SQ index.
ANN_MIN_ROWS = 50_000
# Retrain the IVF centroids and the graphs once a shard holds this many times its training size.
RETRAIN_GROWTH = 2.0
DELETE_CHUNK = 1000
# A searcher's open tables are checked out again at the latest version after this many seconds, so a
# long-lived searcher sees other processes' writes, erasures and new shards (and at once after a purge).
READER_REFRESH_S = 10.0

__all__ = [
    "ANN_INDEX",
    "ANN_MIN_ROWS",
    "DATE_COLUMN",
    "DEFAULT_EF",
    "DEFAULT_NPROBES",
    "DEFAULT_REFINE_FACTOR",
    "FACES_PER_PARTITION",
    "FACE_COLUMNS",
    "HNSW_EF_CONSTRUCTION",
    "HNSW_M",
    "MAX_PARTITIONS",
    "READ_COLUMNS",
    "TABLE_PREFIX",
    "FaceSource",
    "Match",
    "PurgeReport",
    "ShardPlan",
    "SyncReport",
    "UnknownModelVersionError",
    "VectorIndex",
    "VectorShard",
    "ann_partitions",
    "build_ann_index",
    "face_rows",
    "index_schema",
    "latest_changes",
    "merge_top_k",
    "month_of",
    "plain_arrow",
    "shard_name",
    "table_name",
    "to_index_rows",
]


class UnknownModelVersionError(LookupError):
    """The vector index holds no table for this model version."""

    def __init__(self, model_version: str, known: Iterable[str]) -> None:
        names = ", ".join(sorted(known)) or "none"
        super().__init__(
            f"model version {model_version!r} is not in the vector index (it holds: {names}); "
            "run a sync for it (faceidx table sync / the face_table DAG) or search another version"
        )
        self.model_version = model_version


def _sql_list(values: Sequence[str]) -> str:
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


class VectorIndex:
    """The LanceDB index of one :class:`IndexLocation`. Not thread-safe; one writer per shard at a time."""

    def __init__(self, location: IndexLocation) -> None:
        self.location = location
        self._db: Any = None
        # model version -> (its open tables as (table, dimension, indexed), opened at) for repeated
        # searches; our writes clear it, a missing file or READER_REFRESH_S seconds renew an entry
        self._readers: dict[str, tuple[list[tuple[Any, int, bool]], float]] = {}
        self._pool: ThreadPoolExecutor | None = None

    # -- the database ---------------------------------------------------------------------------
    @property
    def db(self) -> Any:
        if self._db is None:
            os.environ.setdefault("LANCE_LOG", "error")  # Lance's Rust side warns on every new table
            import lancedb

            self._db = lancedb.connect(
                self.location.vectors_uri, storage_options=self.location.lance_storage_options() or None
            )
        return self._db

    def _table_names(self) -> list[str]:
        names: list[str] = []
        token: str | None = None
        while True:
            page = self.db.list_tables(page_token=token)
            names.extend(page.tables)
            token = page.page_token
            if not token:
                return [name for name in names if name.startswith(TABLE_PREFIX)]

    def _layout(self) -> dict[str, tuple[str | None, dict[str, str]]]:
        """Model version -> (its unsharded table or None, month -> shard table), from the tables'
        schema metadata (a name alone could be another version's: ``a__2026_11`` is a valid version)."""
        found: dict[str, tuple[str | None, dict[str, str]]] = {}
        for name in self._table_names():
            metadata = self.db.open_table(name).schema.metadata or {}
            version = metadata.get(VERSION_METADATA_KEY, name.removeprefix(TABLE_PREFIX).encode()).decode()
            month = (metadata.get(MONTH_METADATA_KEY) or b"").decode()
            legacy, shards = found.get(version, (None, {}))
            if month and month_in_name(name, version) == month:
                shards[month] = name
            else:
                legacy = name
            found[version] = (legacy, shards)
        return found

    def _tables_of(
        self, model_version: str, names: Sequence[str] | None = None
    ) -> tuple[str | None, dict[str, str]]:
        """(the version's unsharded table or None, month -> shard table), from the names alone."""
        names = self._table_names() if names is None else names
        base = table_name(model_version)
        shards = {month: name for name in names if (month := month_in_name(name, model_version)) is not None}
        return (base if base in names else None), shards

    def _searched(self, model_version: str) -> list[str]:
        """The tables a search of the version reads: its unsharded table while it has one (its shards
        are still being built), else every shard."""
        legacy, shards = self._tables_of(model_version)
        if legacy is not None:
            return [legacy]
        return [shards[month] for month in sorted(shards)]

    def versions(self) -> dict[str, int]:
        """Model version -> faces in the index (what a search of it reads)."""
        found: dict[str, int] = {}
        for version, (legacy, shards) in self._layout().items():
            names = [legacy] if legacy is not None else list(shards.values())
            found[version] = sum(int(self.db.open_table(name).count_rows()) for name in names)
        return found

    def shards(self, model_version: str | None = None) -> list[VectorShard]:
        """The shards the index holds (of one version, or of all)."""
        return sorted(
            VectorShard(version, month)
            for version, (_, shards) in self._layout().items()
            if model_version is None or version == model_version
            for month in shards
        )

    def _open_searched(self, model_version: str) -> list[Any]:
        names = self._searched(model_version)
        if not names:
            raise UnknownModelVersionError(model_version, self.versions())
        return [self.db.open_table(name) for name in names]

    def dimension(self, model_version: str) -> int:
        return int(self._open_searched(model_version)[0].schema.field("vector").type.list_size)

    def is_indexed(self, model_version: str) -> bool:
        """Whether every table a search of the version reads has its ANN index."""
        return all(bool(list(table.list_indices())) for table in self._open_searched(model_version))

    def face_ids(self, model_version: str) -> list[str]:
        """Every face_id a search of the version can return."""
        ids: list[str] = []
        for table in self._open_searched(model_version):
            ids.extend(table.search().select(["face_id"]).limit(None).to_arrow()["face_id"].to_pylist())
        return ids

    # -- sync state -------------------------------------------------------------------------------
    def _state_uri_of(self, name: str) -> str:
        return f"{self.location.vectors_uri.rstrip('/')}/_faceidx/sync/{name}.json"

    def _state_uri(self, model_version: str, month: str | None = None) -> str:
        return self._state_uri_of(shard_name(model_version, month) if month else table_name(model_version))

    def sync_state(self, model_version: str, month: str | None = None) -> dict[str, Any] | None:
        """The recorded sync of a shard (``month``), or of the version's unsharded table (no month)."""
        state = self.location.read_json(self._state_uri(model_version, month))
        return state if isinstance(state, dict) else None

    def _delete_state(self, name: str) -> None:
        uri = self._state_uri_of(name)
        if uri.startswith("s3://"):
            from faceidx.common.uris import split_s3_uri

            parts = split_s3_uri(uri)
            if parts is not None:
                self.location.s3_client().delete_object(Bucket=parts[0], Key=parts[1])
        else:
            from pathlib import Path

            Path(uri).unlink(missing_ok=True)

    # -- which shards -------------------------------------------------------------------------------
    def plan_shards(self, table: FaceSource, model_version: str | None = None) -> list[ShardPlan]:
        """Every shard of the face table and of the index (of one version, or all), each with whether
        its sync has work to do and why (:func:`faceidx.store.vector_shards.plan_shards`). Reads the
        face table's partitions and, when a shard is behind, the change feed once."""
        target = int(table.version())
        in_table = table_months(table, model_version)
        index_months: dict[str, list[str]] = {}
        for shard in self.shards(model_version):
            index_months.setdefault(shard.model_version, []).append(shard.month)
        keys = {
            VectorShard(version, month)
            for source in (in_table, index_months)
            for version, months in source.items()
            for month in months
        }
        recorded: dict[VectorShard, int | None] = {}
        for shard in keys:
            state = self.sync_state(shard.model_version, shard.month) or {}
            value = state.get("delta_version")
            recorded[shard] = None if value is None else int(value)
        behind = [value for value in recorded.values() if value is not None and value < target]
        last_change: dict[tuple[str, str], int] | None = {}
        if behind:
            try:
                changes = plain_arrow(table.changes_since(min(behind)))
                last_change = last_change_by_shard(changes)
            except Exception as error:  # noqa: BLE001 - delta-rs raises a bare Exception when files are gone
                log.warning("the change data feed cannot answer since %s (%s)", min(behind), error)
                last_change = None
        return plan_shards(target, in_table, index_months, recorded, last_change)

    def shards_to_sync(self, table: FaceSource, model_version: str | None = None) -> list[VectorShard]:
        """The shards (of one version, or all) whose :meth:`sync_shard` has work to do: one job each."""
        return [plan.shard for plan in self.plan_shards(table, model_version) if plan.needs_sync]

    # -- sync -------------------------------------------------------------------------------------
    def sync(self, table: FaceSource, model_version: str) -> SyncReport:
        """Bring every shard of the version to the face table's current snapshot: :meth:`sync_shard`
        for each shard with work, the others recorded as current; then the version's unsharded table
        of an earlier release, if any, is dropped (its shards now hold its faces)."""
        started = time.perf_counter()
        plans = self.plan_shards(table, model_version)
        if not plans and self._tables_of(model_version)[0] is None:
            known = table.model_versions() if hasattr(table, "model_versions") else {}
            if known and model_version not in known:
                raise UnknownModelVersionError(model_version, known)
        reports = []
        for plan in plans:
            if plan.needs_sync:
                reports.append(self.sync_shard(table, plan.shard))
            else:
                reports.append(self._record_current(plan))
        target = plans[0].target if plans else int(table.version())
        report = combined(reports, model_version, target)
        if self.retire_unsharded(model_version, plans):
            report.note = "; ".join(
                filter(None, [report.note, f"the unsharded {table_name(model_version)} was dropped"])
            )
        if not plans:
            report.mode = "unchanged"
            report.note = report.note or "the face table holds no face of this version"
        report.seconds = time.perf_counter() - started
        return report

    def retire_unsharded(self, model_version: str, plans: Sequence[ShardPlan] | None = None) -> bool:
        """Drop the version's unsharded table (an earlier release's layout) and its sync state once
        every shard of the version is synced (``plans``: the plan those syncs followed; None: check the
        recorded states). True when it dropped one."""
        legacy, shards = self._tables_of(model_version)
        if legacy is None:
            return False
        months = [plan.shard.month for plan in plans] if plans is not None else list(shards)
        if plans is None and not all(self.sync_state(model_version, month) for month in months):
            return False
        self._readers.clear()
        self.db.drop_table(legacy)
        self._delete_state(legacy)
        log.info("the unsharded vector table %s was dropped: %s shard(s) hold its faces", legacy, len(months))
        return True

    def _record_current(self, plan: ShardPlan) -> SyncReport:
        """A shard the feed proved unchanged since its sync: its state moves to the plan's version."""
        shard = plan.shard
        state = self.sync_state(shard.model_version, shard.month) or {}
        if plan.recorded != plan.target and state.get("delta_version") == plan.recorded:
            state.update(delta_version=plan.target, synced_at=datetime.now(UTC).isoformat())
            self.location.write_json(self._state_uri_of(shard.name), state)
        report = SyncReport(shard.model_version, "unchanged", plan.recorded, plan.target, month=shard.month)
        lance_table = self._open_or_none(shard.name)
        if lance_table is not None:
            report.rows = int(lance_table.count_rows())
            report.index = ANN_INDEX if list(lance_table.list_indices()) else "flat"
        return report

    def sync_shard(self, table: FaceSource, shard: VectorShard) -> SyncReport:
        """Bring one shard to the face table's current snapshot (see the module docstring); no other
        table is read or written, so shards sync in separate processes at once.

        A commit conflict, or a file cleaned up under it, repeats the whole sync from the recorded
        state (it is idempotent)."""
        report: SyncReport = retrying(
            f"vector sync of {shard.name} in {self.location.vectors_uri}",
            lambda: self._sync_once(table, shard),
            refresh=self._readers.clear,
        )
        return report

    def _sync_once(self, table: FaceSource, shard: VectorShard) -> SyncReport:
        started = time.perf_counter()
        self._readers.clear()
        target = int(table.version())
        state = self.sync_state(shard.model_version, shard.month) or {}
        recorded = state.get("delta_version")
        exists = shard.name in self._table_names()
        report = SyncReport(shard.model_version, "full", recorded, target, month=shard.month)
        if not exists or recorded is None or int(recorded) > target:
            if exists and recorded is not None:
                report.note = f"the face table is at {target}, below the recorded {recorded}: reloaded"
            self._load_full(table, shard, report)
        elif int(recorded) == target:
            report.mode = "unchanged"
        else:
            self._apply_changes(table, shard, int(recorded), report)
        lance_table = self._open_or_none(shard.name)
        if lance_table is not None:
            report.rows = int(lance_table.count_rows())
            report.index = self._maintain_index(lance_table, state, report)
        state.update(
            model_version=shard.model_version,
            month=shard.month,
            delta_version=target,
            synced_at=datetime.now(UTC).isoformat(),
            rows=report.rows,
        )
        self.location.write_json(self._state_uri_of(shard.name), state)
        report.seconds = time.perf_counter() - started
        return report

    def _open_or_none(self, name: str) -> Any:
        return self.db.open_table(name) if name in self._table_names() else None

    def _month_rows(self, table: FaceSource, shard: VectorShard, columns: list[str]) -> pa.Table:
        data = plain_arrow(
            table.read(model_version=shard.model_version, columns=columns, filter=month_filter(shard.month))
        )
        return rows_of_month(data, shard.month)  # a source that ignores the filter reads every month

    def _load_full(self, table: FaceSource, shard: VectorShard, report: SyncReport) -> None:
        data = face_rows(self._month_rows(table, shard, READ_COLUMNS))
        if data.num_rows == 0:
            report.note = report.note or "the face table holds no face of this shard"
            existing = self._open_or_none(shard.name)
            if existing is not None:
                report.deleted = int(existing.count_rows())
                existing.delete("true")
            return
        rows = to_index_rows(data)
        dimension = rows.schema.field("vector").type.list_size
        schema = index_schema(dimension, shard.model_version, shard.month)
        self.db.create_table(shard.name, data=rows.cast(schema), schema=schema, mode="overwrite")
        report.upserted = rows.num_rows

    def _apply_changes(
        self, table: FaceSource, shard: VectorShard, recorded: int, report: SyncReport
    ) -> None:
        try:
            changes = plain_arrow(table.changes_since(recorded))
        except Exception as error:  # noqa: BLE001 - delta-rs raises a bare Exception when files are gone
            log.warning(
                "the change data feed of the face table cannot answer since version %s (%s): "
                "syncing %s by face_id set difference instead",
                recorded,
                error,
                shard.name,
            )
            report.note = f"change data feed unusable: {str(error).splitlines()[0][:160]}"
            self._apply_difference(table, shard, report)
            return
        report.mode = "cdf"
        import pyarrow.compute as pc

        if "model_version" in changes.column_names:
            changes = changes.filter(pc.equal(changes["model_version"], shard.model_version))
        upserts, deletes = shard_changes(changes, shard.month)
        lance_table = self.db.open_table(shard.name)
        dimension = int(lance_table.schema.field("vector").type.list_size)
        if deletes:
            report.deleted = self._delete_from(lance_table, deletes)
        if upserts.num_rows:
            rows = to_index_rows(upserts, dimension).cast(lance_table.schema)
            lance_table.merge_insert(
                "face_id"
            ).when_matched_update_all().when_not_matched_insert_all().execute(rows)
            report.upserted = rows.num_rows

    def _apply_difference(self, table: FaceSource, shard: VectorShard, report: SyncReport) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        report.mode = "diff"
        lance_table = self.db.open_table(shard.name)
        dimension = int(lance_table.schema.field("vector").type.list_size)
        wanted = face_rows(
            self._month_rows(table, shard, ["face_id", "face_index", "embedding", "status", DATE_COLUMN])
        )
        wanted_ids = pa.array(wanted["face_id"].to_pylist(), pa.string())
        held = lance_table.search().select(["face_id"]).limit(None).to_arrow()["face_id"]
        gone = held.filter(pc.invert(pc.is_in(held, wanted_ids))).to_pylist()
        missing = wanted_ids.filter(pc.invert(pc.is_in(wanted_ids, held.combine_chunks()))).to_pylist()
        if gone:
            report.deleted = self._delete_from(lance_table, gone)
        if missing:
            added = face_rows(self._month_rows(table, shard, READ_COLUMNS))
            added = added.filter(pc.is_in(added["face_id"], pa.array(missing, pa.string())))
            rows = to_index_rows(added, dimension).cast(lance_table.schema)
            lance_table.merge_insert(
                "face_id"
            ).when_matched_update_all().when_not_matched_insert_all().execute(rows)
            report.upserted = rows.num_rows

    def _maintain_index(self, lance_table: Any, state: dict[str, Any], report: SyncReport) -> str:
        rows = report.rows
        indexed = bool(list(lance_table.list_indices()))
        changed = report.upserted or report.deleted or report.mode == "full"
        if rows < ANN_MIN_ROWS and not indexed:
            if changed:
                lance_table.optimize()  # compacts the small fragments each sync adds
            return "flat"
        trained = int(state.get("trained_rows") or 0)
        outdated = state.get("index_type") != ANN_INDEX  # an index of an earlier release (IVF-PQ)
        if not indexed or outdated or report.mode == "full" or rows >= RETRAIN_GROWTH * max(trained, 1):
            partitions = build_ann_index(lance_table, rows)
            state.update(trained_rows=rows, partitions=partitions, index_type=ANN_INDEX)
            state.pop("sub_vectors", None)
            return f"{ANN_INDEX} retrained" if indexed else f"{ANN_INDEX} built"
        if changed:
            lance_table.optimize()  # adds the new rows to the existing index, compacts fragments
            return f"{ANN_INDEX} optimised"
        return ANN_INDEX

    # -- search -----------------------------------------------------------------------------------
    def _reader(self, model_version: str) -> list[tuple[Any, int, bool]]:
        """The tables a search of the version reads, kept open for :data:`READER_REFRESH_S` seconds."""
        cached = self._readers.get(model_version)
        if cached is None or time.monotonic() - cached[1] > READER_REFRESH_S:
            opened = [
                (
                    lance_table,
                    int(lance_table.schema.field("vector").type.list_size),
                    bool(list(lance_table.list_indices())),
                )
                for lance_table in self._open_searched(model_version)
            ]
            cached = (opened, time.monotonic())
            self._readers[model_version] = cached
        return cached[0]

    def search(
        self,
        vectors: np.ndarray,
        *,
        model_version: str,
        k: int = 10,
        quality_only: bool = False,
        nprobes: int = DEFAULT_NPROBES,
        ef: int = DEFAULT_EF,
        refine_factor: int = DEFAULT_REFINE_FACTOR,
        exact: bool = False,
    ) -> list[list[Match]]:
        """The ``k`` most similar faces of ``model_version`` for each row of ``vectors`` (n x D).

        Every shard of the version answers its own top ``k`` (in threads when there are several);
        the answer is the top ``k`` of their union (:func:`merge_top_k`): with exact shards, the same
        faces as one index over all of them. ``similarity`` is the exact cosine (flat search, or ANN
        candidates re-ranked on the stored vectors). ``exact`` forces the flat scan on indexed
        shards (the benchmark's baseline). The tables are opened on the first search of this object
        and reused for :data:`READER_REFRESH_S` seconds; when a purge removed a file of a version they
        hold, they are reopened at the latest version and the search repeated.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        return retrying(  # type: ignore[no-any-return]
            f"search of {table_name(model_version)} in {self.location.vectors_uri}",
            lambda: self._search_once(
                vectors,
                model_version,
                k=k,
                quality_only=quality_only,
                nprobes=nprobes,
                ef=ef,
                refine_factor=refine_factor,
                exact=exact,
            ),
            refresh=lambda: self._readers.pop(model_version, None),
        )

    def _search_once(
        self,
        vectors: np.ndarray,
        model_version: str,
        *,
        k: int,
        quality_only: bool,
        nprobes: int,
        ef: int,
        refine_factor: int,
        exact: bool,
    ) -> list[list[Match]]:
        tables = self._reader(model_version)
        queries = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        dimension = tables[0][1]
        if queries.shape[1] != dimension:
            raise ValueError(
                f"query vectors have {queries.shape[1]} dimensions; model version {model_version!r} "
                f"holds {dimension}-d embeddings (a different model produced the query)"
            )

        if len(tables) > 1 and self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=SEARCH_THREADS, thread_name_prefix="faceidx-shard")
        return search_tables(
            [entry[0] for entry in tables],
            queries,
            model_version,
            indexed=[entry[2] and not exact for entry in tables],
            k=k,
            quality_only=quality_only,
            nprobes=nprobes,
            ef=ef,
            refine_factor=refine_factor,
            exact=exact,
            pool=self._pool,
        )

    # -- erasure and versions -----------------------------------------------------------------------
    def _delete_from(self, lance_table: Any, face_ids: Sequence[str]) -> int:
        """Delete these faces from one table; a chunk none of whose faces it holds commits nothing (a
        Lance delete commits a new version even when it matches no row), so an erasure writes only to
        the shards that hold its faces."""
        deleted = 0
        for start in range(0, len(face_ids), DELETE_CHUNK):
            where = f"face_id IN ({_sql_list(face_ids[start : start + DELETE_CHUNK])})"
            if not lance_table.count_rows(where):
                continue
            result = lance_table.delete(where)
            deleted += int(getattr(result, "num_deleted_rows", 0) or 0)
        return deleted

    def delete(self, face_ids: Sequence[str]) -> int:
        """Remove these faces from every table: every shard of every model version (and an unsharded
        table of an earlier release); the number of rows removed."""
        ids = list(dict.fromkeys(face_ids))
        if not ids:
            return 0
        self._readers.clear()
        return sum(
            retrying(
                f"deleting faces of {name} in {self.location.vectors_uri}",
                lambda name=name: self._delete_from(self.db.open_table(name), ids),  # type: ignore[misc]
            )
            for name in self._table_names()
        )

    def locate(self, face_ids: Sequence[str]) -> dict[str, list[str]]:
        """Every table of the index (every shard of every version) -> those of ``face_ids`` it still
        holds (empty when none): the erasure's verification, by face_id rather than by similarity."""
        ids = list(dict.fromkeys(face_ids))
        held: dict[str, list[str]] = {}
        for name in self._table_names() if ids else []:
            lance_table = self.db.open_table(name)
            for start in range(0, len(ids), DELETE_CHUNK):
                where = f"face_id IN ({_sql_list(ids[start : start + DELETE_CHUNK])})"
                found = lance_table.search().where(where).select(["face_id"]).limit(None).to_arrow()
                held.setdefault(name, []).extend(found["face_id"].to_pylist())
        return {name: sorted(found) for name, found in held.items()}

    def purge_history(self) -> PurgeReport:
        """Drop every old Lance version and every file that still holds a deleted row, in every table.

        ``optimize(cleanup_older_than=0)`` removes old versions, but a deleted row stays in its data file
        (masked by a deletion file) until compaction rewrites the fragment, which Lance does only past
        10% deleted. A table that still has deletion files is therefore rewritten from its live rows
        (its ANN index rebuilt) before the old versions go. Run it under the writer lease (the
        erasure's purge step): the rewrite replaces the table with the rows it read, so a write
        committed meanwhile is detected and the table's purge repeated. Files that no version
        references (a commit another writer is still making) are never deleted: no
        ``delete_unverified``. Searchers holding an old version reopen the latest (see ``search``).
        ``purged_at`` says when the old versions were gone.
        """
        report = PurgeReport()
        self._readers.clear()
        with warnings.catch_warnings():
            # Lance warns that cleanup_older_than=0 breaks concurrent readers: ours reopen on it.
            warnings.simplefilter("ignore", UserWarning)
            for name in self._table_names():
                retrying(
                    f"purge of {name} in {self.location.vectors_uri}",
                    lambda name=name: self._purge_table(name, report),  # type: ignore[misc]
                )
        report.purged_at = datetime.now(UTC).isoformat()
        return report

    def _purge_table(self, name: str, report: PurgeReport) -> None:
        lance_table = self.db.open_table(name)
        before = len(lance_table.list_versions())
        lance_table.optimize(cleanup_older_than=timedelta(0))
        if deletion_rows(lance_table):
            indexed = bool(list(lance_table.list_indices()))
            read_version = lance_table.version
            live = lance_table.to_arrow()
            latest = self.db.open_table(name).version
            if latest != read_version:
                raise CommitConflictError(
                    f"{name} moved from version {read_version} to {latest} while its live rows were read "
                    "for the rewrite"
                )
            lance_table = self.db.create_table(name, data=live, schema=lance_table.schema, mode="overwrite")
            if indexed and live.num_rows >= ANN_MIN_ROWS:
                build_ann_index(lance_table, live.num_rows)
            lance_table.optimize(cleanup_older_than=timedelta(0))
            report.rewritten.append(name)
        report.versions_removed[name] = max(0, before - len(lance_table.list_versions()))

    def drop_version(self, model_version: str) -> None:
        """Delete every table of the version (its shards, an unsharded table) and their sync states
        (the face table is untouched)."""
        legacy, shards = self._layout().get(model_version, (None, {}))
        names = [name for name in [legacy, *shards.values()] if name is not None]
        if not names:
            raise UnknownModelVersionError(model_version, self.versions())
        self._readers.clear()
        for name in names:
            self.db.drop_table(name)
            self._delete_state(name)

    def close(self) -> None:
        """Stop the search threads (a long-lived searcher's owner calls it; they are idle otherwise)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
