"""The vector index: one LanceDB table per model version, kept in step with the Delta face table.

* **Layout**: ``location.vectors_uri`` is a LanceDB database (a local folder, or S3 with
  :meth:`IndexLocation.lance_storage_options`). Model version ``V`` lives in the table
  :func:`table_name` ``(V)`` (``faces__<V>``, sanitised), whose schema metadata records ``V`` itself.
  Columns: ``face_id``, ``image_bucket``, ``image_key``, ``face_index``, ``bbox``, ``quality_passed``
  and ``vector`` (``fixed_size_list<float32>[D]``). Versions never mix: a search names one.
* **Sync** (:meth:`VectorIndex.sync`): the first sync loads the version's faces; later syncs apply only
  what changed since the Delta version recorded by the previous sync, read from the table's change
  data feed (``FaceTable.changes_since``). When the feed cannot answer (history vacuumed by
  ``purge_history``, or the table was recreated), the sync falls back to a face_id set difference
  between the table and the index. Both are idempotent (upsert / delete by face_id), so a sync that
  dies before recording its version is simply repeated. The recorded version sits in
  ``<vectors>/_faceidx/sync/<table>.json``.
* **Search**: exact (flat) while a version holds fewer than :data:`ANN_MIN_ROWS` faces; from then on an
  IVF-HNSW-SQ index (cosine): up to :data:`MAX_PARTITIONS` IVF partitions, each its own HNSW graph over
  8-bit scalar-quantised vectors. Later syncs extend it with ``optimize()`` and retrain it when the
  version has doubled since training. ANN candidates are re-ranked on the full vectors
  (``refine_factor``), so the similarity returned is the exact cosine of the stored embedding.
  ``make bench-search`` chose this index over IVF-PQ (docs/search.md).
* **Erasure**: :meth:`VectorIndex.delete` removes face_ids from every version;
  :meth:`VectorIndex.purge_history` then removes the old Lance versions, and rewrites a table whose
  files still hold deleted rows (Lance keeps them behind a deletion file until compaction), so the
  vectors are gone from disk, not only hidden. It never deletes a file that no version references
  (no ``delete_unverified``): such a file may belong to a commit another writer is still making.
* **Concurrency**: every write is retried on a commit conflict or a file cleaned up under it
  (:mod:`faceidx.store.retry`), reopening the table first; a sync is repeated whole (it is
  idempotent). A search reopens its table at the latest version when a file of the version it holds
  is gone (a purge ran), and at most :data:`READER_REFRESH_S` seconds after opening it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from faceidx.store.retry import CommitConflictError, retrying

if TYPE_CHECKING:
    import pyarrow as pa

    from faceidx.store.location import IndexLocation

log = logging.getLogger(__name__)

TABLE_PREFIX = "faces__"
VERSION_METADATA_KEY = b"faceidx.model_version"
# Below this many faces a version is searched exactly (a flat scan of 50k x 512 floats is ~10 ms);
# from this size on it gets an IVF-HNSW-SQ index.
ANN_MIN_ROWS = 50_000
ANN_INDEX = "ivf_hnsw_sq"  # the SyncReport's name for it
# One HNSW graph per FACES_PER_PARTITION faces, at most MAX_PARTITIONS graphs (1,000,000 faces: 16).
FACES_PER_PARTITION = 62_500
MAX_PARTITIONS = 16
HNSW_M = 20  # graph neighbours per face
HNSW_EF_CONSTRUCTION = 150
# Retrain the IVF centroids and the graphs once a version holds this many times its training size.
RETRAIN_GROWTH = 2.0
# Query-time defaults for an indexed version, measured by `make bench-search` on 10^6 faces:
# every partition probed, 100 graph candidates each, k x 4 candidates re-ranked exactly.
DEFAULT_NPROBES = MAX_PARTITIONS
DEFAULT_EF = 100
DEFAULT_REFINE_FACTOR = 4
DELETE_CHUNK = 1000
# A searcher's open table is checked out again at the latest version after this many seconds, so a
# long-lived searcher sees other processes' writes and erasures (and at once after a purge).
READER_REFRESH_S = 10.0
# What the index keeps from the face table, besides the embedding.
FACE_COLUMNS = ("face_id", "image_bucket", "image_key", "face_index", "bbox", "quality_passed")
READ_COLUMNS = [*FACE_COLUMNS, "embedding", "status"]


class UnknownModelVersionError(LookupError):
    """The vector index holds no table for this model version."""

    def __init__(self, model_version: str, known: Iterable[str]) -> None:
        names = ", ".join(sorted(known)) or "none"
        super().__init__(
            f"model version {model_version!r} is not in the vector index (it holds: {names}); "
            "run a sync for it (faceidx table sync / the face_table DAG) or search another version"
        )
        self.model_version = model_version


class FaceSource(Protocol):
    """What :meth:`VectorIndex.sync` reads from the face table (``faceidx.store.table.FaceTable``)."""

    def read(
        self, model_version: str | None = None, columns: list[str] | None = None, filter: str | None = None
    ) -> pa.Table: ...

    def version(self) -> int: ...

    def changes_since(self, version: int) -> pa.Table: ...


@dataclass(frozen=True)
class Match:
    face_id: str
    image_bucket: str
    image_key: str
    face_index: int
    bbox: tuple[float, ...]
    similarity: float
    model_version: str
    quality_passed: bool | None = None


@dataclass
class SyncReport:
    model_version: str
    mode: str  # "full" | "cdf" | "diff" | "unchanged"
    from_delta_version: int | None
    to_delta_version: int
    upserted: int = 0
    deleted: int = 0
    rows: int = 0
    index: str = "flat"  # "flat", or ANN_INDEX alone or followed by "built", "optimised", "retrained"
    seconds: float = 0.0
    note: str = ""

    def pairs(self) -> list[tuple[str, Any]]:
        return [
            ("model version", self.model_version),
            ("mode", self.mode),
            ("delta version", f"{self.from_delta_version} -> {self.to_delta_version}"),
            ("faces upserted", self.upserted),
            ("faces deleted", self.deleted),
            ("faces in the index", self.rows),
            ("search", self.index),
            ("seconds", round(self.seconds, 3)),
            ("note", self.note or "-"),
        ]


@dataclass
class PurgeReport:
    versions_removed: dict[str, int] = field(default_factory=dict)  # table -> old versions removed
    rewritten: list[str] = field(default_factory=list)  # tables rewritten to drop deleted rows
    purged_at: str = ""  # ISO 8601 UTC: when the last table's old versions were gone


def table_name(model_version: str) -> str:
    """``faces__<version>``: characters outside ``[A-Za-z0-9_.-]`` become ``_``, plus a short hash
    of the exact version when anything was replaced, so two versions never share a table."""
    if not model_version:
        raise ValueError("a model version is required")
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", model_version)
    if clean != model_version:
        clean = f"{clean}_{hashlib.sha256(model_version.encode()).hexdigest()[:8]}"
    return TABLE_PREFIX + clean


def ann_partitions(rows: int) -> int:
    """IVF partitions of the HNSW index: one per :data:`FACES_PER_PARTITION` faces, 1 to
    :data:`MAX_PARTITIONS`. Each partition is searched as its own graph, so few large partitions keep
    both the probes per query and the share of a face's true neighbours outside the probed ones small."""
    return int(min(MAX_PARTITIONS, max(1, math.ceil(rows / FACES_PER_PARTITION))))


