"""The checker of ``bench_races``: what the index holds after the race, counted against what was written.

Every count in :data:`MUST_BE_ZERO` is an invariant: a corrupt table or index, a lost or duplicated
row, a forgotten face found anywhere (table, a vector version, face_persons, a person's centroid or
representative, a crop), an erasure without exactly one verified receipt, an open intent, a failed
search.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceidx.common.uris import split_s3_uri
from faceidx.store.location import IndexLocation

CENTROID_MATCH = 0.9999  # a centroid this close to an erased face still is that face (as forget checks)

MUST_BE_ZERO = (
    "table corrupt",
    "table files missing",
    "vector versions corrupt",
    "rows lost",
    "rows duplicated",
    "vectors missing",
    "vectors duplicated",
    "crops lost",
    "resurrected: table",
    "resurrected: vectors",
    "resurrected: face_persons",
    "resurrected: persons",
    "resurrected: crops",
    "erasures unfinished",
    "erasures without one receipt",
    "intents of the same target",
    "receipts unverified",
    "open intents",
    "search failures",
)


@dataclass
class Manifest:
    """What the workers wrote: image key -> (row ids, face id -> embedding per version, crops)."""

    row_ids: dict[str, list[str]] = field(default_factory=dict)
    faces: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    crops: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        manifest = cls()
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            manifest.row_ids[entry["key"]] = entry["row_ids"]
            manifest.faces[entry["key"]] = entry["faces"]
            manifest.crops[entry["key"]] = entry["crops"]
        return manifest

    def ids_of(self, keys: set[str]) -> set[str]:
        return {face for key in keys for face in self.row_ids.get(key, [])}

    def crops_of(self, keys: set[str]) -> set[str]:
        return {crop for key in keys for crop in self.crops.get(key, [])}

    def embeddings_of(self, keys: set[str]) -> dict[str, np.ndarray]:
        """Model version -> the erased faces' embeddings (unit rows)."""
        grouped: dict[str, list[list[float]]] = {}
        for key in keys:
            for version, faces in self.faces.get(key, {}).items():
                grouped.setdefault(version, []).extend(faces.values())
        return {v: np.asarray(rows, dtype=np.float32) for v, rows in grouped.items() if rows}


