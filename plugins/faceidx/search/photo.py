"""Search by photo: the faces of one photo, each with its most similar faces in the index.

The photo goes through the worker's own code, so a query face is computed exactly like an indexed one:
:class:`faceidx_worker.model_settings.ModelSettings` reads the same ``FACEIDX_*`` model variables (the
model pack is ``FACEIDX_MODEL_DIR``), :class:`faceidx_worker.model.InsightFaceModelPack` loads it,
:class:`faceidx_worker.fetch.S3ImageLoader` / :func:`faceidx_worker.images.decode_image` read the photo
and :func:`faceidx_worker.indexer.index_images` detects, aligns and embeds (a photo with no face is
tried again turned, with the worker's ``FACEIDX_ROTATION_RETRY``). Embeddings of different
model versions are not comparable: the pack's version must be the version searched.

Which version: the one asked for, else the registry's current one
(``faceidx.store.registry.ModelRegistry``), else the only version the index holds; with several and no
registry the search stops and names them.

Which matches are the same person: those at or above the version's calibrated threshold at a stated
false-accept rate (``far``, default 1e-4; :mod:`faceidx.store.calibration`), or ``min_similarity``
when given. The others are "unknown": counted per face, listed only with ``list_all``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faceidx.common.tables import format_pairs
from faceidx.common.tables import format_table as render_table
from faceidx.common.uris import split_s3_uri

if TYPE_CHECKING:
    from faceidx.store.calibration import ThresholdChoice
    from faceidx.store.location import IndexLocation
    from faceidx.store.vectors import Match, VectorIndex

log = logging.getLogger(__name__)

DEFAULT_K = 10
MAX_K = 1000
# face_id -> person name, for the matches of one search (the people feature provides it).
PersonLookup = Callable[[list[str]], Mapping[str, str]]


class PhotoSearchError(ValueError):
    """The photo cannot be searched (unreadable, no face, wrong model version); nothing was changed."""


@dataclass(frozen=True)
class FaceMatch:
    image: str  # s3://bucket/key
    face_index: int
    bbox: tuple[float, ...]
    similarity: float
    face_id: str
    person: str | None = None
    quality_passed: bool | None = None
    verdict: str = "unknown"  # SAME_PERSON at or above the threshold in force


SAME_PERSON = "same person"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class QueryFace:
    face_index: int
    bbox: tuple[float, ...]
    det_score: float
    matches: list[FaceMatch] = field(default_factory=list)
    below_threshold: int = 0  # matches under the threshold, not listed (list_all lists them)
    rotation: int = 0  # degrees clockwise the photo was turned to find the face (FACEIDX_ROTATION_RETRY)


@dataclass(frozen=True)
class SearchResult:
    photo: str
    model_version: str
    k: int
    quality_only: bool
    faces: list[QueryFace]
    threshold: float = 0.0
    far: float | None = None
    threshold_source: str = ""
    threshold_note: str | None = None
    list_all: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


@dataclass
class PhotoEmbedder:
    """The worker's model pack and image settings, loaded once (a task or the CLI keeps one)."""

    model: Any
    model_version: str
    max_image_bytes: int
    max_image_pixels: int
    decode_min_side: int
    decode_mode: str = "adaptive"  # the worker's FACEIDX_DECODE: a query is decoded as the index was
    det_size: int = 640

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PhotoEmbedder:
        """The pack in ``FACEIDX_MODEL_DIR``, with the worker's own settings and loading code."""
        from faceidx_worker.envvars import SettingsError
        from faceidx_worker.model import InsightFaceModelPack
        from faceidx_worker.model_settings import ImageSettings, ModelSettings

        env = dict(os.environ if env is None else env)
        if not env.get("FACEIDX_MODEL_DIR"):
            raise PhotoSearchError(
                "FACEIDX_MODEL_DIR is not set: point it at the model pack the index was built with "
                "(the folder holding the detector and recognizer .onnx files)"
            )
        try:  # the model and image settings alone: a search has no queue and no output
            settings = ModelSettings.from_env(env)
            images = ImageSettings.from_env(env, settings)
        except SettingsError as error:
            raise PhotoSearchError(f"bad model settings: {error}") from None
        model = InsightFaceModelPack.from_settings(
            settings,
            settings.model_dir,
            name=settings.model_pack,
            version=settings.model_version,
            genderage=False,  # search compares embeddings only
        )
        model.load()
        return cls(
            model=model,
            model_version=model.version,
            max_image_bytes=images.max_image_bytes,
            max_image_pixels=images.max_image_pixels,
            decode_min_side=images.decode_min_side,
            decode_mode=images.decode,
            det_size=settings.det_size,
        )

    def faces(self, photo: str, location: IndexLocation | None = None) -> list[Any]:
        """The photo's detected faces (``faceidx_worker.rows.DetectedFace``), boxes in original pixels."""
        from faceidx_worker.events import ImageRef
        from faceidx_worker.face_decode import decode_for_faces
        from faceidx_worker.fetch import LoadedImage, S3ImageLoader
        from faceidx_worker.images import ImageError
        from faceidx_worker.indexer import index_images
        from faceidx_worker.rows import ErrorReason

        parts = split_s3_uri(photo)
        if photo.startswith("s3://"):
            if parts is None or not parts[1]:
                raise PhotoSearchError(f"{photo} is not an s3://bucket/key URI")
            bucket, key = parts
            client = location.s3_client() if location is not None else _default_s3()
            loader = S3ImageLoader(
                client,
                max_image_bytes=self.max_image_bytes,
                max_image_pixels=self.max_image_pixels,
                decode_min_side=self.decode_min_side,
                decode_mode=self.decode_mode,
                det_size=self.det_size,
            )
            loaded = loader.load(ImageRef(bucket=bucket, key=key))
            if loaded.retryable is not None:
                raise PhotoSearchError(f"{photo} cannot be read now: {loaded.retryable}")
        else:
            path = Path(photo.removeprefix("file://")).expanduser()
            if not path.is_file():
                raise PhotoSearchError(f"{photo}: no such file")
            loaded = LoadedImage(ref=ImageRef(bucket="", key=str(path)))
            data = path.read_bytes()
            if len(data) > self.max_image_bytes:
                raise PhotoSearchError(f"{photo}: {len(data)} bytes is over FACEIDX_MAX_IMAGE_BYTES")
            try:
                if not data:
                    raise ImageError(ErrorReason.DECODE_ERROR, "an empty file, 0 bytes")
                loaded.image = decode_for_faces(
                    data,
                    max_pixels=self.max_image_pixels,
                    mode=self.decode_mode,
                    det_size=self.det_size,
                    min_side=self.decode_min_side,
                )
            except ImageError as error:
                loaded.error = error
        if loaded.error is not None:
            raise PhotoSearchError(unreadable_photo_message(photo, loaded.error.reason, loaded.error.detail))
        outcome = index_images(self.model, [loaded]).outcomes[0]
        if not outcome.ok:
            raise PhotoSearchError(f"{photo}: {outcome.error_text}")
        return list(outcome.faces)


