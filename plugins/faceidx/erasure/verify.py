"""The erasure's verification: nothing of the erased faces left in the table, any vector table (every
shard of every model version), ``face_persons``, the persons' centroids and representatives, or the
crops."""

from __future__ import annotations

from typing import Any

from faceidx.erasure.targets import in_list
from faceidx.store.intents import ErasureIntent
from faceidx.store.location import IndexLocation

VERIFY_K = 10
CENTROID_MATCH = 0.9999  # a centroid this close to an erased face still is that face


def _indexed_versions(index: Any) -> set[str]:
    versions = getattr(index, "versions", None)
    return set(versions()) if callable(versions) else set()


def _held_vectors(index: Any, face_ids: list[str]) -> dict[str, list[str]]:
    """Vector table -> the erased face_ids it still holds, looked up by face_id in every table the
    index has (every month shard of every version), not only where a search would look."""
    locate = getattr(index, "locate", None)
    return dict(locate(face_ids)) if callable(locate) and face_ids else {}


def _captured(intent: ErasureIntent) -> dict[str, tuple[list[str], Any]]:
    import numpy as np

    return {
        version: (list(faces), np.asarray(list(faces.values()), dtype=np.float32))
        for version, faces in intent.embeddings.items()
        if faces
    }


def _verify(location: IndexLocation, table: Any, index: Any, intent: ErasureIntent) -> dict:
    """No row of the target in the table; no forgotten face among the nearest ``VERIFY_K`` of each
    captured embedding, in its own model version (a search over all its shards), nor held by any
    vector table; no face_persons row of the faces; no crop left; no
    person whose centroid or representative still is an erased face."""
    import numpy as np

    from faceidx.store.persons import PeopleStore

    captured = _captured(intent)
    left = table.read(columns=["face_id"], filter=intent.predicate).num_rows
    forgotten = set(intent.face_ids)
    indexed = _indexed_versions(index)
    found: set[str] = set()
    searches = 0
    not_indexed = []
    for version, (_, vectors) in sorted(captured.items()):
        if not len(vectors):
            continue
        if version not in indexed:
            not_indexed.append(version)  # no vector table for it: nothing there to find
            continue
        for matches in index.search(vectors, model_version=version, k=VERIFY_K):
            searches += 1
            found |= {m.face_id for m in matches} & forgotten
    held = _held_vectors(index, list(intent.face_ids))
    holding = {name: ids for name, ids in sorted(held.items()) if ids}
    found |= {face for ids in holding.values() for face in ids}
    people = PeopleStore(location)
    mapping_left = (
        people.read("face_persons", filter=in_list("face_id", intent.face_ids)).num_rows
        if intent.face_ids
        else 0
    )
    centroids_left: list[str] = []
    for version, (_, vectors) in sorted(captured.items()):
        persons = people.read("persons", version)
        for row in persons.select(["person_id", "centroids", "representative_face_id"]).to_pylist():
            if row["representative_face_id"] in forgotten:
                centroids_left.append(row["person_id"])
                continue
            if row["centroids"] and len(vectors):
                c = np.asarray(row["centroids"], dtype=np.float32)
                v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
                if float((c @ v.T).max()) >= CENTROID_MATCH:
                    centroids_left.append(row["person_id"])
    crops_left = [uri for uri in intent.crop_uris if location.exists(uri)]
    return {
        "table_rows_left": int(left),
        "searches": searches,
        "k": VERIFY_K,
        "versions_without_vectors": not_indexed,
        "found_face_ids": sorted(found),
        "vector_tables_checked": len(held),
        "vector_tables_holding_erased": holding,
        "face_persons_rows_left": int(mapping_left),
        "persons_still_holding_erased_faces": sorted(set(centroids_left)),
        "crops_left": crops_left,
        "passed": left == 0 and not found and not mapping_left and not centroids_left and not crops_left,
    }
