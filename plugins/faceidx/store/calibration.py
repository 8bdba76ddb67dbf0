"""A calibrated threshold per model version: similarity -> false-accept rate, from impostor pairs.

Two faces of one photo are two different people. Every photo with several faces therefore gives
impostor pairs for free, and their number grows with the index. Pairs of faces of two persons whose
centroids are far apart (at most :data:`WIDE_MARGIN` similar) are added when persons exist. From the
impostor similarities, the threshold at a false-accept rate (FAR) ``f`` is the similarity that at most
a share ``f`` of the impostor pairs reach: a pair at or above it is "same person" at FAR ``f``.

A FAR needs at least ``1 / f`` impostor pairs to be measured at all (fewer pairs cannot tell 1e-4 from
0): below that, the row says ``enough: false`` and :func:`choose_threshold` falls back to the
documented conservative default :data:`DEFAULT_THRESHOLD`, saying so.

The pure part (:func:`same_image_similarities`, :func:`cross_person_similarities`, :func:`far_table`,
:func:`choose_threshold`) takes plain arrays; :func:`compute_calibration` reads the face table (a
sample of the images with several faces) and the persons tables of one version. The result is stored
by :class:`faceidx.store.registry.ModelRegistry` in its JSON document.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from faceidx.store.location import IndexLocation

FARS: tuple[float, ...] = (1e-2, 1e-3, 1e-4, 1e-5)
DEFAULT_FAR = 1e-4
# The conservative threshold used where no calibration covers the FAR asked for. It sits above what
# different persons reach with the packs we know (siblings about 0.36 with 512-d ArcFace, different
# persons up to 0.27 with the 128-d MobileFaceNet of the test assets): few false accepts, some misses.
DEFAULT_THRESHOLD = 0.40
WIDE_MARGIN = 0.10  # two persons whose centroids are at most this similar are surely two people
MAX_IMAGES = 20_000  # images with several faces read per calibration (a random sample above)
MAX_FACES_PER_IMAGE = 40  # a crowd photo gives at most 780 pairs
MAX_CROSS_PAIRS = 200_000
IDS_PER_READ = 2_000
CHUNK = 4_096  # pairs of persons compared at once (4 centroids of 512 floats each: about 32 MB a side)


@dataclass(frozen=True)
class FarRow:
    """One row of the table: the threshold at ``far``, or ``None`` when there are too few pairs."""

    far: float
    threshold: float | None
    pairs: int  # impostor pairs behind the row
    needed: int  # pairs the FAR needs (1 / far)
    above: int  # impostor pairs at or above the threshold (at most far * pairs)

    @property
    def enough(self) -> bool:
        return self.threshold is not None


@dataclass(frozen=True)
class Calibration:
    """The similarity -> FAR table of one model version, and what it was computed from."""

    model_version: str
    computed_at: str
    same_image_pairs: int
    cross_person_pairs: int
    images: int  # images with several faces that gave pairs
    images_with_several_faces: int
    rows: tuple[FarRow, ...] = field(default_factory=tuple)
    max_impostor: float | None = None

    @property
    def pairs(self) -> int:
        return self.same_image_pairs + self.cross_person_pairs

    def row(self, far: float) -> FarRow | None:
        """The row for ``far``: exact, else the strictest tabled FAR at or below it (conservative)."""
        candidates = [r for r in self.rows if r.far <= far * (1 + 1e-9)]
        return max(candidates, key=lambda r: r.far) if candidates else None

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["rows"] = [asdict(r) for r in self.rows]
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Calibration:
        return cls(
            model_version=str(document["model_version"]),
            computed_at=str(document.get("computed_at", "")),
            same_image_pairs=int(document.get("same_image_pairs", 0)),
            cross_person_pairs=int(document.get("cross_person_pairs", 0)),
            images=int(document.get("images", 0)),
            images_with_several_faces=int(document.get("images_with_several_faces", 0)),
            rows=tuple(FarRow(**r) for r in document.get("rows", [])),
            max_impostor=document.get("max_impostor"),
        )

    def table_rows(self) -> list[tuple[Any, ...]]:
        """``far, threshold, impostor pairs, pairs needed, note`` for a printed table."""
        return [
            (
                f"{r.far:.0e}",
                f"{r.threshold:.4f}" if r.threshold is not None else "-",
                r.pairs,
                r.needed,
                "" if r.enough else f"not enough pairs: default {DEFAULT_THRESHOLD:.2f} used",
            )
            for r in self.rows
        ]


TABLE_HEADERS = ("FAR", "threshold", "impostor pairs", "pairs needed", "note")


def as_unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def same_image_similarities(
    embeddings: np.ndarray, image_ids: Sequence[str], max_faces_per_image: int = MAX_FACES_PER_IMAGE
) -> np.ndarray:
    """Cosine similarity of every pair of faces of one image (two faces of one photo: two people)."""
    if len(image_ids) < 2:
        return np.zeros(0, np.float32)
    x = as_unit(embeddings)
    groups: dict[str, list[int]] = {}
    for position, image in enumerate(image_ids):
        groups.setdefault(image, []).append(position)
    out = []
    for members in groups.values():
        if len(members) < 2:
            continue
        rows = x[members[:max_faces_per_image]]
        sims = rows @ rows.T
        out.append(sims[np.triu_indices(len(rows), k=1)])
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def cross_person_similarities(
    embeddings: np.ndarray,
    person_ids: Sequence[str | None],
    centroids: dict[str, np.ndarray],
    *,
    wide_margin: float = WIDE_MARGIN,
    max_pairs: int = MAX_CROSS_PAIRS,
    seed: int = 0,
) -> np.ndarray:
    """Similarities of random face pairs of two persons whose centroids are at most ``wide_margin``
    similar (every pair of their centroids): pairs that are surely of two people."""
    x = as_unit(embeddings)
    known = [i for i, p in enumerate(person_ids) if p is not None and p in centroids]
    if len(known) < 2:
        return np.zeros(0, np.float32)
    rng = np.random.default_rng(seed)
    persons = sorted({str(person_ids[i]) for i in known})
    if len(persons) < 2:
        return np.zeros(0, np.float32)
    code = {p: c for c, p in enumerate(persons)}
    most = max(np.asarray(centroids[p]).reshape(-1, x.shape[1]).shape[0] for p in persons)
    padded = np.zeros((len(persons), most, x.shape[1]), np.float32)
    present = np.zeros((len(persons), most), bool)
    for c, p in enumerate(persons):
        units = as_unit(np.asarray(centroids[p], np.float32).reshape(-1, x.shape[1]))
        padded[c, : len(units)] = units
        present[c, : len(units)] = True
    faces = np.asarray(known)
    codes = np.asarray([code[str(person_ids[i])] for i in known])
    tries = min(max_pairs * 4, len(faces) * (len(faces) - 1) * 2)
    a = rng.integers(0, len(faces), tries)
    b = rng.integers(0, len(faces), tries)
    keep = (codes[a] != codes[b]) & (a < b)
    a, b = a[keep], b[keep]
    far_apart = np.zeros(len(a), bool)
    for start in range(0, len(a), CHUNK):  # every centroid pair of the two persons, in chunks
        pa, pb = codes[a[start : start + CHUNK]], codes[b[start : start + CHUNK]]
        sims = np.einsum("kmd,knd->kmn", padded[pa], padded[pb])
        valid = present[pa][:, :, None] & present[pb][:, None, :]
        far_apart[start : start + len(pa)] = np.where(valid, sims, -np.inf).max(axis=(1, 2)) <= wide_margin
    pairs = np.unique(np.stack([a[far_apart], b[far_apart]], axis=1), axis=0)[:max_pairs]
    if not len(pairs):
        return np.zeros(0, np.float32)
    i, j = faces[pairs[:, 0]], faces[pairs[:, 1]]
    return np.einsum("ij,ij->i", x[i], x[j]).astype(np.float32)


def far_table(similarities: np.ndarray, fars: Sequence[float] = FARS) -> tuple[FarRow, ...]:
    """The threshold at each FAR: the smallest 4-decimal similarity that at most ``far * n`` impostor
    pairs reach. Fewer than ``1 / far`` pairs: no threshold (``enough`` false)."""
    values = np.sort(np.asarray(similarities, dtype=np.float64))[::-1]
    n = len(values)
    rows = []
    for far in sorted(fars, reverse=True):
        needed = math.ceil(1 / far - 1e-9)
        if n < needed:
            rows.append(FarRow(far=far, threshold=None, pairs=n, needed=needed, above=0))
            continue
        allowed = math.floor(far * n + 1e-9)  # impostor pairs allowed at or above the threshold
        boundary = float(values[allowed]) if allowed < n else -1.0
        threshold = min(1.0, math.floor(boundary * 1e4) / 1e4 + 1e-4)
        above = int(np.count_nonzero(values >= threshold))
        rows.append(FarRow(far=far, threshold=round(threshold, 4), pairs=n, needed=needed, above=above))
    return tuple(rows)


def calibration_from_similarities(
    model_version: str,
    same_image: np.ndarray,
    cross_person: np.ndarray,
    *,
    images: int,
    images_with_several_faces: int,
    fars: Sequence[float] = FARS,
) -> Calibration:
    both = np.concatenate([np.asarray(same_image, np.float32), np.asarray(cross_person, np.float32)])
    return Calibration(
        model_version=model_version,
        computed_at=datetime.now(UTC).isoformat(),
        same_image_pairs=len(same_image),
        cross_person_pairs=len(cross_person),
        images=images,
        images_with_several_faces=images_with_several_faces,
        rows=far_table(both, fars),
        max_impostor=round(float(both.max()), 4) if len(both) else None,
    )


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold in force, the FAR it stands for (None: a similarity set by hand) and its source."""

    threshold: float
    far: float | None
    source: str
    calibrated: bool
    note: str | None = None

    def pairs(self) -> list[tuple[str, Any]]:
        rows: list[tuple[str, Any]] = [
            ("threshold (cosine)", f"{self.threshold:.4f}"),
            ("at FAR", f"{self.far:.0e}" if self.far is not None else "(set by hand)"),
            ("threshold source", self.source),
        ]
        if self.note:
            rows.append(("note", self.note))
        return rows


