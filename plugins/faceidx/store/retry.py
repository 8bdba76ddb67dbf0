"""Retries for the index state's writes and reads: a lost commit race, or a file a purge removed.

Delta Lake and Lance both commit optimistically: a writer reads a snapshot, writes new files, then
commits; when another writer committed something that conflicts first, the commit fails
(``deltalake.exceptions.CommitFailedError``; Lance's "Commit conflict for version ...", "Retryable
commit conflict", "Too many concurrent writers"). A reader or writer that holds an old snapshot also
fails once a purge (vacuum, Lance cleanup) removed a file of that snapshot: Delta says "Failed to
fetch metadata for file" or "Object at location ... not found", Lance "Not found: .../data/....lance".

:func:`retrying` runs an operation and, on either failure, logs what happened (attempt n of N),
calls ``refresh`` (reload the table, check out the latest Lance version) and runs the whole
operation again after a jittered exponential backoff, so a retry re-plans from what it re-reads.
Anything else is raised at once; the last failure is raised after :data:`MAX_ATTEMPTS`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_ATTEMPTS = 6
BASE_DELAY_S = 0.2
MAX_DELAY_S = 5.0

CONFLICT_MARKERS = (
    "commit conflict",  # Lance: "Commit conflict for version", "Retryable commit conflict for version"
    "too many concurrent writ",  # Lance: "Too many concurrent writers", "... writes, please retry later"
)
# delta-rs's CommitFailedError also reports a commit it could not write at all (its own 15 attempts
# at the next version exhausted: "Failed to commit transaction: 15"); only a lost race is retried.
DELTA_CONFLICT_MARKERS = ("concurrent", "conflict", "Commit failed:")
MISSING_MARKERS = (
    "Failed to fetch metadata for file",  # delta-rs / DataFusion reading a vacuumed Parquet file
    "Object at location",  # object_store: "Object at location ... not found"
    "Not found: ",  # Lance: "Not found: <path>/data/<file>.lance"
    "NoSuchKey",
    "No such file or directory",
)

CONFLICT = "commit conflict"
MISSING = "missing file"


class CommitConflictError(RuntimeError):
    """Our own check found that another writer committed under an operation: re-read and retry."""


def is_commit_conflict(error: BaseException) -> bool:
    from deltalake.exceptions import CommitFailedError

    if isinstance(error, CommitConflictError):
        return True
    if isinstance(error, CommitFailedError):
        return any(marker in str(error) for marker in DELTA_CONFLICT_MARKERS)
    text = str(error).lower()
    return any(marker in text for marker in CONFLICT_MARKERS)


def is_missing_file(error: BaseException) -> bool:
    """A file of the snapshot is gone (vacuumed or cleaned up under the reader or writer)."""
    from deltalake.exceptions import TableNotFoundError

    if isinstance(error, TableNotFoundError):
        return False
    if isinstance(error, FileNotFoundError):
        return True
    text = str(error)
    return any(marker in text for marker in MISSING_MARKERS)


def retry_reason(error: BaseException, *, missing: bool = True) -> str | None:
    """:data:`CONFLICT`, :data:`MISSING` (when ``missing``), or None: not retried."""
    if is_commit_conflict(error):
        return CONFLICT
    if missing and is_missing_file(error):
        return MISSING
    return None


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): doubling from
    :data:`BASE_DELAY_S`, at most :data:`MAX_DELAY_S`, jittered by +-50 % so racing writers part."""
    delay = min(MAX_DELAY_S, BASE_DELAY_S * 2 ** (attempt - 1))
    return float(delay * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not cryptography


def retrying(
    what: str,
    operation: Callable[[], T],
    *,
    refresh: Callable[[], object] | None = None,
    missing: bool = True,
    attempts: int = MAX_ATTEMPTS,
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """``operation()``, again after a commit conflict (or a missing file, when ``missing``).

    ``what`` names the operation and its table for the log. ``refresh`` runs before each retry and
    must make the next attempt re-read what it depends on (reload the table, drop cached handles).
    """
    for attempt in range(1, attempts + 1):
        try:
            return operation()
        except Exception as error:
            reason = retry_reason(error, missing=missing)
            if reason is None or attempt == attempts:
                if reason is not None:
                    log.error("%s: %s, attempt %d of %d: giving up", what, reason, attempt, attempts)
                raise
            delay = backoff(attempt)
            log.warning(
                "%s: %s (attempt %d of %d): %s; re-reading and retrying in %.2f s",
                what,
                reason,
                attempt,
                attempts,
                str(error).splitlines()[0][:300],
                delay,
            )
            sleep(delay)
            if refresh is not None:
                refresh()
    raise AssertionError("unreachable")  # the loop returns or raises
