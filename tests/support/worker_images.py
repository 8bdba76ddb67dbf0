"""Image variants built from the asset photos: EXIF-rotated, 16-bit, alpha, CMYK, corrupt, bombs."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def load_bgr(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"cannot read {path}"
    return image


def jpeg_bytes(bgr: np.ndarray, quality: int = 92) -> bytes:
    ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buffer.tobytes()


def png_bytes(array: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", array)
    assert ok
    return buffer.tobytes()


# How the stored pixels relate to the upright picture for each EXIF orientation: stored = f(upright).
_STORE = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, 1),  # the camera was turned: a viewer rotates 90 degrees clockwise
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, -1),
}


def exif_oriented_jpeg(upright_bgr: np.ndarray, orientation: int, quality: int = 95) -> bytes:
    """A JPEG whose stored pixels need EXIF ``orientation`` to look like ``upright_bgr``."""
    stored = np.ascontiguousarray(_STORE[orientation](upright_bgr))
    image = Image.fromarray(cv2.cvtColor(stored, cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, exif=exif.tobytes())
    return out.getvalue()


def gray16_png(bgr: np.ndarray) -> bytes:
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257
    return png_bytes(gray)


def rgb16_png(bgr: np.ndarray) -> bytes:
    return png_bytes(bgr.astype(np.uint16) * 257)


def gray_jpeg(bgr: np.ndarray) -> bytes:
    return jpeg_bytes(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))


def rgba_png(bgr: np.ndarray) -> bytes:
    alpha = np.full(bgr.shape[:2], 255, dtype=np.uint8)
    alpha[:10, :10] = 0
    return png_bytes(np.dstack([bgr, alpha]))


def cmyk_jpeg(bgr: np.ndarray) -> bytes:
    image = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).convert("CMYK")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


def palette_png(bgr: np.ndarray) -> bytes:
    image = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).convert("P", palette=Image.Palette.ADAPTIVE)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def truncated(data: bytes, keep: float = 0.3) -> bytes:
    return data[: int(len(data) * keep)]


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's header)."""
    real = png_bytes(np.zeros((8, 8, 3), dtype=np.uint8))
    assert real[12:16] == b"IHDR"
    ihdr_data = struct.pack(">II", width, height) + real[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr_data) & 0xFFFFFFFF)
    return real[:8] + real[8:12] + b"IHDR" + ihdr_data + crc + real[33:]
