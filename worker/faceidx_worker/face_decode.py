"""Decode only what the faces need (``FACEIDX_DECODE=adaptive``, the default).

A camera JPEG holds far more pixels than the detector looks at: SCRFD sees the photo shrunk into a
640 x 640 square, and the recognizer sees each face as a 112 x 112 crop. So:

1. **Detect on a DCT-scaled decode.** libjpeg-turbo decodes the JPEG at 1/2, 1/4 or 1/8 scale
   (through simplejpeg, else ``cv2.IMREAD_REDUCED_COLOR_n``): the largest reduction that keeps
   ``FACEIDX_DET_SIZE`` pixels on the long side. Entropy decoding still reads the whole file; the
   inverse DCT, the chroma upsampling and the colour conversion shrink with the output.
2. **Crop each face from pixels as fine as its crop needs.** The aligned crop maps the face's
   landmarks onto the recognizer's template; when that map would enlarge the decoded pixels (the face
   is too small at the reduced scale) the image is decoded again in full, detected again there (so
   its faces are exactly a full decode's), and cropped from it. Images whose faces are all large
   enough are never decoded twice.
3. **Resample by area.** Each detector pass gets the pixels shrunk to its own input size with an area
   filter, and each crop is cut from the face's region shrunk by area to the crop's scale before the
   similarity warp. A bilinear shrink by 7x (what a plain letterbox of a 12 MP photo does) samples
   one pixel in 50 and turns sensor noise into different embeddings for each way the pixels were
   decoded; an area filter gives nearly the same input from a full and a reduced decode.
4. **Vote the landmarks** (:func:`merge_with_votes`): each kept face's landmarks are the
   score-weighted mean of the candidates NMS suppressed with it, so they do not jump between the 128
   and the 640 pass when both score a face alike.

``FACEIDX_DECODE=full`` decodes every pixel and runs the same face-scale resampling (the reference
the adaptive decode is measured against); ``scaled`` is the older DCT reduction with insightface's own
resampling (:func:`faceidx_worker.images.decode_image` with ``FACEIDX_DECODE_MIN_SIDE``). Images
that cannot be reduced (PNG, WebP, CMYK JPEGs, JPEGs under twice ``FACEIDX_DET_SIZE`` on their long
side) take the plain full decode in every mode. EXIF orientation is applied after each decode, so
every coordinate is in the rotated image's pixels. The rotation retry
(:mod:`faceidx_worker.rotation`) detects on :meth:`FacePixels.rotated` copies, turned once more.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from faceidx_worker.images import (
    DecodedImage,
    ImageError,
    ImageHeader,
    _decode_cv2,
    _decode_pillow,
    apply_orientation,
    decode_image,
    read_header,
)
from faceidx_worker.rotation import rotate_pixels, rotated_size
from faceidx_worker.rows import ErrorReason

ADAPTIVE, FULL, SCALED = "adaptive", "full", "scaled"
DECODE_MODES = (ADAPTIVE, FULL, SCALED)
FACTORS = (8, 4, 2, 1)
FINER_FACTOR = 1  # the finer re-decode is the full decode (see detect_and_crop)

Detections = tuple[np.ndarray, np.ndarray]


def face_scale_eligible(header: ImageHeader, det_size: int) -> bool:
    """A JPEG libjpeg can reduce, at least twice the detector's size on its long side."""
    return (
        header.format == "JPEG"
        and header.mode in ("RGB", "L", "YCbCr")
        and max(header.width, header.height) >= 2 * det_size
    )


def detection_factor(header: ImageHeader, det_size: int) -> int:
    """The largest DCT reduction that keeps ``det_size`` pixels on the long side (1 = none)."""
    long_side = max(header.width, header.height)
    for factor in FACTORS:
        if math.ceil(long_side / factor) >= det_size:
            return factor
    return 1


