"""Camera-like JPEGs made from the asset photos: the default corpus of ``make bench``.

Generated at bench time into a work folder (``bench-output/camera-corpus``, git-ignored; nothing is
committed), deterministically from a seed:

* **portraits at 12 MP**: each asset photo upscaled (cubic) to about 12 MP, sensor-like noise
  (Gaussian, sigma 4), JPEG quality 95 with 4:2:0 chroma, about 3.5 MB like a phone camera's file;
* **24 MP**: every third photo again at about 24 MP;
* **EXIF-rotated**: each photo mirrored and stored turned a quarter, with EXIF orientation 6 or 8
  (written by Pillow) so that a viewer shows it upright: boxes must land in the rotated image;
* **group photos with small faces**: faces cut from the asset photos, scaled to 50-220 pixels wide,
  pasted onto a blurred, noisy background (4 at 12 MP, 2 at 24 MP).

:func:`build` needs a loaded face model (``detect``) only to find the faces it cuts out.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

MP12, MP24 = 12_000_000, 24_000_000
NOISE_SIGMA = 4.0
QUALITY = 95
GROUP_FACE_WIDTHS = (50, 70, 90, 120, 160, 220)
GROUP_SOURCES = (
    "obama.jpg",
    "biden.jpg",
    "obama2.jpg",
    "lfw_Rob_Lowe_0001.jpg",
    "lfw_Teresa_Williams_0001.jpg",
    "image_T1.jpeg",
    "two_people.jpg",
    "t1.jpg",
)
SEED = 20260101
VERSION = 1  # bump when the recipe changes: a cached corpus is rebuilt


class CameraFile(NamedTuple):  # not a dataclass: tests load this script without a sys.modules entry
    path: Path
    kind: str  # portrait-12mp, portrait-24mp, exif-rotated, group-12mp, group-24mp


def upscale(pixels: np.ndarray, target_pixels: int) -> np.ndarray:
    height, width = pixels.shape[:2]
    scale = (target_pixels / (width * height)) ** 0.5
    return cv2.resize(pixels, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_CUBIC)


def add_noise(pixels: np.ndarray, rng: np.random.Generator, sigma: float = NOISE_SIGMA) -> np.ndarray:
    grain = rng.normal(0, sigma, pixels.shape).astype(np.float32)
    return np.clip(pixels.astype(np.float32) + grain, 0, 255).astype(np.uint8)


def encode(pixels: np.ndarray, quality: int = QUALITY) -> bytes:
    ok, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("cv2.imencode refused a corpus image")
    return bytes(data.tobytes())


def encode_rotated(upright: np.ndarray, orientation: int, quality: int = QUALITY) -> bytes:
    """A JPEG whose stored pixels are ``upright`` turned so that EXIF ``orientation`` (6 or 8) shows
    them upright again."""
    from PIL import Image

    turn = {6: cv2.ROTATE_90_COUNTERCLOCKWISE, 8: cv2.ROTATE_90_CLOCKWISE}[orientation]
    stored = cv2.rotate(upright, turn)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(cv2.cvtColor(stored, cv2.COLOR_BGR2RGB)).save(
        buffer, "JPEG", quality=quality, subsampling=2, exif=exif.tobytes()
    )
    return buffer.getvalue()


def face_patches(
    images: Path, detect: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
) -> list[tuple[np.ndarray, float]]:
    """Each face of the group sources with some context, and the face box's share of the patch width."""
    patches = []
    for name in GROUP_SOURCES:
        pixels = cv2.imread(str(images / name), cv2.IMREAD_COLOR)
        boxes, _ = detect(pixels)
        height, width = pixels.shape[:2]
        for x1, y1, x2, y2, _score in boxes:
            cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * 0.9
            left, top = int(max(0, cx - half)), int(max(0, cy - half))
            right, bottom = int(min(width, cx + half)), int(min(height, cy + half))
            patches.append((pixels[top:bottom, left:right], float((x2 - x1) / (right - left))))
    return patches


