"""Turn downloaded bytes into the BGR ``uint8`` array insightface expects, safely and cheaply.

* The pixel count is read from the header and checked *before* any pixel is decoded (bombs).
* EXIF orientation is applied, so boxes are in the pixels a viewer shows.
* Grayscale, alpha, palette, 16-bit and CMYK images become 8-bit BGR (alpha is dropped, as
  ``cv2.imread`` does).
* A JPEG far larger than the detector needs is decoded at 1/2, 1/4 or 1/8 scale by libjpeg's DCT
  scaling (``cv2.IMREAD_REDUCED_COLOR_n``, ``PIL.Image.draft``): entropy decoding still runs, but the
  inverse DCT and colour conversion shrink with the output. The reduced image keeps at least
  ``min_side`` pixels on its long side; see the README's "Worker" section for the accuracy measurements.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from faceidx_worker.rows import ErrorReason

if TYPE_CHECKING:
    from faceidx_worker.face_decode import FacePixels

# The worker checks the pixel count itself (MAX_IMAGE_PIXELS) before decoding; Pillow's own global
# bomb guard would otherwise raise or warn on legitimate large images below our limit.
Image.MAX_IMAGE_PIXELS = None

EXIF_ORIENTATION_TAG = 0x0112
DCT_FACTORS = (8, 4, 2)
_CV2_REDUCED = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


class ImageError(Exception):
    """An image that cannot be indexed: an error row with this ``reason`` and ``detail``."""

    def __init__(
        self, reason: ErrorReason, detail: str, *, width: int | None = None, height: int | None = None
    ):
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.width = width
        self.height = height


@dataclass(frozen=True)
class ImageHeader:
    format: str
    mode: str
    width: int  # as stored, before orientation
    height: int
    orientation: int

    @property
    def oriented_size(self) -> tuple[int, int]:
        """(width, height) after EXIF orientation: what a viewer shows."""
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True)
class DecodedImage:
    """Pixels for the models plus the geometry needed to report boxes in original pixels."""

    pixels: np.ndarray  # H x W x 3, uint8, BGR, oriented
    width: int  # original width after orientation
    height: int
    factor: int  # DCT reduction used: 1, 2, 4 or 8
    # set by the face-scale decodes (FACEIDX_DECODE adaptive/full): each face cropped at its own scale
    faces: FacePixels | None = None

    @property
    def scale(self) -> tuple[float, float]:
        """Multiply decoded coordinates (x, y) by this to get original-image coordinates."""
        h, w = self.pixels.shape[:2]
        return self.width / w, self.height / h


def read_header(data: bytes) -> ImageHeader:
    """Format, size and orientation from the header only (no pixel is decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                try:
                    orientation = int(image.getexif().get(EXIF_ORIENTATION_TAG, 1))
                except (OSError, ValueError, TypeError, SyntaxError):
                    orientation = 1  # a broken EXIF block must not lose the image
                return ImageHeader(
                    format=str(image.format or "unknown"),
                    mode=image.mode,
                    width=int(image.width),
                    height=int(image.height),
                    orientation=orientation if 1 <= orientation <= 8 else 1,
                )
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(ErrorReason.DECODE_ERROR, f"not a readable image: {exc}") from None


def choose_dct_factor(header: ImageHeader, min_side: int) -> int:
    """The largest JPEG DCT reduction that keeps ``min_side`` pixels on the long side (1 = none)."""
    if min_side <= 0 or header.format != "JPEG" or header.mode not in ("RGB", "L", "CMYK", "YCbCr"):
        return 1
    long_side = max(header.width, header.height)
    for factor in DCT_FACTORS:
        if math.ceil(long_side / factor) >= min_side:
            return factor
    return 1


def decode_image(data: bytes, *, max_pixels: int, min_side: int = 0) -> DecodedImage:
    """Decode ``data`` to oriented 8-bit BGR. Raises :class:`ImageError` (too_many_pixels, decode_error)."""
    header = read_header(data)
    width, height = header.oriented_size
    if header.width * header.height > max_pixels:
        raise ImageError(
            ErrorReason.TOO_MANY_PIXELS,
            f"{header.width}x{header.height} = {header.width * header.height} pixels > MAX_IMAGE_PIXELS "
            f"{max_pixels}",
            width=width,
            height=height,
        )
    if header.width < 1 or header.height < 1:
        raise ImageError(ErrorReason.DECODE_ERROR, f"empty image {header.width}x{header.height}")
    factor = choose_dct_factor(header, min_side)
    pixels = None
    if header.format == "JPEG" and header.mode in ("RGB", "L"):
        pixels = _decode_cv2(data, factor)
    if pixels is None:
        pixels = _decode_pillow(data, header, factor)
    pixels = apply_orientation(pixels, header.orientation)
    if pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise ImageError(ErrorReason.DECODE_ERROR, "decoded to an empty array")
    return DecodedImage(pixels=pixels, width=width, height=height, factor=factor)


def _decode_cv2(data: bytes, factor: int) -> np.ndarray | None:
    flags = _CV2_REDUCED[factor] | cv2.IMREAD_IGNORE_ORIENTATION
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if pixels is None or pixels.ndim != 3 or pixels.shape[2] != 3:
        return None  # let Pillow try (and produce a precise error)
    return pixels


def _decode_pillow(data: bytes, header: ImageHeader, factor: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                if factor > 1:
                    image.draft(
                        image.mode, (math.ceil(image.width / factor), math.ceil(image.height / factor))
                    )
                image.load()
                return _to_bgr(image)
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ImageError(
            ErrorReason.DECODE_ERROR, f"{header.format} {header.mode} data is corrupt: {exc}"
        ) from None


def _to_bgr(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image)
        if mode == "I" and values.size and int(values.max()) > 65535:
            gray = np.clip(values, 0, 255).astype(np.uint8)  # 32-bit integer data: no sane scale
        else:
            gray = (values.astype(np.uint32) >> 8).astype(np.uint8)  # 16-bit -> 8-bit
        return cv2.cvtColor(np.ascontiguousarray(gray), cv2.COLOR_GRAY2BGR)
    if mode == "F":
        gray = np.clip(np.asarray(image), 0, 255).astype(np.uint8)
        return cv2.cvtColor(np.ascontiguousarray(gray), cv2.COLOR_GRAY2BGR)
    if mode in ("L", "1", "LA", "La"):
        gray = np.asarray(image.convert("L"))
        return cv2.cvtColor(np.ascontiguousarray(gray), cv2.COLOR_GRAY2BGR)
    # RGB, RGBA (alpha dropped), P/PA (palette), CMYK (Pillow undoes Adobe inversion), YCbCr, LAB, HSV.
    rgb = np.asarray(image.convert("RGB"))
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError(ErrorReason.DECODE_ERROR, f"mode {mode} did not convert to 3 channels")
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an H x W x C array, like ``PIL.ImageOps.exif_transpose``."""
    if orientation == 2:
        return np.ascontiguousarray(pixels[:, ::-1])
    if orientation == 3:
        return np.ascontiguousarray(pixels[::-1, ::-1])
    if orientation == 4:
        return np.ascontiguousarray(pixels[::-1])
    if orientation == 5:
        return np.ascontiguousarray(pixels.transpose(1, 0, 2))
    if orientation == 6:
        return np.ascontiguousarray(pixels.transpose(1, 0, 2)[:, ::-1])
    if orientation == 7:
        return np.ascontiguousarray(pixels.transpose(1, 0, 2)[::-1, ::-1])
    if orientation == 8:
        return np.ascontiguousarray(pixels.transpose(1, 0, 2)[::-1])
    return pixels
