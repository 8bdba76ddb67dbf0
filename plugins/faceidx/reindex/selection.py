"""Which objects one face_reindex run queues. Pure functions over plain data: no Airflow, no boto3.

A run covers one data interval ``[start, end)``. The objects come from one S3 listing, under a prefix
rendered from the interval, and are filtered in this order (the first reason that applies is counted):

==================  ===========================================================================
``not_an_image``    the key does not end with one of the suffixes (case-insensitive)
``empty_object``    size 0: folder markers (``photos/``) and empty uploads the worker would reject
``archived``        GLACIER / DEEP_ARCHIVE storage: GetObject fails until the object is restored
``outside_interval`` LastModified is not in ``[start, end)`` (only when selecting by LastModified)
``already_indexed`` the face table or a landing file holds an ``ok`` row with the same bucket, key and
                    ETag for the run's model (``only_missing``; :mod:`faceidx.store.indexed`)
==================  ===========================================================================
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from faceidx.aws.parsing import ListedObject
from faceidx.common.uris import normalise_etag
from faceidx.reindex import SELECT_AUTO, SELECT_LAST_MODIFIED, SELECT_MODES, SELECT_PREFIX

__all__ = ["normalise_etag"]  # re-exported: the reindex modules import it from here

SKIP_NOT_AN_IMAGE = "not_an_image"
SKIP_EMPTY = "empty_object"
SKIP_ARCHIVED = "archived"
SKIP_OUTSIDE_INTERVAL = "outside_interval"
SKIP_ALREADY_INDEXED = "already_indexed"
SKIP_REASONS = (SKIP_NOT_AN_IMAGE, SKIP_EMPTY, SKIP_ARCHIVED, SKIP_OUTSIDE_INTERVAL, SKIP_ALREADY_INDEXED)

# GetObject on these fails with InvalidObjectState until a restore; GLACIER_IR reads like STANDARD.
ARCHIVED_STORAGE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})

PREFIX_VARIABLES = ("ds", "ds_nodash", "data_interval_start", "data_interval_end")


class ReindexRequestError(ValueError):
    """A Param or the run itself cannot work; the message says which and how to fix it."""


@dataclass(frozen=True)
class Interval:
    """A run's data interval, ``[start, end)``, both timezone-aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ReindexRequestError(f"data interval {self.start} - {self.end} must be timezone-aware")
        if self.end < self.start:
            raise ReindexRequestError(f"data interval ends ({self.end}) before it starts ({self.start})")

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def describe(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def interval_from_context(start: datetime | None, end: datetime | None) -> Interval:
    """The run's data interval, or an error saying how to start a run that has one."""
    if start is None or end is None:
        raise ReindexRequestError(
            "this run has no data interval (it was triggered without a logical date). Use Trigger -> "
            "Backfill in the UI, POST /api/v2/backfills, or trigger with a logical date."
        )
    return Interval(start, end)


def render_prefix(template: str, interval: Interval) -> str:
    """Render a prefix template such as ``uploads/{{ ds }}/`` with the run's data interval.

    ``ds`` / ``ds_nodash`` are the day of the interval's *start* (for scheduled and backfill runs that
    is Airflow's own ``ds``), so both ways of selecting cover the same day. ``data_interval_start``
    and ``data_interval_end`` are datetimes (``{{ data_interval_start.strftime('%Y/%m/%d') }}``).
    """
    if "{{" not in template and "{%" not in template:
        return template
    from jinja2 import StrictUndefined, TemplateError
    from jinja2.sandbox import SandboxedEnvironment

    environment = SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
    )
    variables = {
        "ds": interval.start.strftime("%Y-%m-%d"),
        "ds_nodash": interval.start.strftime("%Y%m%d"),
        "data_interval_start": interval.start,
        "data_interval_end": interval.end,
    }
    try:
        rendered = environment.from_string(template).render(**variables)
    except TemplateError as exc:
        raise ReindexRequestError(
            f"prefix template {template!r} does not render: {exc}. Available: {', '.join(PREFIX_VARIABLES)}."
        ) from exc
    if "\n" in rendered:
        raise ReindexRequestError(f"prefix template {template!r} rendered a line break: {rendered!r}")
    return rendered