def group_photo(
    background: np.ndarray,
    patches: Sequence[tuple[np.ndarray, float]],
    size: tuple[int, int],
    rng: np.random.Generator,
    widths: Sequence[int] = GROUP_FACE_WIDTHS,
) -> np.ndarray:
    """``patches`` scaled so each face is one of ``widths`` pixels wide, on a blurred background."""
    width, height = size
    canvas = cv2.GaussianBlur(cv2.resize(background, size, interpolation=cv2.INTER_CUBIC), (0, 0), 3)
    columns = 6
    rows = len(patches) // columns + 1
    cell_w, cell_h = width // columns, height // rows
    for index, (patch, share) in enumerate(patches):
        scale = widths[index % len(widths)] / (share * patch.shape[1])
        method = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        scaled = cv2.resize(patch, None, fx=scale, fy=scale, interpolation=method)
        row, column = divmod(index, columns)
        top = row * cell_h + int(rng.integers(0, max(1, cell_h - scaled.shape[0])))
        left = column * cell_w + int(rng.integers(0, max(1, cell_w - scaled.shape[1])))
        fit_h, fit_w = min(scaled.shape[0], height - top), min(scaled.shape[1], width - left)
        canvas[top : top + fit_h, left : left + fit_w] = scaled[:fit_h, :fit_w]
    return canvas


def build(
    folder: Path,
    assets: Path,
    detect: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    *,
    portraits: bool = True,
    groups: tuple[int, int] = (4, 2),
    sources: Sequence[str] | None = None,
) -> list[CameraFile]:
    """The corpus in ``folder`` (reused when its manifest matches); ``groups`` = (12 MP, 24 MP) counts,
    ``sources``: the asset photos the portraits come from (default: every photo of ``expected.json``)."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.json"
    if sources is None:
        sources = sorted(json.loads((assets / "expected.json").read_text())["images"])
    recipe = {
        "version": VERSION,
        "portraits": list(sources) if portraits else [],
        "groups": list(groups),
        "seed": SEED,
    }
    if manifest.exists():
        stored = json.loads(manifest.read_text())
        if stored.get("recipe") == recipe and all((folder / n).exists() for n, _ in stored["files"]):
            return [CameraFile(folder / name, kind) for name, kind in stored["files"]]
    rng = np.random.default_rng(SEED)
    files: list[tuple[str, str]] = []

    def write(name: str, kind: str, data: bytes) -> None:
        (folder / name).write_bytes(data)
        files.append((name, kind))

    for number, name in enumerate(sources if portraits else []):
        stem = Path(name).stem
        original = cv2.imread(str(assets / "images" / name), cv2.IMREAD_COLOR)
        write(f"{stem}_12mp.jpg", "portrait-12mp", encode(add_noise(upscale(original, MP12), rng)))
        mirrored = add_noise(upscale(original[:, ::-1], MP12), rng)
        orientation = 6 if number % 2 else 8
        write(f"{stem}_exif{orientation}.jpg", "exif-rotated", encode_rotated(mirrored, orientation))
        if number % 3 == 0:
            write(f"{stem}_24mp.jpg", "portrait-24mp", encode(add_noise(upscale(original, MP24), rng)))
    patches = face_patches(assets / "images", detect)
    background = cv2.imread(str(assets / "images" / "view_no_face.jpg"), cv2.IMREAD_COLOR)
    for number in range(groups[0] + groups[1]):
        big = number >= groups[0]
        size = (6000, 4000) if big else (4032, 3024)
        order = rng.permutation(len(patches))
        chosen = [patches[i] for i in order[: 8 if big else 12]]
        pixels = add_noise(group_photo(background, chosen, size, rng), rng)
        kind = "group-24mp" if big else "group-12mp"
        write(f"group{number}_{kind[-4:]}.jpg", kind, encode(pixels))
    manifest.write_text(json.dumps({"recipe": recipe, "files": files}))
    return [CameraFile(folder / name, kind) for name, kind in files]