def decode_simplejpeg(data: bytes, header: ImageHeader, factor: int) -> np.ndarray | None:
    """BGR pixels at 1/``factor`` through simplejpeg (libjpeg-turbo's TurboJPEG API), as stored (no
    orientation); None when simplejpeg is not installed or refuses the file (OpenCV decodes it then).

    The same library and settings as OpenCV's decoder (accurate integer IDCT, smooth chroma
    upsampling) give the same pixels, bit for bit; a full-scale decode costs 28-40 % less CPU than
    OpenCV's, the reduced ones the same (``make bench`` prints each library per scale)."""
    try:
        import simplejpeg
    except ImportError:
        return None
    width, height = math.ceil(header.width / factor), math.ceil(header.height / factor)
    try:
        pixels = simplejpeg.decode_jpeg(data, "BGR", min_height=height, min_width=width)
    except ValueError:  # simplejpeg's error for data libjpeg-turbo refuses
        return None
    if pixels.shape[:2] != (height, width):
        return None
    return np.asarray(pixels)


def decode_at(data: bytes, header: ImageHeader, factor: int) -> np.ndarray:
    """Oriented BGR pixels at 1/``factor`` scale (libjpeg-turbo's DCT scaling: simplejpeg, else OpenCV)."""
    pixels = decode_simplejpeg(data, header, factor)
    if pixels is None:
        pixels = _decode_cv2(data, factor)
    if pixels is None:
        pixels = _decode_pillow(data, header, factor)
    pixels = apply_orientation(pixels, header.orientation)
    if pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise ImageError(ErrorReason.DECODE_ERROR, "decoded to an empty array")
    return pixels


def decode_for_faces(
    data: bytes, *, max_pixels: int, mode: str, det_size: int, min_side: int = 0
) -> DecodedImage:
    """``data`` decoded for ``mode`` (one of :data:`DECODE_MODES`). Raises :class:`ImageError`."""
    if mode not in DECODE_MODES:
        raise ValueError(f"decode mode {mode!r} is not one of {DECODE_MODES}")
    if mode == SCALED:
        return decode_image(data, max_pixels=max_pixels, min_side=min_side)
    header = read_header(data)
    if not face_scale_eligible(header, det_size) or header.width * header.height > max_pixels:
        return decode_image(data, max_pixels=max_pixels)  # also raises too_many_pixels
    factor = detection_factor(header, det_size) if mode == ADAPTIVE else 1
    pixels = decode_at(data, header, factor)
    faces = FacePixels(data=data if factor > 1 else None, header=header, pixels=pixels, factor=factor)
    width, height = header.oriented_size
    return DecodedImage(pixels=pixels, width=width, height=height, factor=factor, faces=faces)


def fit_size(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """The size SCRFD's letterbox gives a ``width`` x ``height`` image in a ``box`` (same rounding)."""
    if height / width > box_height / box_width:
        return max(1, int(box_height / (height / width))), box_height
    return box_width, max(1, int(box_width * (height / width)))


def similarity_to_template(landmarks: np.ndarray, crop_size: int) -> np.ndarray:
    """The 2 x 3 map from image pixels to the recognizer's aligned crop (insightface's ``estimate_norm``)."""
    from insightface.utils.face_align import estimate_norm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-image 0.26's estimate() deprecation
        return np.asarray(estimate_norm(np.asarray(landmarks, np.float64), crop_size), np.float64)


def crop_scale(landmarks: np.ndarray, crop_size: int) -> float:
    """Crop pixels per original pixel for a face with these landmarks (original pixels)."""
    matrix = similarity_to_template(landmarks, crop_size)
    return float(math.hypot(matrix[0, 0], matrix[0, 1]))


def crop_region(matrix: np.ndarray, size: int, width: int, height: int) -> tuple[int, int, int, int]:
    """The pixels (x0, y0, x1, y1) a ``size`` x ``size`` crop of ``matrix`` reads, two pixels of margin,
    within a ``width`` x ``height`` image."""
    inverse = cv2.invertAffineTransform(np.asarray(matrix, np.float64))
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) @ inverse.T
    x0 = max(math.floor(corners[:, 0].min()) - 2, 0)
    y0 = max(math.floor(corners[:, 1].min()) - 2, 0)
    x1 = min(math.ceil(corners[:, 0].max()) + 2, width)
    y1 = min(math.ceil(corners[:, 1].max()) + 2, height)
    return x0, y0, x1, y1