def choose_threshold(
    calibration: Calibration | None,
    model_version: str,
    *,
    far: float | None = None,
    min_similarity: float | None = None,
    default: float = DEFAULT_THRESHOLD,
    default_name: str = "the conservative default",
) -> ThresholdChoice:
    """``min_similarity`` when given; else the calibration's threshold at ``far`` (default
    :data:`DEFAULT_FAR`); else ``default``, with a note saying why."""
    if min_similarity is not None:
        if not -1.0 <= min_similarity <= 1.0:
            raise ValueError(f"--min-similarity {min_similarity} is not a cosine similarity (-1..1)")
        return ThresholdChoice(float(min_similarity), None, "set by hand (--min-similarity)", False)
    far = DEFAULT_FAR if far is None else float(far)
    if not 0.0 < far < 1.0:
        raise ValueError(f"--far {far} is not a false-accept rate: give a number between 0 and 1, e.g. 1e-4")
    fallback = f"{default_name} {default:.2f}"
    if calibration is None:
        return ThresholdChoice(
            default,
            far,
            fallback,
            False,
            f"model version {model_version} has no calibration yet (`faceidx models calibrate`, or the "
            f"next face_identities run, computes it): {fallback} is used",
        )
    row = calibration.row(far)
    if row is None or not row.enough:
        have = calibration.pairs
        needed = row.needed if row is not None else math.ceil(1 / far)
        return ThresholdChoice(
            default,
            far,
            fallback,
            False,
            f"not enough pairs for FAR {far:.0e} in the calibration of {model_version} "
            f"({have} impostor pairs, {needed} needed): {fallback} is used",
        )
    assert row.threshold is not None
    return ThresholdChoice(
        row.threshold,
        row.far,
        f"calibration of {model_version} ({row.pairs} impostor pairs, {calibration.computed_at[:19]})",
        True,
    )


