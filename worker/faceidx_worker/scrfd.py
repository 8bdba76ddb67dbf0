"""SCRFD detection beyond insightface's one-image call: a whole batch per session run, and the
fixed-input detector's small pass.

* :class:`ScrfdBatchDetector`: a detector whose export has a batch axis
  (``worker/image/export_batched_detector.py``, run at image build time) gets every image of a chunk
  letterboxed into one blob per size, one session run, and each image's outputs decoded as
  ``SCRFD.forward`` + ``_detect_candidates`` do, then merged by the detector's own NMS: the same
  boxes as one image at a time. On a GPU a chunk is padded to a warmed batch-size bucket.
* :func:`detect_fixed_input`: a detector with a fixed input size (``scrfd_500m_bnkps_640.onnx``) always
  gets its own size; the small pass shrinks the image into a corner of that canvas.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from faceidx_worker.accel import bucket_for, pad_batch, run_bound

Detections = tuple[np.ndarray, np.ndarray]  # boxes+scores (N x 5), landmarks (N x 5 x 2)


def has_batch_axis(session: Any) -> bool:
    """An SCRFD session whose input batch is free and whose outputs are N x candidates x C."""
    batch = session.get_inputs()[0].shape[0]
    return not isinstance(batch, int) and all(len(o.shape) == 3 for o in session.get_outputs())


def no_faces() -> Detections:
    return np.empty((0, 5), dtype=np.float32), np.empty((0, 5, 2), dtype=np.float32)


def merge_candidates(detector: Any, kept: list[tuple[np.ndarray, Any]]) -> Detections:
    """One image's candidates of every size, best first, through the detector's NMS (``SCRFD.detect``)."""
    if not kept:
        return no_faces()
    pre = np.vstack([p for p, _ in kept]).astype(np.float32, copy=False)
    kpss = np.vstack([k for _, k in kept])
    order = np.argsort(-pre[:, 4], kind="stable")
    pre, kpss = pre[order], kpss[order]
    keep = detector.nms(pre)
    return pre[keep].astype(np.float32, copy=False), kpss[keep].astype(np.float32, copy=False)


def detect_fixed_input(
    detector: Any, pixels: np.ndarray, size: tuple[int, int], small: int, thresh: float
) -> Detections:
    """A fixed-input detector: its own ``size``, plus the ``small`` pass drawn into a corner of its canvas."""
    import cv2

    width, height = size
    candidates = [detector._detect_candidates(pixels, (width, height), thresh)]
    if small and small < min(width, height):
        scale = small / max(pixels.shape[0], pixels.shape[1])
        new_w = max(1, int(pixels.shape[1] * scale))
        new_h = max(1, int(pixels.shape[0] * scale))
        canvas = np.zeros((height, width, 3), dtype=np.uint8)
        canvas[:new_h, :new_w] = cv2.resize(pixels, (new_w, new_h))
        pre, kps = detector._detect_candidates(canvas, (width, height), thresh)
        if pre.shape[0]:
            pre = pre.copy()
            pre[:, :4] /= scale
            kps = kps / scale if kps is not None else None
        candidates.append((pre, kps))
    return merge_candidates(detector, [(pre, kps) for pre, kps in candidates if pre.shape[0]])


def letterbox(pixels: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float]:
    """``pixels`` resized into the top-left corner of a ``width`` x ``height`` canvas, as SCRFD does."""
    import cv2

    im_ratio = float(pixels.shape[0]) / pixels.shape[1]
    if im_ratio > float(height) / width:
        new_height = height
        new_width = int(new_height / im_ratio)
    else:
        new_width = width
        new_height = int(new_width * im_ratio)
    scale = float(new_height) / pixels.shape[0]
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    canvas[:new_height, :new_width] = cv2.resize(pixels, (new_width, new_height))
    return canvas, scale


class ScrfdBatchDetector:
    """Insightface's loaded ``SCRFD`` with a batch-axis export: chunks of ``batch`` images per run."""

    def __init__(
        self,
        detector: Any,
        sizes: list[tuple[int, int]],
        thresh: float,
        *,
        batch: int,
        buckets: list[int],
        io_binding: bool,
    ) -> None:
        self.detector = detector
        self.sizes = sizes
        self.thresh = thresh
        self.batch = max(1, batch)
        self.buckets = buckets
        self.io_binding = io_binding
        self._anchor_cache: dict[tuple[int, int, int], np.ndarray] = {}

    def detect_many(self, images: list[np.ndarray], *, pad: bool = False) -> list[Detections]:
        """Each image's detections, one session run per chunk and size; ``pad``: up to a bucket."""
        found: list[Detections] = []
        for start in range(0, len(images), self.batch):
            found.extend(self._detect_chunk(images[start : start + self.batch], pad))
        return found

    def _detect_chunk(self, images: list[np.ndarray], pad: bool) -> list[Detections]:
        import cv2

        det = self.detector
        per_image: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in images]
        for width, height in self.sizes:
            canvases, scales = [], []
            for pixels in images:
                canvas, scale = letterbox(pixels, width, height)
                canvases.append(canvas)
                scales.append(scale)
            blob = cv2.dnn.blobFromImages(
                canvases, 1.0 / det.input_std, (width, height), (det.input_mean,) * 3, swapRB=True
            )
            count = blob.shape[0]
            if pad:
                blob = pad_batch(blob, bucket_for(count, self.buckets))
            feeds = {det.input_name: np.ascontiguousarray(blob, dtype=np.float32)}
            if self.io_binding:
                outs = run_bound(det.session, feeds, list(det.output_names))
            else:
                outs = det.session.run(det.output_names, feeds)
            for index in range(count):
                pre, kps = self._candidates(outs, index, width, height, scales[index])
                if pre.shape[0]:
                    per_image[index].append((pre, kps))
        return [merge_candidates(det, kept) for kept in per_image]

    def _anchors(self, rows: int, cols: int, stride: int) -> np.ndarray:
        key = (rows, cols, stride)
        centers = self._anchor_cache.get(key)
        if centers is None:
            ys, xs = np.mgrid[:rows, :cols]
            grid = np.stack([xs, ys], axis=-1).astype(np.float32)
            centers = (grid * stride).reshape((-1, 2))
            if self.detector._num_anchors > 1:
                centers = np.stack([centers] * self.detector._num_anchors, axis=1).reshape((-1, 2))
            self._anchor_cache[key] = centers
        return centers

    def _candidates(
        self, outs: list[np.ndarray], index: int, width: int, height: int, det_scale: float
    ) -> Detections:
        """Image ``index`` of a batched run, decoded as ``SCRFD.forward`` + ``_detect_candidates`` do."""
        from insightface.model_zoo.scrfd import distance2bbox, distance2kps

        det = self.detector
        fmc = det.fmc
        scores_list, boxes_list, kps_list = [], [], []
        for level, stride in enumerate(det._feat_stride_fpn):
            scores = outs[level][index]
            keep = np.where(scores >= self.thresh)[0]
            if not keep.size:
                continue
            centers = self._anchors(height // stride, width // stride, stride)[keep]
            boxes = distance2bbox(centers, outs[level + fmc][index][keep] * stride)
            kpss = distance2kps(centers, outs[level + fmc * 2][index][keep] * stride)
            scores_list.append(scores[keep])
            boxes_list.append(boxes)
            kps_list.append(kpss.reshape((kpss.shape[0], -1, 2)))
        if not scores_list:
            return no_faces()
        scores = np.vstack(scores_list)
        order = np.argsort(-scores.ravel(), kind="stable")
        pre = np.hstack((np.vstack(boxes_list) / det_scale, scores)).astype(np.float32, copy=False)
        return pre[order], (np.vstack(kps_list) / det_scale)[order]
