"""Model versions: which ones the index holds, which one is current, and the explicit steps between.

Every row of the face table carries the ``model_version`` that produced it, and the table is
partitioned by it, so a new model pack is indexed *beside* the old one. Search and comparison never
mix versions: they ask :meth:`ModelRegistry.current` which one to use.

The registry is one small JSON document at ``<output>/table/_faceidx/models.json``::

    {"current": "buffalo_l-0123456789ab",
     "known": {"buffalo_l-0123456789ab": {"first_seen": "2026-12-02T00:10:00+00:00"}},
     "history": [{"at": "...", "actor": "alice", "action": "use",
                  "from": null, "to": "buffalo_l-0123456789ab"}],
     "calibrations": {"buffalo_l-0123456789ab": {"computed_at": "...", "rows": [...], ...}}}

Versions known = the table's ``model_version`` values and the registry's ``known``. Switching
(:meth:`~ModelRegistry.use`) and dropping (:meth:`~ModelRegistry.drop`) are appended to ``history``.
``calibrations`` holds each version's similarity -> false-accept-rate table
(:mod:`faceidx.store.calibration`), refreshed by :meth:`~ModelRegistry.calibrate` when a version is
registered (``use``) and by every ``face_identities`` run.

This module imports nothing heavy (search imports it): the face table and vector index are imported
only where a method needs them.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from faceidx.store.location import IndexLocation

if TYPE_CHECKING:
    from faceidx.store.calibration import Calibration

log = logging.getLogger(__name__)

ACTION_USE = "use"
ACTION_DROP = "drop"


class ModelVersionError(LookupError):
    """A version that is unknown, ambiguous or not allowed for the step; the message lists the choices."""


@dataclass(frozen=True)
class CurrentVersion:
    """The version search uses, and whether it was chosen (``explicit``) or is the only one there is."""

    version: str
    explicit: bool

    def describe(self) -> str:
        how = "chosen with `faceidx models use`" if self.explicit else "the only version (never chosen)"
        return f"{self.version} ({how})"


@dataclass(frozen=True)
class VersionStats:
    """One row of ``faceidx models list``."""

    version: str
    rows: int
    faces: int
    images: int
    first_indexed: str | None
    last_indexed: str | None
    current: bool

    def row(self) -> tuple[Any, ...]:
        return (
            "*" if self.current else "",
            self.version,
            self.rows,
            self.faces,
            self.images,
            self.first_indexed,
            self.last_indexed,
        )


STATS_HEADERS = ("current", "model_version", "rows", "faces", "images", "first indexed", "last indexed")


def _now() -> str:
    return datetime.now(UTC).isoformat()


class ModelRegistry:
    """The model versions of one index (``location.registry_uri``)."""

    def __init__(
        self,
        location: IndexLocation,
        *,
        table: Any = None,
        index_factory: Callable[[IndexLocation], Any] | None = None,
    ) -> None:
        self.location = location
        self._table = table
        self._index_factory = index_factory

    # -- the parts (imported lazily) -------------------------------------------------------------
    @property
    def table(self) -> Any:
        if self._table is None:
            from faceidx.store.table import FaceTable

            self._table = FaceTable.open(self.location)
        return self._table

    def _index(self) -> Any:
        if self._index_factory is not None:
            return self._index_factory(self.location)
        from faceidx.store.vectors import VectorIndex

        return VectorIndex(self.location)

    # -- the document ---------------------------------------------------------------------------
    def document(self) -> dict[str, Any]:
        found = self.location.read_json(self.location.registry_uri) or {}
        return {
            "current": found.get("current"),
            "known": dict(found.get("known") or {}),
            "history": list(found.get("history") or []),
            "calibrations": dict(found.get("calibrations") or {}),
        }

    def _save(self, document: dict[str, Any]) -> None:
        self.location.write_json(self.location.registry_uri, document)

    def history(self) -> list[dict[str, Any]]:
        return self.document()["history"]

    # -- the calibrated thresholds ----------------------------------------------------------------
    def calibration(self, version: str) -> Calibration | None:
        """The version's similarity -> FAR table, None before it was first computed."""
        from faceidx.store.calibration import Calibration

        found = self.document()["calibrations"].get(version)
        return Calibration.from_dict(found) if found else None

    def calibrate(self, version: str) -> Calibration:
        """Compute the version's table from the face table (sampled) and store it; under the lease."""
        from faceidx.store.calibration import compute_calibration

        calibration = compute_calibration(self.location, version, table=self.table)
        self.store_calibration(calibration)
        log.info(
            "calibrated model version %s: %s impostor pair(s) (%s from %s photo(s), %s across persons)",
            version,
            calibration.pairs,
            calibration.same_image_pairs,
            calibration.images,
            calibration.cross_person_pairs,
        )
        return calibration

    def store_calibration(self, calibration: Calibration) -> None:
        """Keep ``calibration`` as its version's table (replacing the one before)."""
        document = self.document()
        document["calibrations"][calibration.model_version] = calibration.to_dict()
        self._save(document)

    # -- what there is --------------------------------------------------------------------------
    def versions(self) -> list[str]:
        """Every version known: in the table (with rows) or recorded in the registry."""
        in_table = {str(v) for v, rows in self.table.model_versions().items() if rows}
        return sorted(in_table | set(self.document()["known"]))

    def list(self) -> list[str]:
        return self.versions()

    def resolve_current(self) -> CurrentVersion:
        """The current version: the chosen one; else the only one there is; else an error."""
        chosen = self.document()["current"]
        versions = self.versions()
        if chosen:
            if chosen not in versions:
                raise ModelVersionError(
                    f"the registry's current model version {chosen} has no rows and is not known any more; "
                    f"choose one of {', '.join(versions) or '(none)'} with `faceidx models use VERSION`"
                )
            return CurrentVersion(chosen, explicit=True)
        if len(versions) == 1:
            return CurrentVersion(versions[0], explicit=False)
        if not versions:
            raise ModelVersionError(
                "the index holds no model version yet: index images (face_indexing) and ingest them "
                "(face_table) first"
            )
        raise ModelVersionError(
            f"the index holds {len(versions)} model versions and none was chosen: {', '.join(versions)}. "
            "Choose one with `faceidx models use VERSION` (or the face_models DAG)."
        )

    def current(self) -> str:
        """The version search and comparison use. Says so in the log when it was never chosen."""
        current = self.resolve_current()
        if not current.explicit:
            log.info("model version %s is current: it is the only one (none was chosen)", current.version)
        return current.version

    # -- the steps --------------------------------------------------------------------------------
    def _unknown(self, version: str, versions: builtins.list[str]) -> ModelVersionError:
        return ModelVersionError(
            f"model version {version!r} is not in the index; known: {', '.join(versions) or '(none)'}"
        )

    def use(self, version: str, actor: str) -> dict[str, Any]:
        """Make ``version`` current; an explicit step appended to the history (who, when, from, to)."""
        versions = self.versions()
        if version not in versions:
            raise self._unknown(version, versions)
        document = self.document()
        entry = {
            "at": _now(),
            "actor": actor,
            "action": ACTION_USE,
            "from": document["current"],
            "to": version,
        }
        document["current"] = version
        document["known"].setdefault(version, {"first_seen": entry["at"]})
        document["history"].append(entry)
        self._save(document)
        log.info("model version %s -> %s (by %s)", entry["from"], version, actor)
        self.calibrate(version)  # a version registered: its threshold table, from what it holds now
        return entry

    def drop(self, version: str, actor: str) -> dict[str, Any]:
        """Remove a version's rows (and purge them from history) and its vector table. Never the
        current version."""
        versions = self.versions()
        if version not in versions:
            raise self._unknown(version, versions)
        try:
            current: str | None = self.resolve_current().version
        except ModelVersionError:
            current = None
        if version == current:
            others = [v for v in versions if v != version]
            raise ModelVersionError(
                f"model version {version} is the current one and cannot be dropped. "
                + (
                    f"Switch first with `faceidx models use` ({', '.join(others)}), then drop it."
                    if others
                    else "It is the only version."
                )
            )
        rows = int(self.table.delete(f"model_version = '{version.replace(chr(39), chr(39) * 2)}'") or 0)
        purged = list(self.table.purge_history() or [])
        index = self._index()
        try:
            index.drop_version(version)
            vectors = True
        except LookupError:  # never synced into the vector index
            vectors = False
        index.purge_history()
        document = self.document()
        entry = {
            "at": _now(),
            "actor": actor,
            "action": ACTION_DROP,
            "from": version,
            "to": None,
            "rows": rows,
            "files_purged": len(purged),
            "vector_table_dropped": vectors,
        }
        document["known"].pop(version, None)
        document["calibrations"].pop(version, None)
        document["history"].append(entry)
        self._save(document)
        log.info(
            "dropped model version %s: %s row(s), %s file(s) purged (by %s)",
            version,
            rows,
            len(purged),
            actor,
        )
        return entry

    # -- the table of versions --------------------------------------------------------------------
    def stats(self) -> builtins.list[VersionStats]:
        """Faces, images and first/last indexed per version, and which one is current."""
        import pyarrow.compute as pc

        try:
            current: str | None = self.resolve_current().version
        except ModelVersionError:
            current = None
        data = self.table.read(columns=["model_version", "image_id", "face_index", "indexed_at"])
        by_version: dict[str, VersionStats] = {}
        if data.num_rows:
            grouped = data.group_by("model_version").aggregate(
                [
                    ("image_id", "count"),
                    ("image_id", "count_distinct"),
                    ("indexed_at", "min"),
                    ("indexed_at", "max"),
                ]
            )
            faces = (
                data.filter(pc.is_valid(data["face_index"]))
                .group_by("model_version")
                .aggregate([("face_index", "count")])
            )
            face_counts = dict(
                zip(faces["model_version"].to_pylist(), faces["face_index_count"].to_pylist(), strict=True)
            )
            for row in grouped.to_pylist():
                version = str(row["model_version"])
                by_version[version] = VersionStats(
                    version=version,
                    rows=int(row["image_id_count"]),
                    faces=int(face_counts.get(version, 0)),
                    images=int(row["image_id_count_distinct"]),
                    first_indexed=_iso(row["indexed_at_min"]),
                    last_indexed=_iso(row["indexed_at_max"]),
                    current=version == current,
                )
        for version in self.versions():
            by_version.setdefault(version, VersionStats(version, 0, 0, 0, None, None, version == current))
        return [by_version[v] for v in sorted(by_version)]


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else (None if value is None else str(value))
