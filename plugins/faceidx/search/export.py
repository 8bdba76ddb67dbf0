"""``faceidx export --person P``: every image and face of one person, the right of access.

The counterpart of erasure (``faceidx forget --person P``): where forget deletes, export lists what
the index holds about a person, in every model version: the image URI, the face id and index, the box,
the model version and when it was indexed. P is a person id, or a label (every person carrying that
label exactly). Prints a table, or the document with ``--json``. Reads only: an unknown person or an
empty index exits 2 and changes nothing.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from faceidx.common.tables import format_table

if TYPE_CHECKING:
    from faceidx.store.location import IndexLocation

EXPORT_COLUMNS = ["face_id", "image_bucket", "image_key", "face_index", "bbox", "model_version", "indexed_at"]
IDS_PER_READ = 2_000


@dataclass(frozen=True)
class ExportedFace:
    image: str
    face_id: str
    face_index: int | None
    bbox: tuple[float, ...]
    model_version: str
    indexed_at: str | None
    person_id: str


@dataclass(frozen=True)
class PersonExport:
    person: str  # as asked
    persons: list[dict[str, Any]]  # person_id, model_version, label, face_count
    faces: list[ExportedFace]

    @property
    def images(self) -> int:
        return len({f.image for f in self.faces})

    def to_dict(self) -> dict[str, Any]:
        return {"person": self.person, "persons": self.persons, "images": self.images} | {
            "faces": [asdict(f) for f in self.faces]
        }


def export_person(location: IndexLocation, person: str) -> PersonExport:
    """Every face of ``person`` (an id or an exact label) the face table holds, in every version."""
    from faceidx.store.persons import PeopleStore, sql_string
    from faceidx.store.table import FaceTable

    person = person.strip()
    if not person:
        raise ValueError("no person: pass --person with a person id or label (see `faceidx people list`)")
    table = FaceTable.open_if_exists(location)
    if table is None:
        raise LookupError(f"the index at {location.output_uri} is empty (no face table): nothing to export")
    store = PeopleStore(location)
    found = store.read("persons", filter=f"person_id = {sql_string(person)}")
    if found.num_rows == 0:
        found = store.read("persons", filter=f"label = {sql_string(person)}")
    mapped = store.read("face_persons", filter=f"person_id = {sql_string(person)}")
    ids = sorted(set(found.column("person_id").to_pylist()) | set(mapped.column("person_id").to_pylist()))
    if not ids:
        raise LookupError(
            f"no person {person!r} (neither a person id nor a label) in the index at {location.output_uri}: "
            "see `faceidx people list`"
        )
    mapping = store.read("face_persons", filter=_in_list("person_id", ids))
    person_of = {r["face_id"]: r["person_id"] for r in mapping.select(["face_id", "person_id"]).to_pylist()}
    faces: list[ExportedFace] = []
    face_ids = sorted(person_of)
    for start in range(0, len(face_ids), IDS_PER_READ):
        chunk = face_ids[start : start + IDS_PER_READ]
        rows = table.read(
            columns=EXPORT_COLUMNS, filter=_in_list("face_id", chunk) + " AND face_index IS NOT NULL"
        )
        for row in rows.to_pylist():
            indexed = row["indexed_at"]
            faces.append(
                ExportedFace(
                    image=f"s3://{row['image_bucket']}/{row['image_key']}",
                    face_id=row["face_id"],
                    face_index=row["face_index"],
                    bbox=tuple(round(float(v), 1) for v in row["bbox"] or ()),
                    model_version=row["model_version"],
                    indexed_at=indexed.isoformat() if hasattr(indexed, "isoformat") else indexed,
                    person_id=person_of[row["face_id"]],
                )
            )
    faces.sort(key=lambda f: (f.model_version, f.image, f.face_index or 0))
    persons = [
        {k: r[k] for k in ("person_id", "model_version", "label", "face_count")}
        for r in found.to_pylist()
        if r["person_id"] in ids
    ]
    return PersonExport(person=person, persons=sorted(persons, key=lambda p: p["person_id"]), faces=faces)


HEADERS = ("image", "face id", "face", "box", "model version", "indexed at", "person")


def format_export(export: PersonExport) -> str:
    ids = ", ".join(p["person_id"] + (f" ({p['label']})" if p["label"] else "") for p in export.persons)
    title = f"every face of {export.person}: {len(export.faces)} face(s) in {export.images} image(s)" + (
        f", person(s) {ids}" if ids else ""
    )
    rows = [
        (
            f.image,
            f.face_id,
            f.face_index,
            "(" + ", ".join(f"{v:.0f}" for v in f.bbox) + ")",
            f.model_version,
            f.indexed_at,
            f.person_id,
        )
        for f in export.faces
    ]
    return format_table(HEADERS, rows, title=title)


def _in_list(column: str, values: list[str]) -> str:
    from faceidx.store.persons import sql_string

    return f"{column} IN ({', '.join(sql_string(v) for v in sorted(set(values)))})"


# -- the command ----------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--person", required=True, metavar="P", help="a person id, or a label")
    parser.add_argument("--json", action="store_true", help="print the export as JSON")


def run(args: argparse.Namespace) -> int:
    from faceidx.store.location import IndexLocation

    location = IndexLocation.from_env(args.output_uri, args.vectors_uri)
    export = export_person(location, args.person)
    print(json.dumps(export.to_dict(), indent=2, default=str) if args.json else format_export(export))
    return 0