def region_map(matrix: np.ndarray, region: tuple[int, int, int, int], shrunk: tuple[int, int]) -> np.ndarray:
    """``matrix`` (image -> crop) rewritten for the region ``(x0, y0, x1, y1)`` resized to ``shrunk``."""
    x0, y0, x1, y1 = region
    to_image = np.array(
        [[(x1 - x0) / shrunk[0], 0.0, x0], [0.0, (y1 - y0) / shrunk[1], y0], [0.0, 0.0, 1.0]], np.float64
    )
    return (np.vstack([np.asarray(matrix, np.float64), [0.0, 0.0, 1.0]]) @ to_image)[:2]


def area_warp(pixels: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """``cv2.warpAffine(pixels, matrix, size x size)``, the region first shrunk by area when the map
    shrinks it, so every crop pixel averages the pixels it covers instead of sampling one of them."""
    scale = float(math.hypot(matrix[0, 0], matrix[0, 1]))
    if scale >= 1.0:
        return cv2.warpAffine(pixels, matrix, (size, size), borderValue=0.0)
    x0, y0, x1, y1 = crop_region(matrix, size, pixels.shape[1], pixels.shape[0])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return cv2.warpAffine(pixels, matrix, (size, size), borderValue=0.0)
    shrunk = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    region = cv2.resize(pixels[y0:y1, x0:x1], shrunk, interpolation=cv2.INTER_AREA)
    return cv2.warpAffine(region, region_map(matrix, (x0, y0, x1, y1), shrunk), (size, size), borderValue=0.0)


@dataclass
class FacePixels:
    """One image's pixels at a DCT reduction, and what it takes to crop its faces properly.

    ``pixels`` are oriented and 1/``factor`` of the original; ``data`` (None when already at full
    scale) lets :meth:`refine` decode the image again at a finer scale. ``rotation`` (degrees
    clockwise) turns them once more after the orientation (:meth:`rotated`, the rotation retry): every
    coordinate is then of the turned image. Used by one inference lane at a time.
    """

    data: bytes | None
    header: ImageHeader
    pixels: np.ndarray
    factor: int
    finer_decodes: int = 0
    finer_decode_cpu_seconds: float = 0.0  # CPU time of this thread in refine()
    rotation: int = 0

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the original pixels after orientation and ``rotation``."""
        return rotated_size(*self.header.oriented_size, self.rotation)

    @property
    def scale(self) -> tuple[float, float]:
        """Original pixels per decoded pixel (x, y)."""
        width, height = self.size
        return width / self.pixels.shape[1], height / self.pixels.shape[0]

    def rotated(self, degrees: int) -> FacePixels:
        """These pixels turned ``degrees`` clockwise (a copy; a finer decode of it is turned too)."""
        return FacePixels(
            data=self.data,
            header=self.header,
            pixels=rotate_pixels(self.pixels, degrees),
            factor=self.factor,
            rotation=(self.rotation + degrees) % 360,
        )

    def detection_inputs(
        self, sizes: Sequence[tuple[int, int]]
    ) -> list[tuple[np.ndarray, tuple[float, float]]]:
        """For each detector size, the pixels shrunk by area to fit it as the letterbox would, with
        the original pixels per input pixel (x, y). The largest size is shrunk from the decoded pixels,
        the smaller ones from that (one pass over the large image, not one per size)."""
        width, height = self.size
        shrunk: dict[tuple[int, int], np.ndarray] = {}
        source = self.pixels
        for box in sorted(set(sizes), key=lambda size: -size[0] * size[1]):
            new_w, new_h = fit_size(self.pixels.shape[1], self.pixels.shape[0], *box)
            if new_w < source.shape[1] or new_h < source.shape[0]:
                shrunk[box] = cv2.resize(source, (new_w, new_h), interpolation=cv2.INTER_AREA)
            else:
                shrunk[box] = source
            source = shrunk[box]
        return [(shrunk[box], (width / shrunk[box].shape[1], height / shrunk[box].shape[0])) for box in sizes]

    def needed_factor(self, landmarks: np.ndarray, crop_size: int) -> int:
        """The coarsest reduction, at most the current one, from which every face's crop shrinks or
        keeps the pixels (never enlarges them); 1 when a face is small even at full scale."""
        factor = self.factor
        for points in landmarks:
            scale = crop_scale(points, crop_size)
            while factor > 1 and scale * factor > 1.0:
                factor //= 2
        return factor

    def refine(self, factor: int) -> None:
        """Decode again at 1/``factor`` (finer than now)."""
        if self.data is None or factor >= self.factor:
            return
        started = time.thread_time()
        self.pixels = rotate_pixels(decode_at(self.data, self.header, factor), self.rotation)
        self.finer_decode_cpu_seconds += time.thread_time() - started
        self.factor = factor
        self.finer_decodes += 1
        if factor == 1:
            self.data = None  # nothing finer to decode: let the bytes go

    def crop(self, landmarks: np.ndarray, crop_size: int) -> np.ndarray:
        """The face's aligned crop; ``landmarks`` in original (oriented) pixels."""
        scale_x, scale_y = self.scale
        matrix = similarity_to_template(landmarks, crop_size).copy()
        matrix[:, 0] *= scale_x  # decoded pixel -> original pixel -> crop
        matrix[:, 1] *= scale_y
        return area_warp(self.pixels, matrix, crop_size)


def overlaps(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of ``box`` with each row of ``others`` (SCRFD's +1 pixel convention)."""
    width = np.maximum(0.0, np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]) + 1)
    height = np.maximum(0.0, np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]) + 1)
    inter = width * height
    area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
    areas = (others[:, 2] - others[:, 0] + 1) * (others[:, 3] - others[:, 1] + 1)
    return np.asarray(inter / (area + areas - inter))


