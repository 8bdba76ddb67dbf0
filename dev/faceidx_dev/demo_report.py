"""What ``make demo`` reads back from the index: table figures and the people found, as JSON.

It runs in its own process (``python -m faceidx_dev.demo_report stats|people``, the index location
from ``FACEIDX_OUTPUT_URI`` and boto3's environment): delta-rs holds the GIL while it waits on S3, so
it must never share a process with the embedded moto server it talks to.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from faceidx.store.location import IndexLocation


def table_stats(location: IndexLocation) -> dict[str, Any]:
    from faceidx.store.table import FaceTable

    table = FaceTable.open(location)
    rows = table.read(columns=["image_key", "image_etag", "status", "face_index"]).to_pylist()
    return {
        "rows": len(rows),
        "images": sorted({r["image_key"] for r in rows}),
        "ok_images": len({(r["image_key"], r["image_etag"]) for r in rows if r["status"] == "ok"}),
        "errors": sum(1 for r in rows if r["status"] == "error"),
        "faces": sum(1 for r in rows if r["status"] == "ok" and r["face_index"] is not None),
        "files": len(table.file_uris()),
    }


def people(location: IndexLocation) -> dict[str, Any]:
    """Persons with the photos they appear in, and per photo name the (x1, person) of one copy's faces."""
    from faceidx.store.persons import PeopleStore
    from faceidx.store.registry import ModelRegistry
    from faceidx.store.table import FaceTable

    version = ModelRegistry(location).current()
    faces = (
        FaceTable.open(location)
        .read(
            model_version=version, columns=["face_id", "image_key", "bbox"], filter="face_index IS NOT NULL"
        )
        .to_pylist()
    )
    store = PeopleStore(location)
    mapping, labels = store.mapping(version), store.labels(version)
    photos_of: dict[str, set[str]] = {}
    per_photo: dict[str, list[tuple[float, str | None]]] = {}
    copy_of: dict[str, str] = {}
    for face in faces:
        photo = face["image_key"].rsplit("/", 1)[-1]
        person = mapping.get(face["face_id"])
        if person:
            photos_of.setdefault(person, set()).add(photo)
        if copy_of.setdefault(photo, face["image_key"]) == face["image_key"]:
            per_photo.setdefault(photo, []).append((float(face["bbox"][0]), person))
    persons = [
        {"person": person, "label": labels.get(person) or "", "photos": sorted(photos)}
        for person, photos in photos_of.items()
    ]
    return {"model_version": version, "persons": persons, "per_photo": per_photo}


def main(argv: list[str]) -> int:
    location = IndexLocation.from_env()
    report = {"stats": table_stats, "people": people}[argv[0]](location)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
