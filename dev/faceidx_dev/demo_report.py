"""What ``make demo`` reads back from the index: table figures and the people found, as JSON.

It runs in its own process (``python -m faceidx_dev.demo_report stats|people``, the index location
from ``FACEIDX_OUTPUT_URI`` and boto3's environment): delta-rs holds the GIL while it waits on S3, so
it must never share a process with the embedded moto server it talks to.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
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


def _faces_by_identity(location: IndexLocation, version: str, assets: Path) -> dict[str, list[str]]:
    """identity -> the face ids of every copy of the labelled photos (expected.json, left to right)."""
    from faceidx.store.table import FaceTable

    expected = json.loads((assets / "expected.json").read_text())["images"]
    rows = (
        FaceTable.open(location)
        .read(version, columns=["face_id", "image_key", "bbox"], filter="face_index IS NOT NULL")
        .to_pylist()
    )
    by_key: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_key.setdefault(row["image_key"], []).append(row)
    found: dict[str, list[str]] = {}
    for key, faces in by_key.items():
        ids = expected.get(key.rsplit("/", 1)[-1], {}).get("ids")
        if ids and len(ids) == len(faces):
            for who, face in zip(ids, sorted(faces, key=lambda r: float(r["bbox"][0])), strict=True):
                found.setdefault(f"{who}@{key.rsplit('/', 1)[-1]}", []).append(face["face_id"])
    return found


def _corrections(location: IndexLocation, version: str, faces: dict[str, list[str]]) -> list[str]:
    """label, merge, split and move, faces chosen by identity (as tests/plugins/faceidx/people/
    test_survival.py does); a step whose person the index lacks is left out. Returns the steps made."""
    from faceidx.people.actions import correct
    from faceidx.store.persons import PeopleStore

    def of(*photos: str) -> str | None:
        mapping = PeopleStore(location).mapping(version)
        held = Counter(mapping.get(f) for photo in photos for f in faces.get(photo, []))
        held.pop(None, None)
        return held.most_common(1)[0][0] if held else None

    def placed(photo: str, person: str | None = None) -> list[str]:
        mapping = PeopleStore(location).mapping(version)
        return [
            f for f in faces.get(photo, []) if mapping.get(f) and (person is None or mapping[f] == person)
        ]

    obama, small = ("obama@obama.jpg", "obama@obama2.jpg"), "obama@obama_small.jpg"
    steps: list[tuple[str, str, Callable[[], dict[str, Any] | None]]] = [
        ("label", "Obama", lambda: {"person_id": of(*obama), "label": "Barack Obama"}),
        ("label", "Biden", lambda: {"person_id": of("biden@biden.jpg"), "label": "Joe Biden"}),
        ("label", "Ross", lambda: {"person_id": of("ross@t1.jpg"), "label": "Ross Geller"}),
        (
            "merge",
            "Rob Lowe into Biden",
            lambda: {
                "person_id": of("biden@biden.jpg"),
                "other_person_id": of("rob_lowe@lfw_Rob_Lowe_0001.jpg"),
            },
        ),
        (
            "split",
            "obama_small.jpg off Obama",
            lambda: {"person_id": of(*obama), "face_ids": placed(small, of(*obama))},
        ),
        ("label", "the split-off Obama", lambda: {"person_id": of(small), "label": "Obama (unsure)"}),
        (
            "move",
            "lfw_Rob_Lowe_0002.jpg to the buffer",
            lambda: {"person_id": None, "face_ids": placed("rob_lowe@lfw_Rob_Lowe_0002.jpg")},
        ),
        (
            "move",
            "Joey of t1.jpg into Chandler",
            lambda: {
                "person_id": of("chandler@t1.jpg", "chandler@many_face.png"),
                "face_ids": faces.get("joey@t1.jpg"),
            },
        ),
    ]
    made = []
    for action, what, arguments in steps:
        kwargs = arguments()
        needed = [v for k, v in (kwargs or {}).items() if k in ("other_person_id", "face_ids")]
        if kwargs is None or (action != "move" and not kwargs.get("person_id")) or not all(needed):
            continue
        correct(location, version, action, actor="demo", **kwargs)
        made.append(f"{action} {what}")
    return made


def _index_with(
    location: IndexLocation, pack: Path, old: str, photos: Callable[[dict[str, Any]], str] | None = None
) -> tuple[str, int]:
    """One copy of each photo indexed again with ``pack`` (the worker's code, in this process):
    face rows of the new model version in the face table. Returns (version, images)."""
    import io
    import uuid
    from datetime import UTC, datetime

    import pyarrow.parquet as pq

    from faceidx.search.photo import PhotoEmbedder
    from faceidx.store.table import FaceTable
    from faceidx_worker import rows as worker_rows

    embedder = PhotoEmbedder.from_env({**os.environ, "FACEIDX_MODEL_DIR": str(pack)})
    photos = photos or (lambda image: f"s3://{image['image_bucket']}/{image['image_key']}")
    images = (
        FaceTable.open(location)
        .read(
            old, columns=["image_bucket", "image_key", "image_etag", "image_width", "image_height", "status"]
        )
        .to_pylist()
    )
    one_copy: dict[str, dict[str, Any]] = {}
    for image in sorted(images, key=lambda r: r["image_key"]):
        if image["status"] == "ok":
            one_copy.setdefault(image["image_key"].rsplit("/", 1)[-1], image)
    stamp = worker_rows.ModelStamp(embedder.model.name, embedder.model_version, embedder.model.embedding_size)
    rows: list[dict[str, Any]] = []
    for image in one_copy.values():
        found = embedder.faces(photos(image), location)
        outcome = worker_rows.ImageOutcome(
            image["image_bucket"], image["image_key"], image["image_etag"],
            image["image_width"], image["image_height"], faces=tuple(found),
        )  # fmt: skip
        rows += worker_rows.outcome_rows(
            outcome, model=stamp, job_id="demo:second-pack", indexed_at=datetime.now(UTC)
        )
    buffer = io.BytesIO()
    pq.write_table(worker_rows.rows_to_table(rows, stamp.dim), buffer)
    uri = f"{location.landing_uri}/dt={datetime.now(UTC):%Y-%m-%d}/part-second-pack-{uuid.uuid4()}.parquet"
    if uri.startswith("s3://"):
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        location.s3_client().put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
    else:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        Path(uri).write_bytes(buffer.getvalue())
    FaceTable.open(location).ingest()
    return embedder.model_version, len(one_copy)


def survival_report(
    location: IndexLocation,
    old: str,
    pack: Path,
    assets: Path,
    photos: Callable[[dict[str, Any]], str] | None = None,
) -> dict[str, Any]:
    """Corrections, a full re-cluster, a new model version re-clustered with carry_from: what was lost."""
    import time

    from faceidx.people.clustering import ClusterPolicy
    from faceidx.people.identities import run_recluster
    from faceidx.people.survival import snapshot, survival
    from faceidx.people.tasks import assignment_threshold
    from faceidx.store.registry import ModelRegistry

    started = time.perf_counter()
    choice = assignment_threshold(ModelRegistry(location).calibration(old), old, None)
    policy = ClusterPolicy(threshold=choice.threshold)
    made = _corrections(location, old, _faces_by_identity(location, old, assets))
    before = snapshot(location, old)
    run_recluster(location, old, policy)
    rerun = survival(location, before, old)
    new, images = _index_with(location, pack, old, photos)
    run_recluster(location, new, policy, carry_from=old)
    switch = survival(location, before, new)
    return {
        "corrections": len(made),
        "made": made,
        "old": old,
        "new": new,
        "images": images,
        "rerun": rerun.line(),
        "switch": switch.line(),
        "lost": rerun.lost + switch.lost,
        "what_was_lost": [
            *rerun.labels_lost,
            *rerun.corrections_lost,
            *switch.labels_lost,
            *switch.corrections_lost,
        ],
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str]) -> int:
    location = IndexLocation.from_env()
    if argv[0] == "survival":  # survival OLD_VERSION SECOND_PACK ASSETS
        print(json.dumps(survival_report(location, argv[1], Path(argv[2]), Path(argv[3]))))
        return 0
    report = {"stats": table_stats, "people": people}[argv[0]](location)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
