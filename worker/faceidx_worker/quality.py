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
    min_box_px: float = 40.0
    min_sharpness: float = 40.0
    max_yaw: float = 45.0
    max_pitch: float = 35.0
    min_det_score: float = 0.6


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


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from five landmarks; filled in below."""
    raise NotImplementedError