def receipts(location: IndexLocation) -> list[dict[str, Any]]:
    root = location.receipts_uri
    parts = split_s3_uri(root) if root.startswith("s3://") else None
    if parts is None:
        folder = Path(root)
        uris = [str(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    else:
        client = location.s3_client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=parts[0], Prefix=parts[1] + "/")
        uris = [f"s3://{parts[0]}/{o['Key']}" for page in pages for o in page.get("Contents", [])]
    return [location.read_json(uri) for uri in uris]


@dataclass
class Checked:
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, value: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + int(value)

    def violations(self) -> dict[str, int]:
        broken = {name: self.counts.get(name, 0) for name in MUST_BE_ZERO if self.counts.get(name, 0)}
        if self.counts.get("receipts", 0) != self.counts.get("erasures", 0):
            broken["receipts != erasures"] = self.counts.get("receipts", 0) - self.counts.get("erasures", 0)
        return broken


def _check_table(location: IndexLocation, checked: Checked) -> Any:
    """The table at its latest version: loads, every data file present, readable. Its rows, or None."""
    from deltalake import DeltaTable

    from faceidx.store.table import FaceTable

    try:
        delta = DeltaTable(location.table_uri, storage_options=location.storage_options() or None)
        files = delta.file_uris()
        missing = [uri for uri in files if not location.exists(uri)]
        checked.add("table version", delta.version())
        checked.add("table data files", len(files))
        checked.add("table files missing", len(missing))
        checked.notes += [f"missing table file {uri}" for uri in missing[:5]]
        return FaceTable.open(location).read(columns=["face_id", "image_key", "model_version", "face_index"])
    except Exception as error:  # noqa: BLE001 - any failure is a finding
        checked.add("table corrupt", 1)
        checked.notes.append(f"face table: {type(error).__name__}: {error}")
        return None


def _check_vectors(location: IndexLocation, checked: Checked) -> dict[str, list[str]]:
    """Every version's Lance tables (its month shards) open and answer a search. Model version -> its
    face ids."""
    from faceidx.store.vectors import VectorIndex

    index = VectorIndex(location)
    held: dict[str, list[str]] = {}
    for version in sorted(index.versions()):
        try:
            ids = index.face_ids(version)
            dim = index.dimension(version)
            index.search(np.ones((1, dim), np.float32) / np.sqrt(dim), model_version=version, k=3)
            held[version] = ids
        except Exception as error:  # noqa: BLE001 - any failure is a finding
            checked.add("vector versions corrupt", 1)
            checked.notes.append(f"vectors {version}: {type(error).__name__}: {error}")
    checked.add("vector versions", len(held))
    return held


def check_index(location: IndexLocation, manifest: Manifest, erasures: list[dict[str, Any]]) -> Checked:
    """Count everything :data:`MUST_BE_ZERO` names, plus what was written and erased."""
    from faceidx.store.intents import ErasureIntents
    from faceidx.store.persons import PeopleStore

    checked = Checked()
    erased_keys = {e["key"] for e in erasures if e.get("finished")}
    kept_keys = set(manifest.row_ids) - erased_keys
    erased_ids = manifest.ids_of(erased_keys)
    checked.add("images written", len(manifest.row_ids))
    checked.add("images erased", len(erased_keys))
    checked.add("rows expected", len(manifest.ids_of(kept_keys)))
    rows = _check_table(location, checked)
    table_ids: set[str] = set()
    faces_by_version: dict[str, set[str]] = {}
    if rows is not None:
        ids = rows["face_id"].to_pylist()
        table_ids = set(ids)
        checked.add("table rows", len(ids))
        checked.add("rows duplicated", len(ids) - len(table_ids))
        checked.add("rows lost", len(manifest.ids_of(kept_keys) - table_ids))
        checked.add("resurrected: table", len(erased_ids & table_ids))
        for face, version, face_index in zip(
            ids, rows["model_version"].to_pylist(), rows["face_index"].to_pylist(), strict=True
        ):
            if face_index is not None:
                faces_by_version.setdefault(version, set()).add(face)
    vectors = _check_vectors(location, checked)
    for version, ids in vectors.items():
        checked.add("vectors", len(ids))
        checked.add("vectors duplicated", len(ids) - len(set(ids)))
        checked.add("vectors missing", len(faces_by_version.get(version, set()) - set(ids)))
        checked.add("resurrected: vectors", len(erased_ids & set(ids)))
    people = PeopleStore(location)
    mapped = set(people.read("face_persons")["face_id"].to_pylist())
    checked.add("face_persons rows", len(mapped))
    checked.add("resurrected: face_persons", len(erased_ids & mapped))
    erased_vectors = manifest.embeddings_of(erased_keys)
    persons = people.read("persons")
    checked.add("persons", persons.num_rows)
    for row in persons.select(
        ["person_id", "model_version", "centroids", "representative_face_id"]
    ).to_pylist():
        vectors_erased = erased_vectors.get(row["model_version"])
        still = row["representative_face_id"] in erased_ids
        if not still and row["centroids"] and vectors_erased is not None:
            centroids = np.asarray(row["centroids"], dtype=np.float32)
            still = float((centroids @ vectors_erased.T).max()) >= CENTROID_MATCH
        checked.add("resurrected: persons", int(still))
    checked.add("resurrected: crops", sum(location.exists(c) for c in manifest.crops_of(erased_keys)))
    checked.add("crops lost", sum(not location.exists(c) for c in manifest.crops_of(kept_keys)))
    # erasures, intents and receipts
    intents = ErasureIntents(location).all()
    saved = receipts(location)
    per_intent = Counter(r["id"] for r in saved)
    by_target = {i.target["value"]: i for i in intents}
    checked.add("erasures", len(erasures))
    checked.add("erasures unfinished", sum(1 for e in erasures if not e.get("finished")))
    checked.add("intents", len(intents))
    checked.add("open intents", sum(1 for i in intents if i.state != "finished"))
    checked.add("receipts", len(saved))
    checked.add("receipts unverified", sum(1 for r in saved if not r["verification"].get("passed")))
    without_one = [
        e["key"]
        for e in erasures
        if (intent := by_target.get(f"s3://photos/{e['key']}")) is None or per_intent[intent.id] != 1
    ]
    checked.add("erasures without one receipt", len(without_one))
    checked.add("intents of the same target", len(intents) - len(by_target))
    checked.notes += [f"erasure of {key}: not exactly one receipt" for key in without_one[:5]]
    for name in MUST_BE_ZERO:
        checked.counts.setdefault(name, 0)
    return checked
