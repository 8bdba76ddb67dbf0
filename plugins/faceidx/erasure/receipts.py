"""The erasure receipt: what one erasure removed from where and what its verification found, named
after its intent (``<output>/receipts/forget/<UTC time>-<intent id>.json``) and written once."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from faceidx.store.intents import ErasureIntent
from faceidx.store.location import IndexLocation


@dataclass
class Receipt:
    """What one erasure removed from where, and what the verification found. Saved as JSON."""

    id: str
    target: dict[str, str]
    reason: str
    actor: str
    started_at: str
    finished_at: str = ""
    approver: str = ""  # the user who approved it in the UI (face_forget's require_approval); "": none
    removed: dict[str, Any] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)
    uri: str = ""

    @property
    def verified(self) -> bool:
        return bool(self.verification.get("passed"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_rows(self) -> list[tuple[str, Any]]:
        """Rows for a task log's table: one per place something was removed from, then the check."""
        removed = self.removed
        rows: list[tuple[str, Any]] = [("target", f"{self.target['type']} {self.target['value']}")]
        rows += [("reason", self.reason), ("actor", self.actor), ("approver", self.approver or "-")]
        rows.append(("landing files ingested first", removed.get("landing", {}).get("files_ingested", 0)))
        for version, count in sorted(removed.get("table_rows", {}).items()):
            rows.append((f"table rows ({version})", count))
        for version, count in sorted(removed.get("vectors", {}).items()):
            rows.append((f"vectors ({version})", count))
        rows.append(("crops deleted", len(removed.get("crops", []))))
        for name, count in sorted(removed.get("people_rows", {}).items()):
            rows.append((f"{name} rows", count))
        history = removed.get("history", {})
        rows.append(("table files purged", len(history.get("table_files", []))))
        vectors = history.get("vectors", {})
        rows.append(("old vector versions purged", sum(vectors.get("versions_removed", {}).values())))
        rows.append(("vector tables rewritten", len(vectors.get("rewritten", []))))
        check = self.verification
        rows.append(("verify: table rows left", check.get("table_rows_left")))
        rows.append(("verify: searches run", check.get("searches")))
        rows.append(("verify: vector tables checked", check.get("vector_tables_checked", "-")))
        rows.append(("verify: forgotten faces found", len(check.get("found_face_ids", []))))
        rows.append(("verified", "yes" if self.verified else "NO"))
        rows.append(("receipt", self.uri))
        return rows


def _now() -> datetime:
    return datetime.now(UTC)


def receipt_for(location: IndexLocation, intent: ErasureIntent) -> str:
    """The receipt of an intent: one name per intent, so a rerun never writes a second one."""
    return f"{location.receipts_uri}/{intent.compact_time}-{intent.id}.json"


def receipt_of(intent: ErasureIntent, verification: dict[str, Any], uri: str) -> Receipt:
    removed = intent.removed
    return Receipt(
        id=intent.id,
        target=dict(intent.target),
        reason=intent.reason,
        actor=intent.actor,
        approver=intent.approver,
        started_at=intent.created_at,
        finished_at=_now().isoformat(),
        removed={
            "landing": {"files_ingested": intent.landing_files},
            "table_rows": dict(intent.table_rows),
            "table_rows_total": int(removed.get("table_rows_total", 0)),
            "face_ids": list(intent.face_ids),
            "images": list(intent.images),
            "vectors": {version: len(faces) for version, faces in sorted(intent.embeddings.items())},
            "vectors_total": int(removed.get("vectors_total", 0)),
            "crops": list(removed.get("crops", [])),
            "people_rows": dict(removed.get("people_rows", {})),
            "persons_refreshed": dict(removed.get("persons_refreshed", {})),
            "history": dict(removed.get("history", {})),
            "resumed": intent.resumed,
        },
        verification=verification,
        uri=uri,
    )