# What to do about a photo the worker's image code refused, by its reason (ErrorReason's values).
_UNREADABLE = {
    "decode_error": (
        "not a decodable image",
        "check that it is a complete image file (JPEG, PNG, WebP, ...): a truncated download or a file "
        "of another kind fails here; search again with a good copy",
    ),
    "too_many_pixels": ("too many pixels", "shrink it, or raise FACEIDX_MAX_IMAGE_PIXELS"),
    "too_large": ("too large", "shrink it, or raise FACEIDX_MAX_IMAGE_BYTES"),
    "not_found": ("not found", "check the bucket and the key"),
    "unavailable": ("unavailable (archived)", "restore the object first"),
}
# A Python object's repr inside a library's message ("cannot identify image file <_io.BytesIO object
# at 0x7f...>"): it names no file the user has and changes on every run.
_OBJECT_REPR = re.compile(r"\s*<[^<>]*\bat 0x[0-9a-fA-F]+>")


def unreadable_photo_message(photo: str, reason: str, detail: str) -> str:
    """``cannot read PHOTO: <what> (<detail>); <what to do>`` for a photo the image code refused."""
    what, todo = _UNREADABLE.get(str(reason), (str(reason), "check the file and search again"))
    detail = _OBJECT_REPR.sub("", detail).strip().removeprefix("not a readable image: ").strip()
    return (
        f"cannot read {photo}: {what} ({detail}); {todo}"
        if detail
        else f"cannot read {photo}: {what}; {todo}"
    )