# -- reading the index --------------------------------------------------------------------------
def compute_calibration(
    location: IndexLocation,
    model_version: str,
    *,
    table: Any = None,
    max_images: int = MAX_IMAGES,
    seed: int = 0,
) -> Calibration:
    """The calibration of ``model_version`` from the face table (a sample of at most ``max_images``
    images with several faces) and, where persons exist, pairs of far-apart persons."""
    import pyarrow.compute as pc

    from faceidx.store.persons import sql_string
    from faceidx.store.table import FaceTable

    table = table if table is not None else FaceTable.open_if_exists(location)
    if table is None:
        return calibration_from_similarities(
            model_version, np.zeros(0), np.zeros(0), images=0, images_with_several_faces=0
        )
    ids = table.read(model_version, columns=["image_id"], filter="face_index IS NOT NULL")
    counts = ids.group_by("image_id").aggregate([("image_id", "count")])
    several = counts.filter(pc.greater_equal(counts["image_id_count"], 2))["image_id"].to_pylist()
    several = sorted(str(v) for v in several)
    chosen = several
    if len(several) > max_images:
        rng = np.random.default_rng(seed)
        chosen = sorted(several[i] for i in rng.choice(len(several), max_images, replace=False))
    face_ids: list[str] = []
    image_ids: list[str] = []
    vectors: list[np.ndarray] = []
    for start in range(0, len(chosen), IDS_PER_READ):
        chunk = chosen[start : start + IDS_PER_READ]
        where = (
            "face_index IS NOT NULL AND embedding IS NOT NULL AND image_id IN ("
            + ", ".join(sql_string(v) for v in chunk)
            + ")"
        )
        rows = table.read(model_version, columns=["face_id", "image_id", "embedding"], filter=where)
        if not rows.num_rows:
            continue
        face_ids += rows.column("face_id").to_pylist()
        image_ids += rows.column("image_id").to_pylist()
        flat = rows.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        vectors.append(flat.reshape(rows.num_rows, -1).astype(np.float32))
    if not vectors:
        return calibration_from_similarities(
            model_version, np.zeros(0), np.zeros(0), images=0, images_with_several_faces=len(several)
        )
    x = np.vstack(vectors)
    same = same_image_similarities(x, image_ids)
    cross = _cross_person(location, model_version, x, face_ids, seed)
    return calibration_from_similarities(
        model_version, same, cross, images=len(set(image_ids)), images_with_several_faces=len(several)
    )


def _cross_person(
    location: IndexLocation, model_version: str, x: np.ndarray, face_ids: list[str], seed: int
) -> np.ndarray:
    from faceidx.store.persons import PeopleStore

    store = PeopleStore(location)
    persons = store.read("persons", model_version)
    if persons.num_rows < 2:
        return np.zeros(0, np.float32)
    centroids = {
        r["person_id"]: np.asarray(r["centroids"], np.float32)
        for r in persons.select(["person_id", "centroids"]).to_pylist()
        if r["centroids"]
    }
    mapping = store.mapping(model_version)
    return cross_person_similarities(x, [mapping.get(f) for f in face_ids], centroids, seed=seed)
