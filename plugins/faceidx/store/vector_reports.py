"""What a sync and a purge of the vector index report (``sync_vectors_task`` logs and returns them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SyncReport:
    model_version: str
    mode: str  # "full" | "cdf" | "diff" | "unchanged"; for several shards, each mode with its count
    from_delta_version: int | None
    to_delta_version: int
    upserted: int = 0
    deleted: int = 0
    rows: int = 0
    index: str = "flat"  # "flat", or ANN_INDEX alone or followed by "built", "optimised", "retrained"
    seconds: float = 0.0
    note: str = ""
    month: str = ""  # the shard's month; "" for a report over every shard of the version
    shards: int = 1

    def pairs(self) -> list[tuple[str, Any]]:
        return [
            ("model version", self.model_version),
            ("shard", self.month or f"{self.shards} month(s)"),
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


def combined(reports: Sequence[SyncReport], model_version: str, target: int) -> SyncReport:
    """One report for a version from its shards' reports (``sync_vectors_task`` logs and returns it)."""
    modes: dict[str, int] = {}
    for report in reports:
        modes[report.mode] = modes.get(report.mode, 0) + 1
    indexes = sorted({report.index for report in reports})
    starts = [r.from_delta_version for r in reports if r.from_delta_version is not None]
    return SyncReport(
        model_version=model_version,
        mode=(
            next(iter(modes))
            if len(modes) == 1
            else ", ".join(f"{mode} {count}" for mode, count in sorted(modes.items())) or "unchanged"
        ),
        from_delta_version=min(starts) if starts else None,
        to_delta_version=target,
        upserted=sum(r.upserted for r in reports),
        deleted=sum(r.deleted for r in reports),
        rows=sum(r.rows for r in reports),
        index=", ".join(indexes) or "flat",
        seconds=sum(r.seconds for r in reports),
        note="; ".join(f"{r.month}: {r.note}" for r in reports if r.note),
        shards=len(reports),
    )
