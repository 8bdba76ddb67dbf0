"""``faceidx table ingest|compact|vacuum|show``: the face table's maintenance from a shell."""

from __future__ import annotations

import argparse
import json

from faceidx.common.tables import format_pairs, format_table
from faceidx.store.location import IndexLocation
from faceidx.store.table import DEFAULT_RETENTION_HOURS, DEFAULT_TARGET_FILE_BYTES, FaceTable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    ingest = actions.add_parser("ingest", help="move every pending landing file into the table")
    ingest.add_argument("--max-files", type=int, default=500, help="landing files per commit (default 500)")
    compact = actions.add_parser("compact", help="rewrite small data files into larger ones")
    compact.add_argument("--date", help="the indexed_date partition (YYYY-MM-DD); default: every one")
    compact.add_argument(
        "--target-mb", type=int, default=DEFAULT_TARGET_FILE_BYTES // (1024 * 1024), help="target file size"
    )
    vacuum = actions.add_parser("vacuum", help="delete the files old versions alone still need")
    vacuum.add_argument(
        "--retention-hours",
        type=int,
        default=DEFAULT_RETENTION_HOURS,
        help=f"keep what versions younger than this need (default {DEFAULT_RETENTION_HOURS}; 0 purges all)",
    )
    show = actions.add_parser("show", help="version, files, faces per model version, recent commits")
    show.add_argument("--json", action="store_true", help="print JSON instead of tables")


def run(args: argparse.Namespace) -> int:
    location = IndexLocation.from_env(args.output_uri, args.vectors_uri)
    if args.action in ("ingest", "compact", "vacuum"):
        from faceidx.store.lease import writer

        with writer(location, f"faceidx table {args.action}"):
            return _write(args, location, FaceTable.open(location))
    return _show(args, location, FaceTable.open(location))


def _write(args: argparse.Namespace, location: IndexLocation, table: FaceTable) -> int:
    if args.action == "ingest":
        from faceidx.maintenance.tasks import finish_erasures, forget_tombstones, ingest_all, ingest_rows
        from faceidx.store.intents import ErasureIntents

        finish_erasures(location, table)
        summary = ingest_all(table, args.max_files, ErasureIntents(location).erased_face_ids())
        print(format_pairs(ingest_rows(summary), title=f"ingest into {location.table_uri}"))
        for uri, reason in sorted(summary["files_rejected"].items()):
            print(f"rejected {uri}: {reason}")
        for reason, rows in sorted(summary["rejected_rows"].items()):
            print(f"rejected {rows} row(s): {reason}")
        forget_tombstones(location, table, summary["tombstones"])
        return 0
    if args.action == "compact":
        report = table.compact(args.date, target_file_bytes=args.target_mb * 1024 * 1024)
        print(format_pairs(report.as_dict().items(), title=f"compaction of {location.table_uri}"))
        return 0
    removed = table.vacuum(retention_hours=args.retention_hours)
    print(f"{len(removed)} file(s) removed from {location.table_uri}")
    return 0


def _show(args: argparse.Namespace, location: IndexLocation, table: FaceTable) -> int:
    versions = table.model_versions()
    history = [
        (commit.get("version"), commit.get("operation"), commit.get("faceidx.operation", "-"))
        for commit in table.delta.history(10)
    ]
    if args.json:
        print(json.dumps({"version": table.version(), "files": len(table.file_uris()), "faces": versions}))
        return 0
    print(
        format_pairs(
            [
                ("table", location.table_uri),
                ("version", table.version()),
                ("data files", len(table.file_uris())),
            ]
            + [(f"faces of {version}", count) for version, count in sorted(versions.items())],
            title="face table",
        )
    )
    print(format_table(("version", "operation", "faceidx"), history, title="recent commits"))
    return 0