def merge_with_votes(detector: Any, kept: Sequence[tuple[np.ndarray, np.ndarray]]) -> Detections:
    """The detector's NMS over every pass's candidates (original pixels), each kept face's landmarks the
    score-weighted mean of the candidates it suppressed and its own.

    NMS alone keeps one candidate's landmarks; when two passes score a face almost alike, which one
    wins flips with the slightest change of pixels, and its landmarks (from a 128 or a 640 input) move
    the crop. The vote makes the landmarks a continuous function of the scores.
    """
    if not kept:
        return np.empty((0, 5), np.float32), np.empty((0, 5, 2), np.float32)
    candidates = np.vstack([boxes for boxes, _ in kept]).astype(np.float32, copy=False)
    points = np.vstack([kps for _, kps in kept]).astype(np.float32, copy=False)
    order = np.argsort(-candidates[:, 4], kind="stable")
    candidates, points = candidates[order], points[order]
    keep = detector.nms(candidates)
    threshold = float(getattr(detector, "nms_thresh", 0.4))
    voted = np.empty((len(keep), 5, 2), np.float32)
    for row, index in enumerate(keep):
        weights = candidates[:, 4] * (overlaps(candidates[index], candidates) > threshold)
        weights[index] = candidates[index, 4]
        voted[row] = np.tensordot(weights / weights.sum(), points, axes=1)
    return candidates[keep], voted


def detect_and_crop(model: Any, faces: FacePixels) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Boxes+scores and landmarks (original pixels) and the aligned crops of one image's faces.

    Detection runs on the reduced pixels. When a face needs finer pixels than those for its crop, the
    image is decoded again in full and detected again there, so its faces are exactly a full decode's:
    a re-decode at the finest scale the faces need (1/2 for most) was measured cheaper by 10 % of the
    decode but left a neighbouring face's landmarks 4 px off a full decode's (cosine 0.974).
    """
    boxes, landmarks = model.detect_prescaled(faces.detection_inputs(model.detection_sizes))
    if faces.data is not None and faces.needed_factor(landmarks, model.crop_size) < faces.factor:
        faces.refine(FINER_FACTOR)
        boxes, landmarks = model.detect_prescaled(faces.detection_inputs(model.detection_sizes))
    crops = [faces.crop(points, model.crop_size) for points in landmarks]
    return boxes, landmarks, crops
