"""Face quality: measures per face and the gate that flags poor faces. Pure functions over numpy.

* **Box size**: ``bbox_width`` / ``bbox_height`` in original pixels (the row builder computes them).
* **Sharpness**: the variance of the Laplacian (OpenCV's 3x3 kernel) of the aligned crop in gray
  (:func:`sharpness`), the crop the recognizer sees (112 x 112): blur lowers it.
* **Pose**: yaw, pitch and roll in degrees from the five landmarks (:func:`head_pose`).
* **Embedding norm**: the recognizer's feature norm before L2 normalisation; low norms go with poor,
  unrecognisable faces.
* **The gate** (:func:`quality_gate`): the reasons a face fails, from :class:`QualityThresholds`
  (the ``FACEIDX_QUALITY_*`` settings). An empty list means the face passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np


class QualityReason(StrEnum):
    SMALL_BOUNDING_BOX = "SMALL_BOUNDING_BOX"  # the shorter box side is below min_box_px
    LOW_SHARPNESS = "LOW_SHARPNESS"  # Laplacian variance of the aligned crop below min_sharpness
    EXTREME_POSE = "EXTREME_POSE"  # |yaw| or |pitch| over max_yaw / max_pitch degrees
    LOW_CONFIDENCE = "LOW_CONFIDENCE"  # detector score below min_det_score


@dataclass(frozen=True)
class FaceQuality:
    """The measures of one face (box size comes from its bbox)."""

    bbox_width: float
    bbox_height: float
    det_score: float
    sharpness: float
    yaw: float
    pitch: float
    roll: float
    embedding_norm: float | None


@dataclass(frozen=True)
class QualityThresholds:
    """The gate's limits; the defaults (the ``FACEIDX_QUALITY_*`` settings' defaults) are calibrated on
    the test photos (``benchmarks/quality_calibration.py``, docs/quality.md)."""

    min_box_px: float = 40.0  # real faces: >= 62 px; t1.jpg at 0.3 scale: 29-34 px
    min_sharpness: float = 25.0  # real faces: >= 47; t1.jpg blurred (sigma 2.5): 9-19
    max_yaw: float = 65.0  # real faces: <= 59 (a near-profile face that still matches its identity)
    max_pitch: float = 45.0  # real faces: <= 32
    min_det_score: float = 0.6  # real faces: >= 0.66 (rot_r90.jpg); a false positive: 0.56


def quality_gate(quality: FaceQuality, thresholds: QualityThresholds) -> list[str]:
    """The reasons ``quality`` fails ``thresholds``, in :class:`QualityReason` order; ``[]`` = passed."""
    reasons = []
    if min(quality.bbox_width, quality.bbox_height) < thresholds.min_box_px:
        reasons.append(QualityReason.SMALL_BOUNDING_BOX.value)
    if quality.sharpness < thresholds.min_sharpness:
        reasons.append(QualityReason.LOW_SHARPNESS.value)
    if abs(quality.yaw) > thresholds.max_yaw or abs(quality.pitch) > thresholds.max_pitch:
        reasons.append(QualityReason.EXTREME_POSE.value)
    if quality.det_score < thresholds.min_det_score:
        reasons.append(QualityReason.LOW_CONFIDENCE.value)
    return reasons


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of ``crop`` (BGR or gray uint8) in gray."""
    import cv2

    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


# A canonical 3-D face at the five landmarks' places, in the ArcFace 112x112 template's pixels: x right,
# y down (the template's own points, centred), z away from the camera (the nose tip stands out towards
# it by half the eye distance, the mouth corners by an eighth). The depths are typical proportions, not
# one person's: they set the scale of yaw and pitch, not their sign or their zero.
_EYE_DISTANCE = 73.5318 - 38.2946
CANONICAL_FACE = np.array(
    [
        [38.2946, 51.6963, 0.0],  # the eye on the image's left
        [73.5318, 51.5014, 0.0],  # the eye on the image's right
        [56.0252, 71.7366, -0.5 * _EYE_DISTANCE],  # nose tip
        [41.5493, 92.3655, -0.125 * _EYE_DISTANCE],  # mouth corner, image left
        [70.7299, 92.2041, -0.125 * _EYE_DISTANCE],  # mouth corner, image right
    ],
    dtype=np.float64,
)
CANONICAL_FACE -= CANONICAL_FACE.mean(axis=0)


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from the five landmarks (any pixel frame, insightface order).

    The method: a scaled orthographic camera (faces are far from the lens compared with their depth).
    The least-squares 2x3 projection ``M`` that takes :data:`CANONICAL_FACE` to the centred landmarks
    is made a scaled rotation (the nearest one, by SVD); its third row is the cross product of the
    first two. The rotation is read as ``R = Rz(roll) @ Rx(pitch) @ Ry(yaw)``: turn the head about
    its vertical axis, then nod, then tilt in the image plane. Signs: yaw > 0 turns the nose to the
    image's right, pitch > 0 lifts it (the face looks up), roll > 0 turns the eye line clockwise in the
    image. A frontal face is (0, 0, 0); a photo turned by 90 degrees gives a roll of +-90.
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    points = points - points.mean(axis=0)
    model = CANONICAL_FACE
    # points.T (2x5) = M (2x3) @ model.T (3x5), least squares
    projection = np.linalg.lstsq(model, points, rcond=None)[0].T
    left, _, right = np.linalg.svd(projection, full_matrices=False)
    rows = left @ right  # 2x3, orthonormal rows
    rotation = np.vstack([rows, np.cross(rows[0], rows[1])])
    pitch_internal = np.arcsin(np.clip(rotation[2, 1], -1.0, 1.0))
    yaw_internal = np.arctan2(-rotation[2, 0], rotation[2, 2])
    roll = np.arctan2(-rotation[0, 1], rotation[1, 1])
    # Ry(+) swings the nose (z < 0) to the image's left and Rx(+) swings it down: flip both so that
    # the signs read as the docstring says.
    return float(-np.degrees(yaw_internal)), float(-np.degrees(pitch_internal)), float(np.degrees(roll))


def project_canonical(yaw: float, pitch: float, roll: float, scale: float = 1.0) -> np.ndarray:
    """The five landmarks of :data:`CANONICAL_FACE` posed at (yaw, pitch, roll) degrees, orthographic
    (the inverse of :func:`head_pose`, for tests and the docs)."""
    y, p, r = np.radians([-yaw, -pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    posed = CANONICAL_FACE @ (rz @ rx @ ry).T
    return (scale * posed[:, :2] + 100.0).astype(np.float32)
