"""Index a batch of decoded images: detect each, align every face, embed all faces in batched calls.

The recognizer sees the faces of the whole batch at once (the win on a GPU); boxes and landmarks are
mapped back from the (possibly DCT-reduced) decoded pixels to the original image's pixels. Each face
gets its quality measures (:mod:`faceidx_worker.quality`) and the gate's reasons. An image with no
face is detected again turned by 90, 180 and 270 degrees when the model's ``rotation_retry`` is on
(``FACEIDX_ROTATION_RETRY``, :mod:`faceidx_worker.rotation`).

:func:`index_by_pack` routes a batch first: each image goes to the model pack its message asks for
(:mod:`faceidx_worker.packs`), the default when none; a pack the model folder lacks gives
``unknown_model_pack`` error rows without holding up the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from faceidx_worker.crops import CropWriter
from faceidx_worker.face_decode import FacePixels, detect_and_crop
from faceidx_worker.fetch import LoadedImage
from faceidx_worker.images import ImageError
from faceidx_worker.model import FaceModel
from faceidx_worker.packs import ModelPackError, ModelPacks
from faceidx_worker.quality import FaceQuality, QualityThresholds, head_pose, quality_gate, sharpness
from faceidx_worker.rotation import (
    best_rotation,
    rotate_box,
    rotate_pixels,
    top_score,
    unrotate_boxes,
    unrotate_points,
)
from faceidx_worker.rows import DetectedFace, ErrorReason, ImageOutcome, ModelStamp

log = logging.getLogger(__name__)


@dataclass
class BatchTimings:
    detect: float = 0.0  # detection (rotation retries included), and in the adaptive decode each
    # face's crop and finer re-decodes
    embed: float = 0.0
    rotation_retries: int = 0  # images detected again turned (three more detector calls each)
    rotated_found: int = 0  # of those, images whose faces a turn found


@dataclass
class IndexedBatch:
    outcomes: list[ImageOutcome]
    timings: BatchTimings = field(default_factory=BatchTimings)


def stamp_of(model: FaceModel) -> ModelStamp:
    """The model identity of the rows ``model`` (loaded) computes."""
    return ModelStamp(pack=model.name, version=model.version, dim=model.embedding_size)


def index_by_pack(
    loaded: Sequence[LoadedImage],
    default: FaceModel,
    packs: ModelPacks,
    thresholds: QualityThresholds,
    *,
    crops: CropWriter | None = None,
) -> tuple[IndexedBatch, list[ModelStamp]]:
    """Each image with the pack its message asks for (``default`` when none, another of ``packs``
    otherwise): one :func:`index_images` call per pack, and each outcome's model stamp, in ``loaded``'s
    order. With ``crops`` every face's crop is written before its row."""
    groups: dict[str | None, list[int]] = {}
    for position, item in enumerate(loaded):
        name = item.ref.model_pack
        groups.setdefault(None if name == default.name else name, []).append(position)
    outcomes: list[ImageOutcome | None] = [None] * len(loaded)
    stamps: list[ModelStamp] = [stamp_of(default)] * len(loaded)
    timings = BatchTimings()
    for name, positions in groups.items():
        try:
            model = default if name is None else packs.get(name)
        except ModelPackError as exc:
            model, problem = None, f"model pack {name!r} does not load: {exc}"
        else:
            problem = f"FACEIDX_MODEL_DIR {packs.model_dir} holds no model pack {name!r}"
        if model is None:
            log.warning("%s: %s images get unknown_model_pack rows", problem, len(positions))
            for position in positions:
                outcomes[position] = _unknown_pack(loaded[position], problem)
            continue
        indexed = index_images(
            model, [loaded[p] for p in positions], thresholds, keep_crops=crops is not None
        )
        timings.detect += indexed.timings.detect
        timings.embed += indexed.timings.embed
        timings.rotation_retries += indexed.timings.rotation_retries
        timings.rotated_found += indexed.timings.rotated_found
        stamp = stamp_of(model)
        for position, outcome in zip(positions, indexed.outcomes, strict=True):
            outcomes[position] = crops.write(outcome, stamp.version) if crops is not None else outcome
            stamps[position] = stamp
    done = [outcome for outcome in outcomes if outcome is not None]
    assert len(done) == len(loaded)
    return IndexedBatch(outcomes=done, timings=timings), stamps


def _unknown_pack(loaded: LoadedImage, problem: str) -> ImageOutcome:
    image = loaded.image
    return ImageOutcome(
        bucket=loaded.ref.bucket,
        key=loaded.ref.key,
        etag=loaded.etag,
        width=image.width if image is not None else None,
        height=image.height if image is not None else None,
        error_reason=ErrorReason.UNKNOWN_MODEL_PACK,
        error_detail=problem,
    )


