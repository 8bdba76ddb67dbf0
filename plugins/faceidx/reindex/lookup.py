"""``only_missing``: which candidates are already indexed, for the model this run indexes with.

Two places hold indexed images, and both are asked with the same :class:`IndexedQuery`
(:mod:`faceidx.store.indexed`):

1. the **landing files** not yet ingested (``<output>/faces/``), read first, six columns each, through
   the AWS layer's S3 hook (ranged reads for big files);
2. the **face table**, read second, at its latest version (:meth:`FaceTable.indexed_images`).

In that order nothing falls between the two: a landing file that ``face_table`` ingests and deletes
after the listing is skipped when it is read (it vanished), and its rows are in the table read after it.

The model: the ``model_pack`` Param's pack (any of its versions); else the face table's current model
version (:meth:`ModelRegistry.resolve_current`, the version search uses); before anything is indexed,
any version. Several versions and none chosen is refused: the run cannot tell which one it indexes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from faceidx.aws.parsing import ListedObject
from faceidx.reindex.index import (
    IndexLocation,
    LandingLookup,
    local_index_files,
    lookup_indexed,
    parse_output_uri,
    partition_day,
)
from faceidx.reindex.selection import ReindexRequestError, earliest_index_day
from faceidx.store.indexed import IndexedModel, IndexedQuery

log = logging.getLogger(__name__)

VANISHED_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


@dataclass(frozen=True)
class IndexedLookup:
    """The answer, and what it cost: the log line and the run's summary are made from it."""

    pairs: set[tuple[str, str]]
    model: IndexedModel
    landing: LandingLookup
    landing_files: int  # listed under faces/, before choosing the days to read
    table_version: int | None  # None: no face table yet

    def summary(self) -> dict[str, Any]:
        return {
            "index_files_read": self.landing.files_read,
            "index_files_vanished": self.landing.files_vanished,
            "table_version": self.table_version,
            "indexed_for": self.model.describe(),
        }


def file_vanished(exc: BaseException) -> bool:
    """The error says a file is gone (local, or S3's NoSuchKey): looked for along the ``__cause__`` chain."""
    from botocore.exceptions import ClientError

    from faceidx.aws.errors import error_code

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, FileNotFoundError):
            return True
        if isinstance(seen, ClientError) and error_code(seen) in VANISHED_CODES:
            return True
        seen = seen.__cause__
    return False


def indexed_model(location: Any, table: Any, model_pack: str | None) -> IndexedModel:
    """The model a run's images must be indexed with to count (see the module docstring)."""
    if model_pack:
        return IndexedModel(model_pack=model_pack)
    from faceidx.store.registry import ModelRegistry, ModelVersionError

    if table is None:  # nothing ingested yet: only a version chosen ahead can be current
        chosen = ModelRegistry(location).document()["current"]
        return IndexedModel(model_version=str(chosen)) if chosen else IndexedModel()
    registry = ModelRegistry(location, table=table)
    try:
        return IndexedModel(model_version=registry.resolve_current().version)
    except ModelVersionError as exc:
        if not registry.versions():
            return IndexedModel()
        raise ReindexRequestError(
            f"only_missing cannot tell which model version this run indexes with: {exc} Or set the "
            "model_pack Param to the pack this run indexes with, or turn only_missing off."
        ) from exc


def _landing(
    s3: Any, location: IndexLocation, query: IndexedQuery, candidates: Sequence[ListedObject]
) -> tuple[LandingLookup, int]:
    if location.bucket is not None:
        listing = s3.list_index_files(location.bucket, location.faces_prefix)
    else:
        listing = local_index_files(location)
    earliest = earliest_index_day(candidates)
    # Files outside the dt= layout are always read: a lookup may cost time, never a missed image.
    chosen = [
        (name, size)
        for name, size in listing
        if (day := partition_day(name)) is None or earliest is None or day >= earliest
    ]
    sizes = dict(chosen)

    def opener(name: str) -> Any:
        if location.is_s3:
            assert location.bucket is not None
            return s3.open_index_file(location.bucket, name, sizes[name])
        return name

    return lookup_indexed(list(sizes), opener, query, vanished=file_vanished), len(listing)


def indexed_images(
    s3: Any,
    *,
    output_uri: str,
    table_location: Any,
    bucket: str,
    candidates: Sequence[ListedObject],
    model_pack: str | None,
) -> IndexedLookup:
    """``(key, bare etag)`` of the candidates already indexed for the run's model, and what was read.

    ``table_location`` is the :class:`faceidx.store.location.IndexLocation` of ``output_uri`` (with the
    AWS connection's credentials on S3)."""
    from faceidx.store.table import FaceTable

    location = parse_output_uri(output_uri)
    table = FaceTable.open_if_exists(table_location)
    model = indexed_model(table_location, table, model_pack)
    query = IndexedQuery(
        bucket=bucket,
        keys=frozenset(obj.key for obj in candidates),
        model=model,
        since=earliest_index_day(candidates),
    )
    landing, listed = _landing(s3, location, query, candidates)  # first: see the module docstring
    pairs = set(landing.pairs)
    version = None
    if table is not None:
        pairs |= table.indexed_images(query)
        version = table.version()
    found = IndexedLookup(pairs, model, landing, listed, version)
    log.info(
        "only_missing, for %s: %s of %s candidate image(s) are already indexed. Face table %s: %s. "
        "Landing files %s: read %s of %s (days from %s on), %s ingested meanwhile",
        model.describe(),
        len(pairs),
        len(candidates),
        table_location.table_uri,
        "none yet" if version is None else f"version {version}",
        location.describe(),
        landing.files_read,
        listed,
        query.since.isoformat() if query.since else "-",
        landing.files_vanished,
    )
    return found
