"""The review of an identities run: what a person should look at, and what each answer records.

After a ``face_identities`` run, two kinds of decision are left to a person:

- **merge**: two persons (one of them new or grown in this run) whose centroids reach the policy's
  ``merge_proposal`` similarity: the same person twice, or two look-alikes (siblings, a parent and a
  child)?
- **assign**: a face of this run that two persons claimed within the ``margin`` (outcome
  ``ambiguous``, left in the buffer): does it belong to the closer one?

Each becomes one review item; the DAG shows each as a Human-in-the-loop task in the Airflow UI's
Required Actions (options :data:`REVIEW_OPTIONS`) and turns the answer into a correction event through
:func:`faceidx.people.actions.correct`, replayed by every later re-cluster like the others:

| item | Accept | Reject | Skip (also: no answer before the timeout) |
| --- | --- | --- | --- |
| merge | ``merge`` (the second person into the first) | ``keep_apart`` (never proposed again) | nothing |
| assign | ``move`` (the face into the person) | ``keep_apart`` (the face is not that person) | nothing |

The item builders and the answer -> correction mapping are pure; :func:`review_items` reads the stores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from faceidx.people.corrections import EventKind

if TYPE_CHECKING:  # the DAG file reads this module's constants: no numpy at its parse
    import numpy as np

    from faceidx.people.clustering import ClusterPolicy
    from faceidx.store.location import IndexLocation

ACCEPT, REJECT, SKIP = "Accept", "Reject", "Skip"
REVIEW_OPTIONS = [ACCEPT, REJECT, SKIP]
REVIEW_DEFAULT = SKIP  # what an unanswered review task takes when its timeout passes
# face_identities runs hourly, one run at a time: a review left open past this lets the next run start
REVIEW_TIMEOUT = timedelta(minutes=50)
MAX_REVIEW_ITEMS = 20  # per run, the closest first; the rest come back when their persons change
PRESIGN_SECONDS = 3600  # a crop's presigned URL outlives the review's timeout


@dataclass(frozen=True)
class Candidate:
    """A pair that needs a decision: persons ``a`` and ``b`` (merge), or face ``face_id`` and person
    ``a`` with runner-up ``b`` (assign); ``similarity`` of the pair (assign: to ``a``)."""

    kind: str  # merge | assign
    a: str
    b: str | None
    similarity: float
    face_id: str | None = None
    runner_up: float | None = None


def merge_pairs(
    person_ids: Sequence[str],
    owner: np.ndarray,
    centroids: np.ndarray,
    touched: set[str],
    threshold: float,
    *,
    kept_apart: set[frozenset[str]] | None = None,
) -> list[Candidate]:
    """Pairs of persons, one of them in ``touched``, whose best centroid pair reaches ``threshold``,
    the most similar first; pairs a user kept apart are left out. ``owner[i]`` is the position in
    ``person_ids`` of centroid row ``i`` (unit rows)."""
    import numpy as np

    kept_apart = kept_apart or set()
    rows = [i for i, o in enumerate(owner) if person_ids[int(o)] in touched]
    best: dict[tuple[str, str], float] = {}
    if rows:
        sims = centroids[rows] @ centroids.T
        for r, row in zip(rows, sims, strict=True):
            for j in np.flatnonzero(row >= threshold):
                a, b = person_ids[int(owner[r])], person_ids[int(owner[j])]
                if a == b or frozenset((a, b)) in kept_apart:
                    continue
                key = (min(a, b), max(a, b))
                best[key] = max(best.get(key, -2.0), float(row[j]))
    ordered = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
    return [Candidate("merge", a, b, round(s, 4)) for (a, b), s in ordered]


def assign_candidates(
    face_ids: Sequence[str],
    embeddings: np.ndarray,
    person_ids: Sequence[str],
    owner: np.ndarray,
    centroids: np.ndarray,
    *,
    kept_apart: set[frozenset[str]] | None = None,
) -> list[Candidate]:
    """For each ambiguous face: its closest person and the runner-up (by best centroid), the closest
    first; a face a user already kept out of its closest person is left out."""
    if not len(face_ids) or not len(person_ids):
        return []
    sims = embeddings @ centroids.T
    out = []
    for face, row in zip(face_ids, sims, strict=True):
        per_person: dict[str, float] = {}
        for j, sim in enumerate(row):
            pid = person_ids[int(owner[j])]
            per_person[pid] = max(per_person.get(pid, -2.0), float(sim))
        ranked = sorted(per_person.items(), key=lambda kv: (-kv[1], kv[0]))
        best, sim = ranked[0]
        if frozenset((face, best)) in (kept_apart or set()):
            continue
        runner = ranked[1] if len(ranked) > 1 else (None, None)
        out.append(Candidate("assign", best, runner[0], round(sim, 4), face, _round(runner[1])))
    return sorted(out, key=lambda c: (-c.similarity, c.face_id or ""))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def kept_apart_pairs(events: Iterable[Any]) -> set[frozenset[str]]:
    """Every pair a ``keep_apart`` event names: two persons, or a face and a person."""
    pairs: set[frozenset[str]] = set()
    for event in events:
        if event.kind is not EventKind.KEEP_APART:
            continue
        p = event.payload
        if p.get("other_person_id"):
            pairs.add(frozenset((p["person_id"], p["other_person_id"])))
        pairs.update(frozenset((face, p["person_id"])) for face in p.get("face_ids") or [])
    return pairs


def item_of(candidate: Candidate, model_version: str, faces: Mapping[str, Mapping[str, Any]]) -> dict:
    """The review item (plain JSON, an XCom): the candidate and how to show its faces."""
    item: dict[str, Any] = {
        "kind": candidate.kind,
        "model_version": model_version,
        "person_id": candidate.a,
        "similarity": candidate.similarity,
    }
    if candidate.kind == "merge":
        item["other_person_id"] = candidate.b
    else:
        item.update(face_id=candidate.face_id, runner_up_id=candidate.b, runner_up=candidate.runner_up)
    item["faces"] = {key: dict(faces[key]) for key in _shown(item) if key in faces}
    return item


def _shown(item: Mapping[str, Any]) -> list[str]:
    """The keys of ``item["faces"]``: a person id (its representative face) or a face id."""
    if item["kind"] == "merge":
        return [item["person_id"], item["other_person_id"]]
    return [item["face_id"], item["person_id"]]


def _face_markdown(info: Mapping[str, Any] | None) -> str:
    """One face: its crop as an image where the browser can load it, else the photo and the box."""
    if not info:
        return "(no face row found)"
    where = f"photo `{info.get('image')}`, box `{info.get('bbox')}`"
    crop = str(info.get("crop_url") or "")
    if crop.startswith(("http://", "https://")):
        return f"![face {info.get('face_id')}]({crop}) {where}"
    if info.get("crop_uri"):
        where += f", crop `{info['crop_uri']}`"
    return where


def prompt(item: Mapping[str, Any]) -> dict[str, str]:
    """The HITL task's ``subject`` and Markdown ``body`` for one item."""
    faces = item.get("faces", {})
    if item["kind"] == "merge":
        a, b = item["person_id"], item["other_person_id"]
        subject = f"Same person? {a} and {b} (similarity {item['similarity']:.2f})"
        lines = [
            f"Two persons of model version `{item['model_version']}` may be one person: their "
            f"centroids are **{item['similarity']:.3f}** similar.",
            "",
            f"- person `{a}`: {_face_markdown(faces.get(a))}",
            f"- person `{b}`: {_face_markdown(faces.get(b))}",
            "",
            f"**Accept**: merge `{b}` into `{a}`. **Reject**: keep them apart (not proposed again). "
            "**Skip**: decide later.",
        ]
    else:
        face, pid = item["face_id"], item["person_id"]
        runner = item.get("runner_up_id")
        subject = f"Is face {face[:12]} person {pid}? (similarity {item['similarity']:.2f})"
        close = (
            f", but `{runner}` is close too ({item['runner_up']:.3f})"
            if runner and item.get("runner_up") is not None
            else ""
        )
        lines = [
            f"A new face of model version `{item['model_version']}` is closest to person `{pid}` "
            f"(similarity **{item['similarity']:.3f}**){close}, so it was left waiting.",
            "",
            f"- face `{face}`: {_face_markdown(faces.get(face))}",
            f"- person `{pid}`: {_face_markdown(faces.get(pid))}",
            "",
            f"**Accept**: the face joins `{pid}`. **Reject**: it is not `{pid}` (kept apart). "
            "**Skip**: decide later.",
        ]
    return {"subject": subject, "body": "\n".join(lines)}