def index_images(
    model: FaceModel,
    loaded: Sequence[LoadedImage],
    thresholds: QualityThresholds | None = None,
    *,
    keep_crops: bool = False,
) -> IndexedBatch:
    """One outcome per loaded image, in order. ``loaded`` items with ``retryable`` set are not accepted.

    ``thresholds`` is the quality gate's (default: :class:`QualityThresholds`' defaults); with
    ``keep_crops`` each face keeps its aligned crop (``DetectedFace.crop``) for the crops option.
    An image without a face is detected again turned when ``model.rotation_retry`` is set.
    """
    thresholds = thresholds or QualityThresholds()
    timings = BatchTimings()
    retry = bool(getattr(model, "rotation_retry", False))
    detections: list[tuple[np.ndarray, np.ndarray] | None] = []
    rotations: list[int] = []
    crops: list[np.ndarray] = []
    for item in loaded:
        if item.retryable is not None:
            raise ValueError(f"{item.ref.key}: a retryable failure has no outcome; leave its message instead")
    batched = _detect_together(model, loaded, timings)
    for item in loaded:
        if item.image is None or item.error is not None:
            detections.append(None)
            rotations.append(0)
            continue
        started = time.perf_counter()
        face_pixels = item.image.faces if hasattr(model, "detect_prescaled") else None
        try:
            rotation = 0
            if face_pixels is not None:
                boxes, landmarks, image_crops = detect_and_crop(model, face_pixels)
                if retry and not len(boxes):
                    rotation, boxes, landmarks, image_crops = _retry_face_scale(model, face_pixels, timings)
                timings.detect += time.perf_counter() - started
                crops.extend(image_crops)
                detections.append((boxes, landmarks))
                rotations.append(rotation)
                continue
            if id(item) in batched:
                boxes, landmarks = batched[id(item)]
            else:
                boxes, landmarks = model.detect(item.image.pixels)
            upright = item.image.pixels
            if retry and not len(boxes):
                rotation, upright, boxes, landmarks = _retry_pixels(model, item.image.pixels, timings)
            timings.detect += time.perf_counter() - started
            started = time.perf_counter()
            image_crops = [model.align(upright, points) for points in landmarks]
            timings.embed += time.perf_counter() - started
            if rotation:
                height, width = item.image.pixels.shape[:2]
                boxes = unrotate_boxes(boxes, rotation, width, height)
                landmarks = unrotate_points(landmarks, rotation, width, height)
        except Exception as exc:  # odd geometry (e.g. 1 x 20000 pixels) must not stop the batch
            log.exception(
                "inference failed on s3://%s/%s: an inference_error row", item.ref.bucket, item.ref.key
            )
            item.error = ImageError(ErrorReason.INFERENCE_ERROR, f"{type(exc).__name__}: {exc}")
            detections.append(None)
            rotations.append(0)
            continue
        crops.extend(image_crops)
        detections.append((boxes, landmarks))
        rotations.append(rotation)

    started = time.perf_counter()
    embeddings, norms = _embed(model, crops)
    timings.embed += time.perf_counter() - started

    outcomes = []
    cursor = 0
    for item, found, rotation in zip(loaded, detections, rotations, strict=True):
        if found is None:
            error = item.error or ImageError(ErrorReason.DECODE_ERROR, "nothing decoded")
            outcomes.append(
                ImageOutcome(
                    bucket=item.ref.bucket,
                    key=item.ref.key,
                    etag=item.etag,
                    width=error.width,
                    height=error.height,
                    error_reason=error.reason,
                    error_detail=error.detail,
                )
            )
            continue
        assert item.image is not None
        boxes, landmarks = found
        pixels, to_pixels = _genderage_source(item, model)
        scale_x, scale_y = (1.0, 1.0) if to_pixels is not None else item.image.scale
        faces = []
        for index in range(boxes.shape[0]):
            bbox = boxes[index, :4] * np.array([scale_x, scale_y, scale_x, scale_y], dtype=np.float32)
            points = landmarks[index] * np.array([scale_x, scale_y], dtype=np.float32)
            crop = crops[cursor + index]
            box = boxes[index, :4] if to_pixels is None else boxes[index, :4] / to_pixels
            age, gender = _genderage(model, pixels, box, rotation)
            quality = measure_quality(
                bbox,
                points,
                float(boxes[index, 4]),
                crop,
                None if norms is None else float(norms[cursor + index]),
            )
            faces.append(
                DetectedFace(
                    bbox=bbox.astype(np.float32),
                    landmarks=points.astype(np.float32),
                    det_score=float(boxes[index, 4]),
                    embedding=embeddings[cursor + index],
                    quality=quality,
                    quality_reasons=tuple(quality_gate(quality, thresholds)),
                    crop=crop if keep_crops else None,
                    age=age,
                    gender=gender,
                    rotation=rotation,
                )
            )
        cursor += boxes.shape[0]
        outcomes.append(
            ImageOutcome(
                bucket=item.ref.bucket,
                key=item.ref.key,
                etag=item.etag,
                width=item.image.width,
                height=item.image.height,
                faces=tuple(faces),
            )
        )
    return IndexedBatch(outcomes=outcomes, timings=timings)