def face_rows(data: pa.Table) -> pa.Table:
    """Only the rows that are faces with an embedding (image-level and error rows carry none)."""
    import pyarrow.compute as pc

    mask = pc.and_(pc.is_valid(data["face_index"]), pc.is_valid(data["embedding"]))
    if "status" in data.column_names:
        mask = pc.and_(mask, pc.equal(pc.fill_null(data["status"], "ok"), "ok"))
    return data.filter(mask)


def latest_changes(changes: pa.Table) -> tuple[pa.Table, list[str]]:
    """Collapse a change feed to its net effect per face_id: (rows to upsert, face_ids to delete).

    The last change of each face_id (by ``_commit_version``, then feed order) decides: an insert or
    update post-image is upserted, a delete removes it; update pre-images are ignored.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if "_change_type" not in changes.column_names or changes.num_rows == 0:
        return changes.slice(0, 0), []
    relevant = changes.filter(
        pc.is_in(changes["_change_type"], pa.array(["insert", "update_postimage", "delete"]))
    )
    if relevant.num_rows == 0:
        return relevant, []
    order = np.lexsort(
        (np.arange(relevant.num_rows), relevant["_commit_version"].to_numpy(zero_copy_only=False))
    )
    face_ids = relevant["face_id"].to_pylist()
    last: dict[str, int] = {}
    for position in order:
        last[face_ids[position]] = int(position)
    keep = sorted(last.values())
    final = relevant.take(pa.array(keep, type=pa.int64()))
    deleted_mask = pc.equal(final["_change_type"], "delete")
    deletes = final.filter(deleted_mask)["face_id"].to_pylist()
    upserts = face_rows(final.filter(pc.invert(deleted_mask)))
    return upserts, deletes


def plain_arrow(data: Any) -> pa.Table:
    """Any Arrow table (deltalake 1.x hands out arro3 tables) as pyarrow, view types made plain
    (the change data feed reads strings as ``string_view``, which few compute kernels take)."""
    import pyarrow as pa

    table = data if isinstance(data, pa.Table) else pa.table(data)
    fields = []
    for item in table.schema:
        kind = item.type
        if pa.types.is_string_view(kind) or pa.types.is_large_string(kind):
            kind = pa.string()
        elif pa.types.is_binary_view(kind):
            kind = pa.binary()
        elif pa.types.is_list_view(kind) or pa.types.is_large_list(kind):
            kind = pa.list_(kind.value_type)
        fields.append(pa.field(item.name, kind, item.nullable))
    schema = pa.schema(fields, metadata=table.schema.metadata)
    return table if schema.equals(table.schema) else table.cast(schema)


def to_index_rows(data: pa.Table, dimension: int | None = None) -> pa.Table:
    """Face-table rows -> the index's columns, ``embedding`` as ``vector`` ``fixed_size_list[D]``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    embedding = data["embedding"].combine_chunks()
    if pa.types.is_fixed_size_list(embedding.type):
        size = embedding.type.list_size
        values = embedding.flatten()
    else:
        lengths = pc.list_value_length(embedding).to_numpy(zero_copy_only=False)
        size = int(lengths[0]) if len(lengths) else (dimension or 0)
        if len(lengths) and not (lengths == size).all():
            raise ValueError(
                f"embeddings of mixed lengths {sorted(set(lengths.tolist()))} in one model version"
            )
        values = embedding.flatten()
    if dimension is not None and data.num_rows and size != dimension:
        raise ValueError(f"embeddings have {size} dimensions, the index holds {dimension}")
    size = dimension or size
    vector = pa.FixedSizeListArray.from_arrays(pc.cast(values, pa.float32()), size)
    columns: dict[str, Any] = {}
    for name in FACE_COLUMNS:
        if name in data.column_names:
            columns[name] = data[name].combine_chunks()
        elif name == "quality_passed":
            columns[name] = pa.nulls(data.num_rows, pa.bool_())
        else:
            raise ValueError(f"the face table rows lack the column {name!r}")
    columns["vector"] = vector
    return pa.table(columns, schema=index_schema(size, ""))