def _default_s3() -> Any:
    import boto3

    return boto3.client("s3")


def resolve_model_version(location: IndexLocation, index: VectorIndex, requested: str | None) -> str:
    """The version to search: ``requested``, else the registry's current one, else the index's only one."""
    known = index.versions()
    if requested:
        if requested not in known:
            from faceidx.store.vectors import UnknownModelVersionError

            raise UnknownModelVersionError(requested, known)
        return requested
    from faceidx.store.registry import ModelRegistry

    # The version chosen with `faceidx models use` (read from the registry document only: a search
    # opens no face table).
    chosen = ModelRegistry(location).document().get("current")
    if chosen:
        if chosen not in known:
            from faceidx.store.vectors import UnknownModelVersionError

            raise UnknownModelVersionError(str(chosen), known)
        return str(chosen)
    if len(known) == 1:
        return next(iter(known))
    if not known:
        raise LookupError(
            f"the vector index at {location.vectors_uri} is empty: index photos and sync the index first"
        )
    raise LookupError(
        f"the index holds several model versions ({', '.join(sorted(known))}): pass --model-version"
    )


def search_photo(
    location: IndexLocation,
    photo: str,
    *,
    k: int = DEFAULT_K,
    model_version: str | None = None,
    quality_only: bool = False,
    embedder: PhotoEmbedder | None = None,
    index: VectorIndex | None = None,
    person_lookup: PersonLookup | None = None,
    far: float | None = None,
    min_similarity: float | None = None,
    list_all: bool = False,
) -> SearchResult:
    """Detect the faces of ``photo`` (a local path or ``s3://`` URI) and find each one's ``k`` nearest
    faces of one model version, each marked same person or unknown at the threshold in force
    (:func:`threshold_in_force`). Reads only; raises :class:`PhotoSearchError` or ``LookupError``."""
    from faceidx.store.vectors import VectorIndex

    if not 1 <= k <= MAX_K:
        raise PhotoSearchError(f"k must be between 1 and {MAX_K}, got {k}")
    index = index or VectorIndex(location)
    version = resolve_model_version(location, index, model_version)
    choice = threshold_in_force(location, version, far=far, min_similarity=min_similarity)
    faces, vectors = query_faces(location, photo, version, embedder)
    found = index.search(vectors, model_version=version, k=k, quality_only=quality_only)
    people = _people(person_lookup, [m.face_id for matches in found for m in matches])
    searched: list[QueryFace] = []
    for position, (face, matches) in enumerate(zip(faces, found, strict=True)):
        marked = [_face_match(match, people, choice.threshold) for match in matches]
        shown = marked if list_all else [m for m in marked if m.verdict == SAME_PERSON]
        searched.append(
            QueryFace(
                face_index=position,
                bbox=box_of(face.bbox),
                det_score=round(float(face.det_score), 4),
                matches=shown,
                below_threshold=sum(1 for m in marked if m.verdict != SAME_PERSON),
                rotation=int(getattr(face, "rotation", 0)),
            )
        )
    return SearchResult(
        photo=photo,
        model_version=version,
        k=k,
        quality_only=quality_only,
        faces=searched,
        threshold=choice.threshold,
        far=choice.far,
        threshold_source=choice.source,
        threshold_note=choice.note,
        list_all=list_all,
    )


def query_faces(
    location: IndexLocation, photo: str, version: str, embedder: PhotoEmbedder | None
) -> tuple[list[Any], np.ndarray]:
    """The photo's faces and their embeddings (one row each), computed by a pack of ``version``."""
    embedder = embedder or PhotoEmbedder.from_env()
    if embedder.model_version != version:
        raise PhotoSearchError(
            f"the model pack in FACEIDX_MODEL_DIR is version {embedder.model_version}, the index searched "
            f"is {version}: embeddings of different versions are not comparable. Point FACEIDX_MODEL_DIR at "
            f"the {version} pack, or search --model-version {embedder.model_version} if it is indexed"
        )
    faces = embedder.faces(photo, location)
    if not faces:
        raise PhotoSearchError(f"{photo}: no face found (nothing to search for)")
    return faces, np.vstack([np.asarray(face.embedding, dtype=np.float32) for face in faces])