def measure_quality(
    bbox: np.ndarray, landmarks: np.ndarray, det_score: float, crop: np.ndarray, norm: float | None
) -> FaceQuality:
    """The quality measures of one face: ``bbox`` and ``landmarks`` in original pixels, ``crop`` the
    aligned recognizer input, ``norm`` the raw feature norm (``None`` when the model gives none)."""
    yaw, pitch, roll = head_pose(landmarks)
    return FaceQuality(
        bbox_width=float(bbox[2] - bbox[0]),
        bbox_height=float(bbox[3] - bbox[1]),
        det_score=det_score,
        sharpness=sharpness(crop),
        yaw=yaw,
        pitch=pitch,
        roll=roll,
        embedding_norm=norm,
    )


def _genderage_source(item: LoadedImage, model: FaceModel) -> tuple[np.ndarray, np.ndarray | None]:
    """The pixels the genderage model reads and, for a face-scale decode (whose boxes are already in
    original pixels), the original pixels per decoded pixel as (x, y, x, y); ``None`` otherwise."""
    assert item.image is not None
    faces = item.image.faces
    if faces is None or not hasattr(model, "detect_prescaled"):
        return item.image.pixels, None
    scale_x, scale_y = faces.scale
    return faces.pixels, np.array([scale_x, scale_y, scale_x, scale_y], dtype=np.float32)


def _genderage(
    model: FaceModel, pixels: np.ndarray, box: np.ndarray, rotation: int = 0
) -> tuple[int | None, str | None]:
    """(age, gender) when the model carries a genderage model (``FACEIDX_GENDERAGE``), else (None, None).
    A face the rotation retry found is read from the pixels turned as it was found (upright)."""
    genderage = getattr(model, "genderage", None)
    if genderage is None:
        return None, None
    if rotation:
        height, width = pixels.shape[:2]
        box = rotate_box(box, rotation, width, height)
        pixels = rotate_pixels(pixels, rotation)
    age, gender = genderage.predict(pixels, box)
    return age, gender


def _retry_face_scale(
    model: FaceModel, faces: FacePixels, timings: BatchTimings
) -> tuple[int, np.ndarray, np.ndarray, list[np.ndarray]]:
    """The rotation retry of a face-scale decode: (rotation, boxes and landmarks in the unturned
    original pixels, crops cut upright); rotation 0 and nothing when no turn finds a face."""
    timings.rotation_retries += 1
    turned: dict[int, FacePixels] = {}

    def detect(degrees: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        turned[degrees] = faces.rotated(degrees)
        return detect_and_crop(model, turned[degrees])

    found = best_rotation(detect, top_score)
    for copy in turned.values():  # a finer decode of a turned copy counts as the image's
        faces.finer_decodes += copy.finer_decodes
        faces.finer_decode_cpu_seconds += copy.finer_decode_cpu_seconds
    if found is None:
        return 0, np.empty((0, 5), np.float32), np.empty((0, 5, 2), np.float32), []
    timings.rotated_found += 1
    rotation, (boxes, landmarks, crops) = found
    width, height = faces.size
    return (
        rotation,
        unrotate_boxes(boxes, rotation, width, height),
        unrotate_points(landmarks, rotation, width, height),
        crops,
    )


def _retry_pixels(
    model: FaceModel, pixels: np.ndarray, timings: BatchTimings
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """The rotation retry of decoded pixels: (rotation, the turned pixels, boxes and landmarks in
    them); rotation 0, ``pixels`` and nothing when no turn finds a face."""
    timings.rotation_retries += 1
    found = best_rotation(lambda degrees: model.detect(rotate_pixels(pixels, degrees)), top_score)
    if found is None:
        return 0, pixels, np.empty((0, 5), np.float32), np.empty((0, 5, 2), np.float32)
    timings.rotated_found += 1
    rotation, (boxes, landmarks) = found
    return rotation, rotate_pixels(pixels, rotation), boxes, landmarks


def _embed(model: FaceModel, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings and raw norms; a model without ``embed_with_norms`` gives no norms."""
    if not crops:
        return np.empty((0, 0), dtype=np.float32), None
    with_norms = getattr(model, "embed_with_norms", None)
    if with_norms is None:
        return model.embed(crops), None
    embeddings, norms = with_norms(crops)
    return embeddings, norms


def _detect_together(
    model: FaceModel, loaded: Sequence[LoadedImage], timings: BatchTimings
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Detections of every decoded image in one ``detect_many`` call, keyed by ``id(item)``.

    Models without ``detect_many`` (or a batch the detector fails on) get ``{}``: each image is then
    detected on its own, so one odd image becomes its own ``inference_error`` row.
    """
    detect_many = getattr(model, "detect_many", None)
    face_scale = hasattr(model, "detect_prescaled")  # those images are detected by detect_and_crop
    items = [
        item
        for item in loaded
        if item.image is not None and item.error is None and not (face_scale and item.image.faces is not None)
    ]
    if detect_many is None or len(items) < 2 or not getattr(model, "batch_detector", False):
        return {}
    started = time.perf_counter()
    try:
        found = detect_many([item.image.pixels for item in items if item.image is not None])
    except Exception as exc:  # ORT's pybind errors share no useful base class
        log.warning(
            "batched detection of %s images failed (%s): detecting one at a time",
            len(items),
            exc,
            exc_info=True,
        )
        return {}
    finally:
        timings.detect += time.perf_counter() - started
    return {id(item): result for item, result in zip(items, found, strict=True)}
