"""The bodies of face_table's tasks: ingest, compact, vacuum, sync the vector index, report.

Each writing task holds the index's writer lease (``faceidx.store.lease``) while it writes, so it never
runs beside an erasure, a people run or another maintenance step, whichever DAG or shell started them.
The ingest first finishes any erasure a killed process left open (from its intent record), and drops
landing rows of erased faces. Each logs what it decided as a table (:mod:`faceidx.common.tables`) and
returns a small JSON summary for the next task and the report.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from faceidx.common.tables import format_pairs, format_table
from faceidx.store.lease import writer
from faceidx.store.location import IndexLocation
from faceidx.store.table import DEFAULT_RETENTION_HOURS, DEFAULT_TARGET_FILE_BYTES, FaceTable, IngestReport

log = logging.getLogger(__name__)

MAX_INGEST_ROUNDS = 1000
MAX_LOGGED = 20


def interval_days(start: datetime | None, end: datetime | None) -> list[str]:
    """The ``indexed_date`` partitions a data interval ``[start, end)`` touches (UTC), oldest first."""
    if start is None or end is None:
        return []
    start, end = _utc(start), _utc(end)
    first: date = start.date()
    last: date = (end - timedelta(microseconds=1) if end > start else end).date()
    days = []
    current = first
    while current <= last:
        days.append(current.isoformat())
        current += timedelta(days=1)
    return days


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def ingest_rows(report: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("landing files listed", report["files_listed"]),
        ("files ingested", report["files_ingested"]),
        ("files already in the table (deleted now)", report["files_already_ingested"]),
        ("files rejected", len(report["files_rejected"])),
        ("rows read", report["rows_read"]),
        ("rows inserted", report["rows_inserted"]),
        ("rows replaced in place", report["rows_replaced"]),
        ("rows deleted (error outcomes replaced, tombstones)", report["rows_deleted"]),
        ("error outcomes replaced by ok", report["outcomes_upgraded"]),
        ("duplicates dropped", report["duplicates_dropped"]),
        ("rows erased by a tombstone of the batch", report["erased_in_batch"]),
        ("rows of erased faces dropped", report.get("erased_dropped", 0)),
        ("rows rejected", sum(report["rejected_rows"].values())),
        ("tombstones", len(report["tombstones"])),
        ("table version", f"{report['version_before']} -> {report['version_after']}"),
    ]


def merge_reports(reports: Sequence[IngestReport]) -> dict[str, Any]:
    """One summary for several ingest rounds."""
    total: dict[str, Any] = reports[0].as_dict()
    for report in reports[1:]:
        current = report.as_dict()
        for name, value in current.items():
            if isinstance(value, bool) or name in ("version_before", "max_files"):
                continue
            if isinstance(value, int | float):
                total[name] += value
            elif isinstance(value, list):
                total[name] = total[name] + value
            elif isinstance(value, dict):
                merged = dict(total[name])
                for key, item in value.items():
                    merged[key] = merged.get(key, 0) + item if isinstance(item, int) else item
                total[name] = merged
        total["version_after"] = current["version_after"]
    total["committed"] = any(report.committed for report in reports)
    total["noop"] = all(report.noop for report in reports)
    total["rounds"] = len(reports)
    return total


def log_ingest(summary: Mapping[str, Any], table_uri: str) -> None:
    log.info("%s", format_pairs(ingest_rows(summary), title=f"ingest into {table_uri}"))
    if summary["files_rejected"]:
        rows = sorted(summary["files_rejected"].items())
        log.warning(
            "%s",
            format_table(
                ("landing file", "reason"),
                rows[:MAX_LOGGED],
                title="landing files set aside under faces-rejected/ (fix the writer, then move them back "
                "under faces/ to ingest them)",
            ),
        )
    if summary["rejected_rows"]:
        log.warning(
            "%s",
            format_table(
                ("reason", "rows"),
                sorted(summary["rejected_rows"].items()),
                title="rows set aside under faces-rejected/ (<landing file>.rejected.parquet)",
            ),
        )
    if summary["tombstones"]:
        log.info(
            "%s",
            format_table(
                ("image", "removed at", "faces deleted"),
                [
                    (f"s3://{t['bucket']}/{t['key']}", t["removed_at"], len(t["face_ids"]))
                    for t in summary["tombstones"][:MAX_LOGGED]
                ],
                title="S3 ObjectRemoved tombstones",
            ),
        )
    if summary["noop"]:
        log.info("no landing file was pending: nothing to do")


def ingest_all(table: FaceTable, max_files: int, erased_face_ids: set[str] | None = None) -> dict[str, Any]:
    """Ingest rounds of ``max_files`` until no landing file is left."""
    reports = []
    for _ in range(MAX_INGEST_ROUNDS):
        report = table.ingest(max_files=max_files, erased_face_ids=erased_face_ids)
        reports.append(report)
        if not report.more:
            break
    return merge_reports(reports)


def forget_tombstones(location: IndexLocation, table: FaceTable, tombstones: list[dict[str, Any]]) -> int:
    """Hand the tombstones to the erasure (vectors, crops, persons rows, history, receipts)."""
    if not tombstones:
        return 0
    from faceidx.erasure.forget import forget_tombstones as forget

    receipts = forget(location, tombstones, table=table)
    log.info("ObjectRemoved: %s receipt(s) written under %s", len(receipts), location.receipts_uri)
    return len(receipts)


def finish_erasures(location: IndexLocation, table: FaceTable) -> int:
    """Finish the erasures a killed process left open, from their intent records; log each receipt."""
    from faceidx.erasure.forget import finish_open_intents

    receipts = finish_open_intents(location, table)
    if receipts:
        log.warning(
            "%s",
            format_table(
                ("target", "verified", "receipt"),
                [
                    (f"{r.target['type']} {r.target['value']}", "yes" if r.verified else "NO", r.uri)
                    for r in receipts
                ],
                title="interrupted erasures finished from their intent records",
            ),
        )
    return len(receipts)


def ingest_task(location: IndexLocation, *, max_files: int) -> dict[str, Any]:
    from faceidx.store.intents import ErasureIntents

    with writer(location, "ingest") as lease:
        table = FaceTable.open(location)
        resumed = finish_erasures(location, table)
        lease.check()
        summary = ingest_all(table, max_files, ErasureIntents(location).erased_face_ids())
        log_ingest(summary, location.table_uri)
        lease.check()
        summary["receipts"] = forget_tombstones(location, table, summary["tombstones"])
        summary["erasures_finished"] = resumed
        return summary


def compact_task(location: IndexLocation, days: list[str], *, target_file_mb: int) -> dict[str, Any]:
    with writer(location, "compact"):
        return _compact(location, days, target_file_mb=target_file_mb)


def _compact(location: IndexLocation, days: list[str], *, target_file_mb: int) -> dict[str, Any]:
    table = FaceTable.open(location)
    present = {str(values["indexed_date"]) for values in table.delta.partitions()}
    rows = []
    for day in days:
        if day not in present:
            rows.append((day, 0, 0, 0, 0, "no partition"))
            continue
        report = table.compact(day, target_file_bytes=target_file_mb * 1024 * 1024)
        changed = "compacted" if report.version_after != report.version_before else "already compact"
        rows.append(
            (day, report.files_before, report.files_after, report.bytes_before, report.bytes_after, changed)
        )
    log.info(
        "%s",
        format_table(
            ("indexed_date", "files before", "files after", "bytes before", "bytes after", "result"),
            rows,
            title=f"compaction of {location.table_uri} (target {target_file_mb} MiB per file)",
        ),
    )
    if not days:
        log.info("the run has no data interval: nothing to compact")
    return {
        "days": days,
        "partitions": [
            dict(
                zip(
                    ("indexed_date", "files_before", "files_after", "bytes_before", "bytes_after", "result"),
                    row,
                    strict=True,
                )
            )
            for row in rows
        ],
        "version": table.version(),
    }


def vacuum_task(location: IndexLocation, *, retention_hours: int) -> dict[str, Any]:
    with writer(location, "vacuum"):
        table = FaceTable.open(location)
        removed = table.vacuum(retention_hours=retention_hours)
    log.info(
        "%s",
        format_pairs(
            [("retention", f"{retention_hours} h"), ("files removed", len(removed))]
            + [("removed", name) for name in removed[:MAX_LOGGED]],
            title=f"vacuum of {location.table_uri}",
        ),
    )
    return {"retention_hours": retention_hours, "files_removed": len(removed), "version": table.version()}


def sync_vectors_task(location: IndexLocation) -> dict[str, Any]:
    with writer(location, "sync vectors"):
        return _sync_vectors(location)


def _sync_vectors(location: IndexLocation) -> dict[str, Any]:
    from faceidx.store.vectors import VectorIndex

    table = FaceTable.open(location)
    index = VectorIndex(location)
    versions = table.model_versions()
    synced: dict[str, Any] = {}
    for model_version in sorted(versions):
        report = index.sync(table, model_version)
        synced[model_version] = {name: value for name, value in report.pairs()}
        log.info(
            "%s",
            format_pairs(report.pairs(), title=f"vector index {location.vectors_uri}, model {model_version}"),
        )
    if not versions:
        log.info("the face table has no model version yet: nothing to sync")
    return {"versions": synced, "table_version": table.version()}


def report_task(
    location: IndexLocation,
    ingest: Mapping[str, Any],
    compact: Mapping[str, Any],
    vacuum: Mapping[str, Any],
) -> dict[str, Any]:
    table = FaceTable.open(location)
    versions = table.model_versions()
    files = table.file_uris()
    compacted = [p for p in compact.get("partitions", []) if p["result"] == "compacted"]
    rows = [
        ("files ingested", ingest["files_ingested"]),
        ("rows inserted", ingest["rows_inserted"]),
        ("duplicates dropped", ingest["duplicates_dropped"]),
        ("files rejected", len(ingest["files_rejected"])),
        ("rows rejected", sum(ingest["rejected_rows"].values())),
        ("tombstones", len(ingest["tombstones"])),
        ("partitions compacted", ", ".join(p["indexed_date"] for p in compacted) or "none"),
        ("old files vacuumed", vacuum["files_removed"]),
        ("Asset event", "face_vectors and face_identities follow" if table_event(ingest, "") else "none"),
        ("table version", table.version()),
        ("data files", len(files)),
    ] + [(f"faces of {version}", count) for version, count in sorted(versions.items())]
    log.info("%s", format_pairs(rows, title=f"face table {location.table_uri}"))
    return {"table_version": table.version(), "data_files": len(files), "faces": versions}


def table_event(ingest: Mapping[str, Any], run_id: str) -> dict[str, Any] | None:
    """The extra of the face table's Asset event when the ingest committed (the version moved), else
    None: no event, so the vector sync and the people run are not started for nothing. Pure."""
    before, after = ingest.get("version_before"), ingest.get("version_after")
    if not ingest.get("committed", after != before) or after is None or before == after:
        return None
    return {
        "table_version": after,
        "rows_inserted": ingest.get("rows_inserted", 0),
        "rows_deleted": ingest.get("rows_deleted", 0),
        "tombstones": len(ingest.get("tombstones", [])),
        "run_id": run_id,
    }


__all__ = [
    "DEFAULT_RETENTION_HOURS",
    "DEFAULT_TARGET_FILE_BYTES",
    "compact_task",
    "ingest_task",
    "interval_days",
    "report_task",
    "sync_vectors_task",
    "table_event",
    "vacuum_task",
]