def choose_mode(select_by: str, prefix_template: str) -> str:
    """``auto``: a prefix that uses the run's dates selects the interval by itself (``prefix``);
    a static or empty prefix is filtered by LastModified (``last_modified``)."""
    if select_by not in SELECT_MODES:
        raise ReindexRequestError(f"select_by {select_by!r} is not one of {', '.join(SELECT_MODES)}")
    if select_by != SELECT_AUTO:
        return select_by
    return SELECT_PREFIX if ("{{" in prefix_template or "{%" in prefix_template) else SELECT_LAST_MODIFIED


def normalise_suffixes(suffixes: Iterable[str]) -> tuple[str, ...]:
    cleaned = tuple(sorted({s.strip().lower() for s in suffixes if s and s.strip()}))
    if not cleaned:
        raise ReindexRequestError(
            "suffixes is empty: give the image extensions to queue, e.g. ['.jpg', '.png']"
        )
    return cleaned


@dataclass
class Selection:
    """What a listing came to: counts by skip reason, and the objects to queue in listing order."""

    found: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    selected: list[ListedObject] = field(default_factory=list)


def skip_reason(obj: ListedObject, *, suffixes: Sequence[str], interval: Interval | None) -> str | None:
    """Why ``obj`` is not queued, or ``None``. ``interval`` is ``None`` when the prefix selects."""
    if not obj.key.lower().endswith(tuple(suffixes)):
        return SKIP_NOT_AN_IMAGE
    if obj.size <= 0:
        return SKIP_EMPTY
    if obj.storage_class.upper() in ARCHIVED_STORAGE_CLASSES:
        return SKIP_ARCHIVED
    if interval is not None and not interval.contains(obj.last_modified):
        return SKIP_OUTSIDE_INTERVAL
    return None


def select_objects(
    objects: Iterable[ListedObject], *, suffixes: Sequence[str], interval: Interval | None
) -> Selection:
    """Consume a listing (an iterator is fine: only the selected objects are kept)."""
    selection = Selection()
    for obj in objects:
        selection.found += 1
        reason = skip_reason(obj, suffixes=suffixes, interval=interval)
        if reason is None:
            selection.selected.append(obj)
        else:
            selection.skipped[reason] += 1
    return selection


def drop_indexed(selection: Selection, indexed: set[tuple[str, str]]) -> Selection:
    """Remove the objects whose ``(key, bare etag)`` the index already holds with status ``ok``."""
    kept: list[ListedObject] = []
    skipped = Counter(selection.skipped)
    for obj in selection.selected:
        if (obj.key, normalise_etag(obj.etag) or "") in indexed:
            skipped[SKIP_ALREADY_INDEXED] += 1
        else:
            kept.append(obj)
    return Selection(found=selection.found, skipped=skipped, selected=kept)


def earliest_index_day(
    candidates: Sequence[ListedObject], margin: timedelta = timedelta(days=1)
) -> date | None:
    """The first day (``dt=`` of a landing file, ``indexed_date`` of the face table) that can hold rows
    for ``candidates``; None without candidates.

    Rows are dated by the day the worker indexed them, which is never before the object was written;
    ``margin`` absorbs clock skew. If an identical object was indexed under the same key before a
    re-upload, its row may sit on an older day: that image is queued again, which costs one extra
    indexing and never loses one.
    """
    if not candidates:
        return None
    return (min(obj.last_modified for obj in candidates) - margin).date()


def iter_in_batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def summary_rows(selection: Selection, *, queued: int, dry_run: bool) -> list[tuple[str, int]]:
    """Rows for the run's log table: found, each skip reason (zeros included), queued."""
    rows: list[tuple[str, int]] = [("found", selection.found)]
    rows.extend((f"skipped: {reason}", selection.skipped.get(reason, 0)) for reason in SKIP_REASONS)
    rows.append(("would queue (dry run)" if dry_run else "queued", queued))
    return rows
