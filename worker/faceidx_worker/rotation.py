"""The rotation retry (``FACEIDX_ROTATION_RETRY``): an image in which no face is found is detected
again turned by 90, 180 and 270 degrees clockwise.

A photo that a phone saved sideways without an EXIF orientation shows its faces lying down; SCRFD
scores those low or not at all (``rot_r90.jpg`` of the test photos: 0.66 as stored, 0.83 turned by
270 degrees). Every rotation is tried and the one whose best face scores highest wins: a sideways
face often scores 0.5-0.7 at the wrong quarter turn, so the first rotation above the threshold could
be the wrong one, and an image with no face at all (most retried images) pays for the three
rotations either way.

Boxes and landmarks are mapped back to the image as stored after EXIF orientation, the frame of every
other row; the aligned crop (and so the embedding) is cut from the turned pixels, where the face
stands upright. The row's ``rotation`` says which turn found the face. Coordinates are continuous
pixels: a point (x, y) of a ``width`` x ``height`` image turned by 90 degrees clockwise lands at
(height - y, x).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

RETRY_ROTATIONS = (90, 180, 270)  # degrees clockwise
T = TypeVar("T")


def rotate_pixels(pixels: np.ndarray, degrees: int) -> np.ndarray:
    """``pixels`` (H x W [x C]) turned ``degrees`` (a multiple of 90) clockwise, contiguous."""
    turns = (degrees // 90) % 4
    if not turns:
        return pixels
    return np.ascontiguousarray(np.rot90(pixels, -turns))


def rotated_size(width: int, height: int, degrees: int) -> tuple[int, int]:
    """(width, height) of a ``width`` x ``height`` image turned by ``degrees``."""
    return (height, width) if (degrees // 90) % 2 else (width, height)


def rotate_points(points: np.ndarray, degrees: int, width: float, height: float) -> np.ndarray:
    """Points (..., 2) of a ``width`` x ``height`` image, in that image turned ``degrees`` clockwise."""
    points = np.asarray(points, np.float32)
    x, y = points[..., 0], points[..., 1]
    turns = (degrees // 90) % 4
    if turns == 1:
        moved = (height - y, x)
    elif turns == 2:
        moved = (width - x, height - y)
    elif turns == 3:
        moved = (y, width - x)
    else:
        return points.copy()
    return np.stack(moved, axis=-1).astype(np.float32)


def unrotate_points(points: np.ndarray, degrees: int, width: float, height: float) -> np.ndarray:
    """Points of the image turned ``degrees`` clockwise, back in the ``width`` x ``height`` original."""
    turned_w, turned_h = rotated_size(int(width), int(height), degrees)
    return rotate_points(points, -degrees % 360, turned_w, turned_h)


def unrotate_boxes(boxes: np.ndarray, degrees: int, width: float, height: float) -> np.ndarray:
    """Boxes (N x 4, or N x 5 with the score kept) of the turned image, back in the original."""
    boxes = np.asarray(boxes, np.float32)
    corners = unrotate_points(boxes[:, :4].reshape(-1, 2, 2), degrees, width, height)
    out = boxes.copy()
    out[:, 0:2] = corners.min(axis=1)
    out[:, 2:4] = corners.max(axis=1)
    return out


def rotate_box(box: np.ndarray, degrees: int, width: float, height: float) -> np.ndarray:
    """One box (4,) of a ``width`` x ``height`` image, in that image turned ``degrees`` clockwise."""
    corners = rotate_points(np.asarray(box[:4], np.float32).reshape(2, 2), degrees, width, height)
    return np.concatenate([corners.min(axis=0), corners.max(axis=0)]).astype(np.float32)


def best_rotation(detect: Callable[[int], T], top_score: Callable[[T], float]) -> tuple[int, T] | None:
    """``detect(degrees)`` for each of :data:`RETRY_ROTATIONS`; the rotation whose best face scores
    highest (the first on a tie) with its result, or None when no rotation finds a face
    (``top_score`` gives 0 for no face)."""
    best: tuple[int, T] | None = None
    best_score = 0.0
    for degrees in RETRY_ROTATIONS:
        found = detect(degrees)
        score = top_score(found)
        if score > best_score:
            best, best_score = (degrees, found), score
    return best


def top_score(found: Any) -> float:
    """The best score of a detection result whose first item is the boxes (N x 5), 0 without a face."""
    boxes = found[0]
    return float(boxes[:, 4].max()) if len(boxes) else 0.0