def threshold_in_force(
    location: IndexLocation, version: str, *, far: float | None = None, min_similarity: float | None = None
) -> ThresholdChoice:
    """``min_similarity``, else the version's calibrated threshold at ``far`` (default 1e-4) from the
    registry, else the documented default (with a note saying why). Logs the note as a warning."""
    from faceidx.store.calibration import choose_threshold
    from faceidx.store.registry import ModelRegistry

    calibration = None if min_similarity is not None else ModelRegistry(location).calibration(version)
    try:
        choice = choose_threshold(calibration, version, far=far, min_similarity=min_similarity)
    except ValueError as error:
        raise PhotoSearchError(str(error)) from None
    if choice.note:
        log.warning("%s", choice.note)
    return choice


def _people(lookup: PersonLookup | None, face_ids: list[str]) -> Mapping[str, str]:
    if lookup is None or not face_ids:
        return {}
    return lookup(list(dict.fromkeys(face_ids)))


def box_of(values: Any) -> tuple[float, ...]:
    return tuple(round(float(v), 1) for v in np.asarray(values).reshape(-1))


def _face_match(match: Match, people: Mapping[str, str], threshold: float) -> FaceMatch:
    similarity = round(match.similarity, 4)
    return FaceMatch(
        image=f"s3://{match.image_bucket}/{match.image_key}",
        face_index=match.face_index,
        bbox=box_of(match.bbox),
        similarity=similarity,
        face_id=match.face_id,
        person=people.get(match.face_id),
        quality_passed=match.quality_passed,
        verdict=SAME_PERSON if similarity >= threshold else UNKNOWN,
    )


def threshold_pairs(result: SearchResult) -> list[tuple[str, Any]]:
    """Which threshold and FAR are in force, and where they came from (the search's log table)."""
    rows: list[tuple[str, Any]] = [
        ("model version", result.model_version),
        ("threshold (cosine)", f"{result.threshold:.4f}"),
        ("at FAR", f"{result.far:.0e}" if result.far is not None else "(set by hand)"),
        ("threshold source", result.threshold_source),
        (
            "matches below it",
            "listed as unknown" if result.list_all else "counted, not listed (--all lists them)",
        ),
    ]
    if result.threshold_note:
        rows.append(("note", result.threshold_note))
    return rows


def format_table(result: SearchResult) -> str:
    """The threshold in force, then one table per query face: rank, similarity, verdict, image, face,
    box, person; and how many matches were under the threshold."""
    blocks = [format_pairs(threshold_pairs(result), title="threshold in force")]
    for face in result.faces:
        title = (
            f"query face {face.face_index} of {result.photo} at {_box_text(face.bbox)} "
            f"(model version {result.model_version}, top {result.k}"
            f"{', quality-passed faces only' if result.quality_only else ''})"
        )
        rows = [
            (rank, f"{m.similarity:.4f}", m.verdict, m.image, m.face_index, _box_text(m.bbox), m.person)
            for rank, m in enumerate(face.matches, start=1)
        ]
        hidden = (
            f"{face.below_threshold} match(es) below the threshold {result.threshold:.4f}: unknown, not "
            "listed (--all lists them)"
            if face.below_threshold and not result.list_all
            else ""
        )
        if not rows:
            passing = " passing the quality checks" if result.quality_only else ""
            why = hidden or f"the version holds no face{passing}"
            blocks.append(f"{title}\n(no same-person match: {why})")
            continue
        headers = ("rank", "similarity", "verdict", "image", "face", "box", "person")
        blocks.append(render_table(headers, rows, title=title) + (f"\n{hidden}" if hidden else ""))
    return "\n\n".join(blocks)


def _box_text(box: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in box) + ")"