def index_schema(dimension: int, model_version: str) -> pa.Schema:
    import pyarrow as pa

    metadata = {VERSION_METADATA_KEY: model_version.encode()} if model_version else None
    return pa.schema(
        [
            pa.field("face_id", pa.string(), nullable=False),
            pa.field("image_bucket", pa.string()),
            pa.field("image_key", pa.string()),
            pa.field("face_index", pa.int32()),
            pa.field("bbox", pa.list_(pa.float32())),
            pa.field("quality_passed", pa.bool_()),
            pa.field("vector", pa.list_(pa.float32(), dimension)),
        ],
        metadata=metadata,
    )


def _sql_list(values: Sequence[str]) -> str:
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


class VectorIndex:
    """The LanceDB index of one :class:`IndexLocation`. Not thread-safe; one writer at a time."""

    def __init__(self, location: IndexLocation) -> None:
        self.location = location
        self._db: Any = None
        # model version -> (open table, dimension, indexed, opened at) for repeated searches; our
        # writes clear it, a missing file or READER_REFRESH_S seconds renew an entry
        self._readers: dict[str, tuple[Any, int, bool, float]] = {}

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

    def versions(self) -> dict[str, int]:
        """Model version -> faces in the index."""
        found: dict[str, int] = {}
        for name in self._table_names():
            table = self.db.open_table(name)
            metadata = table.schema.metadata or {}
            version = metadata.get(VERSION_METADATA_KEY, name.removeprefix(TABLE_PREFIX).encode()).decode()
            found[version] = int(table.count_rows())
        return found

    def _open(self, model_version: str) -> Any:
        name = table_name(model_version)
        if name not in self._table_names():
            raise UnknownModelVersionError(model_version, self.versions())
        return self.db.open_table(name)

    def dimension(self, model_version: str) -> int:
        return int(self._open(model_version).schema.field("vector").type.list_size)

    def is_indexed(self, model_version: str) -> bool:
        return bool(list(self._open(model_version).list_indices()))

    # -- sync state -------------------------------------------------------------------------------
    def _state_uri(self, model_version: str) -> str:
        return f"{self.location.vectors_uri.rstrip('/')}/_faceidx/sync/{table_name(model_version)}.json"

    def sync_state(self, model_version: str) -> dict[str, Any] | None:
        state = self.location.read_json(self._state_uri(model_version))
        return state if isinstance(state, dict) else None

    # -- sync -------------------------------------------------------------------------------------
    def sync(self, table: FaceSource, model_version: str) -> SyncReport:
        """Bring the version's index to the face table's current snapshot (see the module docstring).

        A commit conflict, or a file cleaned up under it, repeats the whole sync from the recorded
        state (it is idempotent)."""
        report: SyncReport = retrying(
            f"vector sync of {table_name(model_version)} in {self.location.vectors_uri}",
            lambda: self._sync_once(table, model_version),
            refresh=self._readers.clear,
        )
        return report

    def _sync_once(self, table: FaceSource, model_version: str) -> SyncReport:
        started = time.perf_counter()
        self._readers.clear()
        target = int(table.version())
        state = self.sync_state(model_version) or {}
        recorded = state.get("delta_version")
        exists = table_name(model_version) in self._table_names()
        report = SyncReport(model_version, "full", recorded, target)
        if not exists or recorded is None or int(recorded) > target:
            if exists and recorded is not None:
                report.note = f"the face table is at {target}, below the recorded {recorded}: reloaded"
            self._load_full(table, model_version, report)
        elif int(recorded) == target:
            report.mode = "unchanged"
        else:
            self._apply_changes(table, model_version, int(recorded), report)
        lance_table = self._open_or_none(model_version)
        if lance_table is not None:
            report.rows = int(lance_table.count_rows())
            report.index = self._maintain_index(lance_table, state, report)
        state.update(
            model_version=model_version,
            delta_version=target,
            synced_at=datetime.now(UTC).isoformat(),
            rows=report.rows,
        )
        self.location.write_json(self._state_uri(model_version), state)
        report.seconds = time.perf_counter() - started
        return report

    def _reader(self, model_version: str) -> tuple[Any, int, bool]:
        """The version's table for searching, kept open for :data:`READER_REFRESH_S` seconds."""
        cached = self._readers.get(model_version)
        if cached is None or time.monotonic() - cached[3] > READER_REFRESH_S:
            lance_table = self._open(model_version)
            cached = (
                lance_table,
                int(lance_table.schema.field("vector").type.list_size),
                bool(list(lance_table.list_indices())),
                time.monotonic(),
            )
            self._readers[model_version] = cached
        return cached[0], cached[1], cached[2]

    def _open_or_none(self, model_version: str) -> Any:
        name = table_name(model_version)
        return self.db.open_table(name) if name in self._table_names() else None

    def _load_full(self, table: FaceSource, model_version: str, report: SyncReport) -> None:

        data = face_rows(plain_arrow(table.read(model_version=model_version, columns=READ_COLUMNS)))
        if data.num_rows == 0:
            known = table.model_versions() if hasattr(table, "model_versions") else {}
            if model_version not in known and known:
                raise UnknownModelVersionError(model_version, known)
            report.note = report.note or "the face table holds no face of this version"
            return
        rows = to_index_rows(data)
        dimension = rows.schema.field("vector").type.list_size
        schema = index_schema(dimension, model_version)
        self.db.create_table(
            table_name(model_version), data=rows.cast(schema), schema=schema, mode="overwrite"
        )
        report.upserted = rows.num_rows

    def _apply_changes(
        self, table: FaceSource, model_version: str, recorded: int, report: SyncReport
    ) -> None:
        try:
            changes = plain_arrow(table.changes_since(recorded))
        except Exception as error:  # noqa: BLE001 - delta-rs raises a bare Exception when files are gone
            log.warning(
                "the change data feed of the face table cannot answer since version %s (%s): "
                "syncing %s by face_id set difference instead",
                recorded,
                error,
                model_version,
            )
            report.note = f"change data feed unusable: {str(error).splitlines()[0][:160]}"
            self._apply_difference(table, model_version, report)
            return
        report.mode = "cdf"
        import pyarrow.compute as pc

        if "model_version" in changes.column_names:
            changes = changes.filter(pc.equal(changes["model_version"], model_version))
        upserts, deletes = latest_changes(changes)
        lance_table = self._open(model_version)
        dimension = int(lance_table.schema.field("vector").type.list_size)
        if deletes:
            report.deleted = self._delete_from(lance_table, deletes)
        if upserts.num_rows:
            rows = to_index_rows(upserts, dimension).cast(lance_table.schema)
            lance_table.merge_insert(
                "face_id"
            ).when_matched_update_all().when_not_matched_insert_all().execute(rows)
            report.upserted = rows.num_rows

    def _apply_difference(self, table: FaceSource, model_version: str, report: SyncReport) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        report.mode = "diff"
        lance_table = self._open(model_version)
        dimension = int(lance_table.schema.field("vector").type.list_size)
        wanted = face_rows(
            pa.table(
                table.read(
                    model_version=model_version, columns=["face_id", "face_index", "embedding", "status"]
                )
            )
        )
        wanted_ids = pa.array(wanted["face_id"].to_pylist(), pa.string())
        held = lance_table.search().select(["face_id"]).limit(None).to_arrow()["face_id"]
        gone = held.filter(pc.invert(pc.is_in(held, wanted_ids))).to_pylist()
        missing = wanted_ids.filter(pc.invert(pc.is_in(wanted_ids, held.combine_chunks()))).to_pylist()
        if gone:
            report.deleted = self._delete_from(lance_table, gone)
        if missing:
            added = face_rows(plain_arrow(table.read(model_version=model_version, columns=READ_COLUMNS)))
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

        ``similarity`` is the exact cosine (flat search, or ANN candidates re-ranked on the stored
        vectors). ``exact`` forces the flat scan on an indexed version (the benchmark's baseline).
        The version's table is opened on the first search of this object and reused for
        :data:`READER_REFRESH_S` seconds; when a purge removed a file of the version it holds, it is
        reopened at the latest version and the search repeated.
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
        lance_table, dimension, has_index = self._reader(model_version)
        queries = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if queries.shape[1] != dimension:
            raise ValueError(
                f"query vectors have {queries.shape[1]} dimensions; model version {model_version!r} "
                f"holds {dimension}-d embeddings (a different model produced the query)"
            )
        indexed = has_index and not exact
        results: list[list[Match]] = []
        for query in queries:
            builder = lance_table.search(query, vector_column_name="vector").distance_type("cosine")
            if quality_only:
                builder = builder.where("quality_passed = true", prefilter=True)
            if indexed:
                builder = builder.nprobes(nprobes).ef(max(ef, k)).refine_factor(refine_factor)
            elif exact:
                builder = builder.bypass_vector_index()
            found = builder.select([*FACE_COLUMNS, "_distance"]).limit(k).to_arrow().to_pylist()
            results.append([self._match(row, model_version) for row in found])
        return results

    @staticmethod
    def _match(row: dict[str, Any], model_version: str) -> Match:
        return Match(
            face_id=row["face_id"],
            image_bucket=row["image_bucket"],
            image_key=row["image_key"],
            face_index=int(row["face_index"]),
            bbox=tuple(float(v) for v in (row["bbox"] or ())),
            similarity=min(1.0, float(1.0 - row["_distance"])),
            model_version=model_version,
            quality_passed=row.get("quality_passed"),
        )

    # -- erasure and versions -----------------------------------------------------------------------
    def _delete_from(self, lance_table: Any, face_ids: Sequence[str]) -> int:
        deleted = 0
        for start in range(0, len(face_ids), DELETE_CHUNK):
            chunk = face_ids[start : start + DELETE_CHUNK]
            result = lance_table.delete(f"face_id IN ({_sql_list(chunk)})")
            deleted += int(getattr(result, "num_deleted_rows", 0) or 0)
        return deleted

    def delete(self, face_ids: Sequence[str]) -> int:
        """Remove these faces from every model version; the number of rows removed."""
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

    def purge_history(self) -> PurgeReport:
        """Drop every old Lance version and every file that still holds a deleted row.

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
        if _deletion_rows(lance_table):
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
        """Delete the version's table and its sync state (the face table is untouched)."""
        self._open(model_version)
        self._readers.clear()
        self.db.drop_table(table_name(model_version))
        uri = self._state_uri(model_version)
        if uri.startswith("s3://"):
            from faceidx.common.uris import split_s3_uri

            parts = split_s3_uri(uri)
            if parts is not None:
                self.location.s3_client().delete_object(Bucket=parts[0], Key=parts[1])
        else:
            from pathlib import Path

            Path(uri).unlink(missing_ok=True)


def build_ann_index(lance_table: Any, rows: int, *, num_partitions: int | None = None) -> int:
    """(Re)build the cosine IVF-HNSW-SQ index of ``vector``; returns its partition count."""
    from lancedb.index import HnswSq

    partitions = int(num_partitions or ann_partitions(rows))
    config = HnswSq(
        distance_type="cosine", num_partitions=partitions, m=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION
    )
    lance_table.create_index("vector", config=config, replace=True)
    return partitions


def _deletion_rows(lance_table: Any) -> int:
    metadata = lance_table.list_versions()[-1].get("metadata") or {}
    return int(metadata.get("total_deletion_file_rows", 0) or 0)