def corrections(item: Mapping[str, Any], answer: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The correction an answer to ``item`` records (``faceidx.people.actions.correct`` keyword
    arguments, with ``actor``): none for Skip, no answer, or the timeout's default."""
    chosen = list((answer or {}).get("chosen_options") or [])
    if chosen not in ([ACCEPT], [REJECT]):
        return []
    user = (answer or {}).get("responded_by_user") or {}
    actor = f"review:{user.get('name') or user.get('id') or 'unknown'}"
    if item["kind"] == "merge":
        action = EventKind.MERGE if chosen == [ACCEPT] else EventKind.KEEP_APART
        return [
            {
                "action": action.value,
                "person_id": item["person_id"],
                "other_person_id": item["other_person_id"],
                "actor": actor,
            }
        ]
    action = EventKind.MOVE if chosen == [ACCEPT] else EventKind.KEEP_APART
    return [
        {
            "action": action.value,
            "person_id": item["person_id"],
            "face_ids": [item["face_id"]],
            "actor": actor,
        }
    ]


def review_items(
    location: IndexLocation,
    model_version: str,
    since: datetime,
    policy: ClusterPolicy,
    limit: int = MAX_REVIEW_ITEMS,
) -> list[dict[str, Any]]:
    """The review of the run that started at ``since``: merges among the persons it wrote, then its
    ambiguous faces; at most ``limit`` items, the closest first. Reads only."""
    import numpy as np

    from faceidx.people.identities import events, read_faces
    from faceidx.people.incremental import Outcome, PersonIndex
    from faceidx.store.persons import PeopleStore, sql_string

    store = PeopleStore(location)
    persons = store.read("persons", model_version)
    centroids = {
        row["person_id"]: np.asarray(row["centroids"], dtype=np.float32)
        for row in persons.select(["person_id", "centroids"]).to_pylist()
        if row["centroids"]
    }
    if not centroids:
        return []
    index = PersonIndex.from_centroids(centroids)
    touched = {
        row["person_id"]
        for row in persons.select(["person_id", "updated_at"]).to_pylist()
        if row["updated_at"] is not None and row["updated_at"] >= since
    }
    apart = kept_apart_pairs(events(store, model_version))
    found = merge_pairs(
        index.person_ids, index.owner, index.centroids, touched, policy.merge_proposal, kept_apart=apart
    )
    waiting = store.read(
        "face_persons", model_version, filter=f"method = {sql_string(Outcome.AMBIGUOUS.value)}"
    )
    ambiguous = [
        row["face_id"]
        for row in waiting.select(["face_id", "assigned_at"]).to_pylist()
        if row["assigned_at"] is not None and row["assigned_at"] >= since
    ]
    if ambiguous and len(found) < limit:
        faces = read_faces(
            location, model_version, filter=f"face_id IN ({', '.join(sql_string(f) for f in ambiguous)})"
        )
        from faceidx.people.clustering import as_unit

        found += assign_candidates(
            faces.face_ids,
            as_unit(faces.embeddings),
            index.person_ids,
            index.owner,
            index.centroids,
            kept_apart=apart,
        )
    found = found[:limit]
    representative = dict(
        zip(
            persons.column("person_id").to_pylist(),
            persons.column("representative_face_id").to_pylist(),
            strict=True,
        )
    )
    wanted = {c.face_id for c in found if c.face_id} | {
        representative.get(p) for c in found for p in (c.a, c.b) if p
    }
    rows = face_rows(location, model_version, sorted(f for f in wanted if f))
    shown = dict(rows)
    for pid, face in representative.items():
        if face in rows:
            shown[pid] = rows[face]
    return [item_of(c, model_version, shown) for c in found]


def face_rows(location: IndexLocation, model_version: str, face_ids: list[str]) -> dict[str, dict]:
    """face_id -> how to show it: photo, box, crop (and a URL a browser can load, for S3 crops)."""
    if not face_ids:
        return {}
    from faceidx.store.persons import sql_string
    from faceidx.store.table import FaceTable

    table = FaceTable.open(location)
    names = set(table.read(model_version, filter="1 = 0").column_names)
    columns = [c for c in ("face_id", "image_bucket", "image_key", "bbox", "crop_uri") if c in names]
    found = table.read(
        model_version,
        columns=columns,
        filter=f"face_id IN ({', '.join(sql_string(f) for f in face_ids)})",
    ).to_pylist()
    out = {}
    for row in found:
        crop = row.get("crop_uri")
        out[row["face_id"]] = {
            "face_id": row["face_id"],
            "image": f"s3://{row.get('image_bucket')}/{row.get('image_key')}",
            "bbox": [round(float(v), 1) for v in row.get("bbox") or []],
            "crop_uri": crop,
            "crop_url": crop_url(location, crop),
        }
    return out


def crop_url(location: IndexLocation, crop_uri: str | None) -> str | None:
    """A URL the reviewer's browser can load: http(s) as is, an S3 crop presigned (signed locally,
    no call), anything else (a local path) None."""
    if not crop_uri:
        return None
    if crop_uri.startswith(("http://", "https://")):
        return crop_uri
    from faceidx.common.uris import split_s3_uri

    parts = split_s3_uri(crop_uri)
    if parts is None:
        return None
    bucket, key = parts
    url: str = location.s3_client().generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=PRESIGN_SECONDS
    )
    return url
