"""The retry rule for commit races and vacuumed files, and which change data files a vacuum deletes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from faceidx.store import retry
from faceidx.store.retry import CONFLICT, MISSING, CommitConflictError, retry_reason, retrying
from faceidx.store.table import IN_FLIGHT_GRACE, Commit, StoredFile, change_data_to_remove

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            CommitFailedError("Commit failed: a concurrent transaction deleted data this operation read."),
            CONFLICT,
        ),
        (CommitFailedError("Failed to commit transaction: 15"), None),  # not a race: the log is unwritable
        (CommitConflictError("moved from version 3 to 4"), CONFLICT),
        (
            RuntimeError("lance error: Commit conflict for version 7: This Delete transaction was preempted"),
            CONFLICT,
        ),
        (OSError("Retryable commit conflict for version 12"), CONFLICT),
        (RuntimeError("Too many concurrent writers. "), CONFLICT),
        (
            RuntimeError(
                "lance error: Not found: out/vectors/faces__v.lance/data/0101.lance, local.rs:273:40"
            ),
            MISSING,
        ),
        (ValueError("External error: Parquet error: Failed to fetch metadata for file t/p.parquet"), MISSING),
        (FileNotFoundError("Object at location /t/g=a/part-0.parquet not found"), MISSING),
        (OSError("An error occurred (NoSuchKey) when calling the GetObject operation"), MISSING),
        (TableNotFoundError("no log files"), None),
        (ValueError("Table 'faces__v' was not found"), None),
        (ValueError("k must be at least 1, got 0"), None),
        (PermissionError("Access Denied"), None),
    ],
)
def test_what_is_retried(error, reason):
    assert retry_reason(error) == reason


def test_a_missing_file_is_not_retried_when_the_caller_says_so():
    assert retry_reason(FileNotFoundError("gone"), missing=False) is None


def test_retrying_refreshes_and_logs_each_attempt_then_succeeds(caplog):
    calls: list[str] = []
    sleeps: list[float] = []

    def operation() -> str:
        calls.append("run")
        if calls.count("run") < 3:
            raise CommitFailedError("Commit failed: a concurrent transactions added new data.")
        return "done"

    with caplog.at_level(logging.WARNING, logger="faceidx.store.retry"):
        result = retrying(
            "ingest on t", operation, refresh=lambda: calls.append("reload"), sleep=sleeps.append
        )
    assert result == "done"
    assert calls == ["run", "reload", "run", "reload", "run"]
    assert len(sleeps) == 2
    assert all(0 < delay <= retry.MAX_DELAY_S * 1.5 for delay in sleeps)
    assert [record.getMessage().split(":")[0:2] for record in caplog.records] == [
        ["ingest on t", " commit conflict (attempt 1 of 6)"],
        ["ingest on t", " commit conflict (attempt 2 of 6)"],
    ]


def test_retrying_gives_up_after_the_last_attempt_and_raises_other_errors_at_once():
    attempts: list[int] = []

    def conflict() -> None:
        attempts.append(1)
        raise CommitConflictError("moved")

    with pytest.raises(CommitConflictError):
        retrying("purge", conflict, attempts=3, sleep=lambda _: None)
    assert len(attempts) == 3

    def broken() -> None:
        attempts.append(1)
        raise ValueError("bad predicate")

    attempts.clear()
    with pytest.raises(ValueError, match="bad predicate"):
        retrying("delete", broken, sleep=lambda _: None)
    assert len(attempts) == 1


@pytest.mark.parametrize("attempt", [1, 2, 3, 10])
def test_backoff_doubles_within_bounds(attempt):
    base = min(retry.MAX_DELAY_S, retry.BASE_DELAY_S * 2 ** (attempt - 1))
    assert base * 0.5 <= retry.backoff(attempt) <= base * 1.5


def _at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


OLD, RETAINED, NEWEST = (
    "_change_data/old.parquet",
    "_change_data/retained.parquet",
    "_change_data/newest.parquet",
)
COMMITS = [
    Commit(5, _at(-120), frozenset({OLD})),
    Commit(6, _at(-30), frozenset({RETAINED})),
    Commit(7, _at(-20), frozenset()),
    Commit(8, _at(-10), frozenset({NEWEST})),
]


@pytest.mark.parametrize(
    ("path", "written", "cutoff", "removed"),
    [
        (OLD, -121, -60, True),  # only a commit older than the cutoff adds it
        (RETAINED, -31, -60, False),  # a commit younger than the cutoff adds it
        (RETAINED, -31, 0, True),  # retention 0: every commit but the newest is purged
        (NEWEST, -11, 0, False),  # the newest commit's change data always stays
        (NEWEST, -11, 5, False),  # even with a cutoff after it
        ("_change_data/orphan.parquet", -5, 0, False),  # no commit adds it yet: maybe in flight
        ("_change_data/orphan.parquet", -61, 0, True),  # an orphan older than the grace
        ("_change_data/orphan.parquet", -61, -120, False),  # ... but younger than the retention
        (OLD, -121, -200, False),  # written after the cutoff: never a candidate
    ],
)
def test_change_data_to_remove(path, written, cutoff, removed):
    assert timedelta(hours=1) == IN_FLIGHT_GRACE
    files = [StoredFile(path, _at(written))]
    doomed = change_data_to_remove(files, COMMITS, cutoff=_at(cutoff), now=NOW)
    assert doomed == ([path] if removed else [])
