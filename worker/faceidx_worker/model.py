"""The face model: insightface's ``model_zoo`` SCRFD detector and ArcFace recognizer on ONNX Runtime.

The loop talks to a :class:`FaceModel` (a small protocol); :class:`InsightFaceModelPack` implements it
and loads nothing until :meth:`load` is called (sessions are heavy; settings errors come first).

* **Pack files**: which ``.onnx`` file of ``FACEIDX_MODEL_DIR`` is the detector and which the
  recognizer, and the pack's version: :mod:`faceidx_worker.packs`.
* **Providers**: :func:`faceidx_worker.accel.choose_providers`: CUDA first when the device has a GPU
  and ONNX Runtime offers it, then CPU; TensorRT (fp16) before CUDA when asked for. ``active_provider``
  is what the created sessions really use (ORT silently falls back to CPU when CUDA cannot start).
  Every session blocks between runs (no spinning threads).
* **Detection**: like insightface 2.1's ``FaceAnalysis`` with its default (auto) det size, two passes
  merged by NMS: ``FACEIDX_DET_SIZE`` (640) and ``FACEIDX_DET_SMALL_SIZE`` (128, finds faces that fill a
  small image). A fixed-input detector and a batch-axis export are handled by :mod:`faceidx_worker.scrfd`
  (:meth:`InsightFaceModelPack.detect_many`: the same boxes as one by one). ``rotation_retry``
  (``FACEIDX_ROTATION_RETRY``) tells the indexer to detect a faceless image again turned
  (:mod:`faceidx_worker.rotation`).
* **Recognition**: aligned crops of many images go through one batched call (chunks of
  ``FACEIDX_EMBED_BATCH``). A recognizer whose batch axis is fixed to 1, or that fails on a batch, is fed
  one face at a time. Embeddings are L2-normalized float32; ``embed_with_norms`` also gives each raw
  feature's norm (a quality signal). Inputs go through an IO binding; on a GPU each chunk is padded to
  a warmed batch-size bucket (powers of two up to ``FACEIDX_EMBED_BATCH``).
* **CPU sessions**: the recognizer's ``PRelu`` is rewritten (:mod:`faceidx_worker.onnx_rewrite`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from faceidx_worker.accel import (
    CPU,
    CUDA,
    AccelOptions,
    batch_buckets,
    bucket_for,
    choose_providers,
    gpu_device_count,
    pad_batch,
    provider_name,
    run_bound,
    session_options,
)
from faceidx_worker.face_decode import merge_with_votes
from faceidx_worker.onnx_rewrite import rewrite_prelu
from faceidx_worker.packs import ModelPackError, PackFiles, find_pack_files, pack_version
from faceidx_worker.scrfd import ScrfdBatchDetector, detect_fixed_input, has_batch_axis

if TYPE_CHECKING:
    from faceidx_worker.model_settings import ModelSettings

log = logging.getLogger(__name__)

__all__ = ["CPU", "CUDA", "FaceModel", "InsightFaceModelPack", "ModelPackError"]


class FaceModel(Protocol):
    name: str  # the pack: every row's model_pack

    def load(self) -> None: ...

    @property
    def version(self) -> str: ...  # every row's model_version

    @property
    def active_provider(self) -> str: ...

    @property
    def embedding_size(self) -> int: ...

    def detect(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def align(self, pixels: np.ndarray, landmarks: np.ndarray) -> np.ndarray: ...

    def embed(self, crops: list[np.ndarray]) -> np.ndarray: ...

    def embed_with_norms(self, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...


def l2_normalize(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


class InsightFaceModelPack:
    """SCRFD + ArcFace from one pack folder, loaded lazily. Thread use: one inference thread."""

    @classmethod
    def from_settings(
        cls,
        settings: ModelSettings,
        folder: Path,
        *,
        name: str | None = None,
        version: str | None = None,
        genderage: bool | None = None,
    ) -> InsightFaceModelPack:
        """The pack in ``folder`` with the detector, batch and thread settings of ``settings`` (the model
        settings alone): the worker and search by photo build their models the same way."""
        return cls(
            folder,
            name=name,
            version=version,
            det_thresh=settings.det_thresh,
            det_size=settings.det_size,
            det_small_size=settings.det_small_size,
            embed_batch=settings.embed_batch,
            ort_threads=settings.ort_threads,
            cpu_graph_rewrite=settings.cpu_graph_rewrite,
            genderage=settings.genderage if genderage is None else genderage,
            rotation_retry=settings.rotation_retry,
        )

    def __init__(
        self,
        model_dir: Path,
        *,
        name: str | None = None,
        version: str | None = None,
        det_thresh: float = 0.5,
        det_size: int = 640,
        det_small_size: int = 128,
        embed_batch: int = 64,
        ort_threads: int = 0,
        providers: list[Any] | None = None,
        cpu_graph_rewrite: bool = True,
        det_batch: int = 16,
        accel: AccelOptions | None = None,
        gpu_present: bool | None = None,
        genderage: bool = False,
        rotation_retry: bool = False,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.rotation_retry = rotation_retry  # read by the indexer: a faceless image is tried turned
        self.want_genderage = genderage
        self.genderage: Any = None  # a GenderAgeModel once loaded, when asked for and present
        self.name = name or self.model_dir.resolve().name
        self._version = version
        self.det_thresh = det_thresh
        self.det_size = det_size
        self.det_small_size = det_small_size
        self.embed_batch = embed_batch
        self.ort_threads = ort_threads
        self.requested_providers = providers
        self.cpu_graph_rewrite = cpu_graph_rewrite
        self.det_batch = max(1, det_batch)
        self.accel = accel or AccelOptions()
        self.gpu_present = gpu_present
        self.batch_detector = False  # set at load: the detector takes a whole batch per call
        self.pad_to_buckets = False  # set at load: on a GPU, chunks run only at warmed batch sizes
        self.embed_buckets = batch_buckets(max(1, embed_batch))
        self.det_buckets = batch_buckets(self.det_batch)
        self._batched: ScrfdBatchDetector | None = None  # set at load for a batch-axis detector
        self.rewritten_prelu = 0
        self.files: PackFiles | None = None
        self.detector: Any = None
        self.recognizer: Any = None
        self.batch_one = False
        self.static_size: tuple[int, int] | None = None
        self.det_sizes: list[tuple[int, int]] = []

    @property
    def version(self) -> str:
        """The given version, else :func:`pack_version` of the folder (hashed once)."""
        if self._version is None:
            self._version = pack_version(self.name, self.model_dir)
        return self._version

    # -- loading -------------------------------------------------------------------------------
    def load(self) -> None:
        if self.detector is not None:
            return
        import onnxruntime

        onnxruntime.set_default_logger_severity(3)
        self.files = find_pack_files(self.model_dir)
        gpu = self.gpu_present if self.gpu_present is not None else gpu_device_count() > 0
        providers = self.requested_providers or choose_providers(self.accel, gpu_present=gpu)
        # ONNX Runtime's threads spin-wait between runs by default: on the CPU they steal the cores
        # the download/decode threads need, on the GPU they burn a core each while the device works.
        options = session_options(threads=self.ort_threads)
        detector, recognizer = self._load_sessions(self.files, providers, options)
        self._plan_detection(detector, self.files.detector)
        batch_axis = recognizer.input_shape[0]
        self.batch_one = isinstance(batch_axis, int) and batch_axis == 1
        self.detector = detector
        self.recognizer = recognizer
        self.batch_detector = (
            self.accel.batch_detect and self.static_size is None and has_batch_axis(detector.session)
        )
        if self.batch_detector:
            self._batched = ScrfdBatchDetector(
                detector,
                self.det_sizes,
                self.det_thresh,
                batch=self.det_batch,
                buckets=self.det_buckets,
                io_binding=self.accel.io_binding,
            )
        self.pad_to_buckets = self.active_provider == CUDA
        self._load_genderage(providers, options)
        self._warm_up()
        log.info(
            "loaded model pack %s: detector %s (input %s, sizes %s, %s), recognizer %s (%s-d, %s%s), "
            "providers %s",
            self.name,
            self.files.detector.name,
            detector.input_shape,
            self.det_sizes,
            f"batches of up to {self.det_batch}" if self.batch_detector else "one image a call",
            self.files.recognizer.name,
            self.embedding_size,
            "batch 1 only" if self.batch_one else "batched",
            f", {self.rewritten_prelu} PRelu rewritten for the CPU" if self.rewritten_prelu else "",
            self.session_providers(),
        )

    def _load_sessions(self, files: PackFiles, providers: list[Any], options: Any) -> tuple[Any, Any]:
        """insightface's SCRFD and ArcFaceONNX on ``providers``; on the CPU the recognizer's PRelu
        rewritten (:mod:`faceidx_worker.onnx_rewrite`)."""
        import onnxruntime
        from insightface.model_zoo import model_zoo
        from insightface.model_zoo.arcface_onnx import ArcFaceONNX
        from insightface.model_zoo.scrfd import SCRFD

        detector = model_zoo.get_model(str(files.detector), providers=providers, sess_options=options)
        recognizer = model_zoo.get_model(str(files.recognizer), providers=providers, sess_options=options)
        if not isinstance(detector, SCRFD):
            raise ModelPackError(f"{files.detector} did not load as an SCRFD detector")
        if not detector.use_kps:
            raise ModelPackError(f"{files.detector} gives no landmarks; the recognizer needs them")
        if not isinstance(recognizer, ArcFaceONNX):
            raise ModelPackError(f"{files.recognizer} did not load as an ArcFace recognizer")
        if CUDA not in [provider_name(p) for p in providers] and self.cpu_graph_rewrite:
            rewritten, self.rewritten_prelu = rewrite_prelu(files.recognizer.read_bytes())
            if self.rewritten_prelu:
                # ArcFaceONNX keeps reading its settings from the original file; only the session changes.
                recognizer.session = onnxruntime.InferenceSession(
                    rewritten, sess_options=options, providers=providers
                )
        return detector, recognizer

    def _plan_detection(self, detector: Any, path: Path) -> None:
        """The detector's input sizes: its own fixed size, else the small pass and FACEIDX_DET_SIZE."""
        self.static_size = detector.static_input_size
        if self.static_size is not None:
            self.det_sizes = [tuple(self.static_size)]
            if (self.det_size, self.det_size) != tuple(self.static_size):
                log.info(
                    "detector %s has a fixed %sx%s input: FACEIDX_DET_SIZE=%s does not apply",
                    path.name,
                    *self.static_size,
                    self.det_size,
                )
        else:
            self.det_sizes = [(self.det_size, self.det_size)]
            if self.det_small_size:
                self.det_sizes.insert(0, (self.det_small_size, self.det_small_size))
        detector.prepare(0, input_size=self.det_sizes, det_thresh=self.det_thresh)

    def _load_genderage(self, providers: list[Any], options: Any) -> None:
        """The age/gender model, when ``genderage`` is asked for; a clear warning when the pack has none."""
        if not self.want_genderage:
            return
        assert self.files is not None
        if self.files.genderage is None:
            log.warning(
                "FACEIDX_GENDERAGE is on but model pack %s (%s) holds no genderage model (a 96x96 input with "
                "one output of 3 values, insightface's genderage.onnx): age and gender stay null. Add the "
                "model to the pack, or unset FACEIDX_GENDERAGE",
                self.name,
                self.model_dir,
            )
            return
        import onnxruntime

        from faceidx_worker.genderage import GenderAgeModel

        session = onnxruntime.InferenceSession(
            str(self.files.genderage), sess_options=options, providers=providers
        )
        self.genderage = GenderAgeModel(self.files.genderage, session)
        log.info("model pack %s: age and gender from %s", self.name, self.files.genderage.name)

    def _warm_up(self) -> None:
        """Build the per-size detector sessions and run the recognizer, before the first message.

        On a GPU every batch-size bucket of both models runs once, so no production batch pays a
        first-call algorithm search or allocation.
        """
        blank = np.zeros((self.det_size, self.det_size, 3), dtype=np.uint8)
        self.detect(blank)
        size = self.recognizer.input_size[0]
        crop = np.zeros((size, size, 3), dtype=np.uint8)
        if not self.pad_to_buckets:
            self.embed([crop])
            if self.batch_detector:
                self.detect_many([blank])
            return
        for bucket in self.det_buckets if self.batch_detector else []:
            self.detect_many([blank] * bucket)
        for bucket in [1] if self.batch_one else self.embed_buckets:
            self.embed([crop] * bucket)

    def session_providers(self) -> dict[str, list[str]]:
        self._require_loaded()
        return {
            "detector": list(self.detector.session.get_providers()),
            "recognizer": list(self.recognizer.session.get_providers()),
        }

    @property
    def active_provider(self) -> str:
        """The provider both sessions run on first; ``CPUExecutionProvider`` if either fell back."""
        providers = self.session_providers()
        firsts = {names[0] if names else CPU for names in providers.values()}
        return CUDA if firsts == {CUDA} else CPU

    @property
    def embedding_size(self) -> int:
        self._require_loaded()
        size = self.recognizer.output_shape[-1]
        return int(size) if isinstance(size, int) else -1

    def _require_loaded(self) -> None:
        if self.detector is None:
            raise RuntimeError("the model pack is not loaded: call load() first")

    # -- inference ------------------------------------------------------------------------------
    def detect(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes+scores (N x 5) and landmarks (N x 5 x 2) in ``pixels`` coordinates, best first."""
        self._require_loaded()
        if self.static_size is None:
            dets, kpss = self.detector.detect(pixels, input_size=self.det_sizes, det_thresh=self.det_thresh)
        else:
            dets, kpss = detect_fixed_input(
                self.detector, pixels, self.static_size, self.det_small_size, self.det_thresh
            )
        if kpss is None:
            kpss = np.empty((0, 5, 2), dtype=np.float32)
        return dets.astype(np.float32, copy=False), kpss.astype(np.float32, copy=False)

    @property
    def detection_sizes(self) -> list[tuple[int, int]]:
        """The detector's input sizes, one pass each (a fixed-input detector: its own size alone)."""
        self._require_loaded()
        if self.static_size is not None:
            return [(int(self.static_size[0]), int(self.static_size[1]))]
        return list(self.det_sizes)

    @property
    def crop_size(self) -> int:
        """The recognizer's square input side (112 for ArcFace)."""
        self._require_loaded()
        return int(self.recognizer.input_size[0])

    def detect_prescaled(
        self, inputs: Sequence[tuple[np.ndarray, tuple[float, float]]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`detect` with each pass on its own input: ``inputs[i]`` is the image already shrunk to fit
        ``detection_sizes[i]`` (by area, :mod:`faceidx_worker.face_decode`) with its original pixels per
        input pixel (x, y). Boxes and landmarks come back in original pixels, merged by the detector's NMS
        with the landmarks voted (:func:`~faceidx_worker.face_decode.merge_with_votes`).
        A fixed-input detector gets the one input and draws its small pass from it."""
        self._require_loaded()
        kept: list[tuple[np.ndarray, Any]] = []
        if self.static_size is not None:
            pixels, scale = inputs[0]
            boxes, kpss = detect_fixed_input(
                self.detector, pixels, self.static_size, self.det_small_size, self.det_thresh
            )
            kept.append((boxes, kpss.reshape(-1, 5, 2) if kpss is not None else None))
            scales = [scale]
        else:
            scales = []
            for (pixels, scale), size in zip(inputs, self.det_sizes, strict=True):
                # the input already has its letterbox size: pad it to the square ourselves, so that
                # SCRFD's own letterbox finds nothing to resize (its rounding could shift it a pixel)
                canvas = np.zeros((size[1], size[0], 3), dtype=np.uint8)
                canvas[: pixels.shape[0], : pixels.shape[1]] = pixels[: size[1], : size[0]]
                pre, kpss = self.detector._detect_candidates(canvas, size, self.det_thresh)
                kept.append((pre, kpss))
                scales.append(scale)
        rescaled = []
        for (found, kpss), (scale_x, scale_y) in zip(kept, scales, strict=True):
            if not found.shape[0]:
                continue
            boxes = found.astype(np.float32, copy=True)
            boxes[:, [0, 2]] *= scale_x
            boxes[:, [1, 3]] *= scale_y
            points = np.asarray(kpss, np.float32).reshape(-1, 5, 2) * np.array([scale_x, scale_y], np.float32)
            rescaled.append((boxes, points))
        return merge_with_votes(self.detector, rescaled)

    def detect_many(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`detect` for each image; with a batch-axis detector, one call per chunk and size."""
        self._require_loaded()
        if self._batched is None:
            return [self.detect(pixels) for pixels in images]
        return self._batched.detect_many(images, pad=self.pad_to_buckets)

    def align(self, pixels: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The recognizer's input crop: insightface ``norm_crop`` (similarity transform to the template)."""
        from insightface.utils import face_align

        self._require_loaded()
        with warnings.catch_warnings():
            # scikit-image 0.26 deprecates the estimate() call insightface 2.1 makes; the result is the same.
            warnings.simplefilter("ignore", FutureWarning)
            return face_align.norm_crop(pixels, landmark=landmarks, image_size=self.recognizer.input_size[0])

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """L2-normalized embeddings, one row per crop, in batches (one at a time for batch-1 models)."""
        return l2_normalize(self.features(crops))

    def embed_with_norms(self, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`embed` and each feature's L2 norm before the normalisation (a quality signal)."""
        features = self.features(crops)
        return l2_normalize(features), np.linalg.norm(features, axis=1).astype(np.float32)

    def features(self, crops: list[np.ndarray]) -> np.ndarray:
        """The recognizer's raw features (not normalized), one float32 row per crop."""
        self._require_loaded()
        if not crops:
            return np.empty((0, max(self.embedding_size, 0)), dtype=np.float32)
        if self.batch_one:
            return np.vstack([self._embed_chunk([crop]) for crop in crops]).astype(np.float32, copy=False)
        parts = []
        for start in range(0, len(crops), self.embed_batch):
            chunk = crops[start : start + self.embed_batch]
            try:
                parts.append(self._embed_chunk(chunk))
            except Exception as exc:  # ORT's pybind errors share no useful base class
                if len(chunk) == 1:
                    raise
                log.warning(
                    "recognizer %s failed on a batch of %s (%s); falling back to one face at a time",
                    self.name,
                    len(chunk),
                    exc,
                )
                self.batch_one = True
                return self.features(crops)
        return np.vstack(parts).astype(np.float32, copy=False)

    def _embed_chunk(self, crops: list[np.ndarray]) -> np.ndarray:
        """Raw recognizer features for ``crops``: ``ArcFaceONNX.get_feat``'s blob, through the IO binding."""
        import cv2

        rec = self.recognizer
        blob = cv2.dnn.blobFromImages(
            crops, 1.0 / rec.input_std, tuple(rec.input_size), (rec.input_mean,) * 3, swapRB=True
        )
        blob = np.ascontiguousarray(blob, dtype=np.float32)
        count = blob.shape[0]
        if self.pad_to_buckets and not self.batch_one:
            blob = pad_batch(blob, bucket_for(count, self.embed_buckets))
        feeds = {rec.input_name: blob}
        if self.accel.io_binding:
            features = run_bound(rec.session, feeds, list(rec.output_names))[0]
        else:
            features = rec.session.run(rec.output_names, feeds)[0]
        return np.asarray(features[:count])
