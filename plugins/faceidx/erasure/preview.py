"""What an erasure would remove, read before anyone approves it: a dry count, no lease, no writes.

``face_forget`` with ``require_approval`` shows this preview in its approval task (the body of the
standard provider's ``ApprovalOperator`` is Markdown). The counts come from the face table as it is
now: rows per model version, faces, images, crops and, for a person, the person's faces. Landing files
not yet ingested are not counted (the erasure ingests them first, so it may remove a few more rows).
A target that is not in the index raises :class:`faceidx.erasure.forget.ForgetTargetNotFound`, as
the erasure itself would, so a run for a wrong target fails before anyone is asked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from faceidx.erasure.forget import (
    CAPTURE_COLUMNS,
    ForgetTarget,
    ForgetTargetNotFound,
    PersonResolver,
    target_predicate,
)
from faceidx.store.location import IndexLocation

PREVIEW_COLUMNS = [*(c for c in CAPTURE_COLUMNS if c != "embedding"), "face_index"]
MAX_LISTED = 10  # images named in the approval's body; the count covers all of them


@dataclass
class ForgetPreview:
    """The dry count of one target: what :func:`faceidx.erasure.forget.forget` would remove."""

    target: dict[str, str]
    table_rows: dict[str, int] = field(default_factory=dict)  # model version -> rows
    faces: int = 0
    images: list[str] = field(default_factory=list)
    crops: int = 0
    person_id: str | None = None

    @property
    def rows(self) -> int:
        return sum(self.table_rows.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows": self.rows}

    def markdown(self) -> str:
        """The approval's body: the target, then one line per count, then what each answer does."""
        lines = [
            f"**Forget {self.target['type']} `{self.target['value']}`** from the whole index.",
            "",
            "What would be removed (counted now, from the face table; landing files not yet ingested "
            "are ingested first and may add a few rows):",
            "",
            "| what | count |",
            "| --- | --- |",
        ]
        for version, count in sorted(self.table_rows.items()):
            lines.append(f"| face table rows ({version}) | {count} |")
        lines += [
            f"| faces (and their vectors) | {self.faces} |",
            f"| images | {len(self.images)} |",
            f"| face crops | {self.crops} |",
        ]
        if self.person_id:
            lines.append(f"| person | `{self.person_id}` (and its persons rows) |")
        if self.images:
            lines += ["", "Images:", ""]
            lines += [f"- `{image}`" for image in self.images[:MAX_LISTED]]
            if len(self.images) > MAX_LISTED:
                lines.append(f"- ... and {len(self.images) - MAX_LISTED} more")
        lines += [
            "",
            "**Approve**: the erasure runs; its receipt names you as the approver. "
            "**Reject**: nothing is deleted and the run ends.",
        ]
        return "\n".join(lines)


def preview(
    location: IndexLocation, target: ForgetTarget, resolve_person: PersonResolver | None = None
) -> ForgetPreview:
    """Count what forgetting ``target`` would remove. Reads only: no lease, no ingest, no write."""
    from faceidx.store.table import FaceTable

    predicate, person_id = target_predicate(location, target, resolve_person)
    rows = FaceTable.open(location).read(columns=list(PREVIEW_COLUMNS), filter=predicate)
    if rows.num_rows == 0 and person_id is None:
        raise ForgetTargetNotFound(f"{target.describe()} is not in the index: nothing was forgotten")
    versions: dict[str, int] = {}
    for version in rows["model_version"].to_pylist():
        versions[str(version)] = versions.get(str(version), 0) + 1
    images = zip(rows["image_bucket"].to_pylist(), rows["image_key"].to_pylist(), strict=True)
    return ForgetPreview(
        target={"type": target.kind, "value": target.value},
        table_rows=dict(sorted(versions.items())),
        faces=len(  # face rows; a photo without a face has one image-level row
            {
                f
                for f, i in zip(rows["face_id"].to_pylist(), rows["face_index"].to_pylist(), strict=True)
                if f and i is not None
            }
        ),
        images=sorted({f"s3://{b}/{k}" for b, k in images if b and k}),
        crops=len({u for u in rows["crop_uri"].to_pylist() if u}),
        person_id=person_id,
    )
