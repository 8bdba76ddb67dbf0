"""The face models: insightface's ``model_zoo`` SCRFD detector and ArcFace recognizer on ONNX Runtime.

The loop talks to a :class:`FaceModel` (a small protocol); :class:`InsightFaceModelPack` implements it
and loads nothing until :meth:`load` is called (sessions are heavy; settings errors come first).

* **Pack layout**: ``FACE_MODEL_DIR`` holds ``*.onnx`` files like an insightface pack (``buffalo_l``).
  Each file is classified from its ONNX inputs/outputs as insightface's router does: >= 5 outputs is a
  detector; one square input of 112+ (multiple of 16, not the 192/96 landmark/attribute sizes) with
  one output is a recognizer; anything else (landmarks, gender/age) is ignored. Exactly one of each.
* **Providers**: CUDA first when the device has a GPU (:func:`faceidx_worker.accel.gpu_device_count`)
  and ONNX Runtime offers it, then CPU; TensorRT (fp16) before CUDA when asked for. ``active_provider``
  is what the created sessions really use (ORT silently falls back to CPU when CUDA cannot start).
  Every session blocks between runs (no spinning threads); :mod:`faceidx_worker.accel` has the rest.
* **Detection**: like insightface 2.1's ``FaceAnalysis`` with its default (auto) det size, two passes
  merged by NMS: ``DET_SIZE`` (640) and ``DET_SMALL_SIZE`` (128, finds faces that fill a small image).
  A detector with a fixed input size (``scrfd_500m_bnkps_640.onnx``) always gets its own size; the
  small pass then shrinks the image into a corner of that fixed canvas. A detector whose export has
  a batch axis (``worker/image/export_batched_detector.py``, run at image build time) gets a whole
  batch per size in one call (:meth:`InsightFaceModelPack.detect_many`), the same boxes as one by one.
* **Recognition**: aligned crops of many images go through one batched call (chunks of
  ``EMBED_BATCH``). A recognizer whose batch axis is fixed to 1, or that fails on a batch, is fed one
  face at a time. Embeddings are L2-normalized float32; ``embed_with_norms`` also gives each raw
  feature's norm (a quality signal). Inputs go through an IO binding; on a GPU each
  chunk is padded to a warmed batch-size bucket (powers of two up to ``EMBED_BATCH``).
* **CPU sessions**: ONNX Runtime's CPU ``PRelu`` kernel is slow (half of MobileFaceNet's time), so on
  the CPU the recognizer's ``PRelu`` nodes are rewritten as ``Max(x, 0) + Min(x, 0) * slope``: the same
  floats, bit for bit, about 1.7x faster. ``CPU_GRAPH_REWRITE=0`` turns it off; GPU sessions always
  run the model file as it is.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from faceidx_worker.settings import WorkerSettings

from faceidx_worker.accel import (
    AccelOptions,
    batch_buckets,
    bucket_for,
    gpu_device_count,
    pad_batch,
    provider_name,
    run_bound,
    session_options,
)
from faceidx_worker.accel import choose_providers as choose_accel_providers

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class ModelPackError(ValueError):
    """FACE_MODEL_DIR does not hold a usable detector + recognizer pair."""


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


@dataclass(frozen=True)
class PackFiles:
    detector: Path
    recognizer: Path
    ignored: tuple[Path, ...]
    genderage: Path | None = None  # insightface's 96x96 age/gender model, when the pack has one


def _dims(value_info: Any) -> list[int | str]:
    dims: list[int | str] = []
    for dim in value_info.type.tensor_type.shape.dim:
        dims.append(int(dim.dim_value) if dim.dim_value > 0 else (dim.dim_param or "?"))
    return dims


def classify_onnx(path: Path) -> str:
    """``detection``, ``recognition`` or ``other``, from the graph's inputs and outputs only."""
    import onnx

    model = onnx.load_model(str(path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    outputs = list(model.graph.output)
    if len(outputs) >= 5:
        return "detection"
    if len(inputs) != 1 or len(outputs) != 1:
        return "other"
    shape = _dims(inputs[0])
    if len(shape) != 4:
        return "other"
    height, width = shape[2], shape[3]
    if isinstance(height, int) and height == width and height >= 112 and height % 16 == 0:
        if height in (192, 96):  # insightface's landmark and attribute models
            return "other"
        return "recognition"
    return "other"


def find_pack_files(model_dir: Path) -> PackFiles:
    """The detector and recognizer in ``model_dir``. Raises :class:`ModelPackError` naming what is wrong."""
    files = sorted(model_dir.glob("*.onnx"))
    if not files:
        raise ModelPackError(f"{model_dir} holds no .onnx file")
    found: dict[str, list[Path]] = {"detection": [], "recognition": [], "other": []}
    for path in files:
        try:
            found[classify_onnx(path)].append(path)
        except Exception as exc:  # onnx raises DecodeError and friends: name the file and stop
            raise ModelPackError(f"{path} is not a readable ONNX model: {exc}") from exc
    for task in ("detection", "recognition"):
        if len(found[task]) != 1:
            names = ", ".join(p.name for p in found[task]) or "none"
            raise ModelPackError(f"{model_dir} must hold exactly one {task} model, found {names}")
    from faceidx_worker.genderage import is_genderage

    genderage = [path for path in found["other"] if is_genderage(path)]
    return PackFiles(
        found["detection"][0],
        found["recognition"][0],
        tuple(found["other"]),
        genderage[0] if len(genderage) == 1 else None,
    )


def choose_providers(available: list[str] | None = None, *, gpu_present: bool | None = None) -> list[str]:
    """CUDA first when the device has a GPU and ONNX Runtime offers it, then CPU (names only)."""
    if available is None:
        import onnxruntime

        available = list(onnxruntime.get_available_providers())
    if gpu_present is None:
        gpu_present = gpu_device_count() > 0
    return [CUDA, CPU] if gpu_present and CUDA in available else [CPU]


def has_batch_axis(session: Any) -> bool:
    """An SCRFD session whose input batch is free and whose outputs are N x candidates x C."""
    batch = session.get_inputs()[0].shape[0]
    return not isinstance(batch, int) and all(len(o.shape) == 3 for o in session.get_outputs())


def rewrite_prelu(model_bytes: bytes) -> tuple[bytes, int]:
    """The model with every float ``PRelu`` as ``Max(x, 0) + Min(x, 0) * slope``; and how many changed.

    Bit-identical: for x > 0 the sum is x + (+-0), for x < 0 it is 0 + x * slope, which is what PRelu
    computes. Models with a non-float input or an opset below 8 (no broadcasting Max/Min) come back
    unchanged, with a count of 0.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load_model_from_string(model_bytes)
    graph = model.graph
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    float_input = all(value.type.tensor_type.elem_type == TensorProto.FLOAT for value in graph.input)
    if opset < 8 or not float_input or not any(node.op_type == "PRelu" for node in graph.node):
        return model_bytes, 0
    zero = "faceidx_prelu_zero"
    graph.initializer.append(numpy_helper.from_array(np.zeros((1,), dtype=np.float32), zero))
    nodes = []
    count = 0
    for index, node in enumerate(graph.node):
        if node.op_type != "PRelu":
            nodes.append(node)
            continue
        count += 1
        x, slope = node.input
        (y,) = node.output
        tag = f"faceidx_prelu_{index}"
        nodes += [
            helper.make_node("Max", [x, zero], [f"{tag}_pos"], name=f"{tag}_max"),
            helper.make_node("Min", [x, zero], [f"{tag}_neg"], name=f"{tag}_min"),
            helper.make_node("Mul", [f"{tag}_neg", slope], [f"{tag}_scaled"], name=f"{tag}_mul"),
            helper.make_node("Add", [f"{tag}_pos", f"{tag}_scaled"], [y], name=f"{tag}_add"),
        ]
    del graph.node[:]
    graph.node.extend(nodes)
    return model.SerializeToString(), count


def pack_version(pack: str, model_dir: Path) -> str:
    """``<pack>-<first 12 hex of the sha256 over the folder's .onnx files, in name order>``."""
    digest = hashlib.sha256()
    for path in sorted(Path(model_dir).glob("*.onnx")):
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return f"{pack}-{digest.hexdigest()[:12]}"


def l2_normalize(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


class InsightFaceModelPack:
    """SCRFD + ArcFace from one pack folder, loaded lazily. Thread use: one inference thread."""

    @classmethod
    def from_settings(
        cls,
        settings: WorkerSettings,
        folder: Path,
        *,
        name: str | None = None,
        version: str | None = None,
        genderage: bool | None = None,
    ) -> InsightFaceModelPack:
        """The pack in ``folder`` with the detector, batch and thread settings of ``settings``: the
        worker and search by photo build their models the same way."""
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
    ) -> None:
        self.model_dir = Path(model_dir)
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
        self._anchor_cache: dict[tuple[int, int, int], np.ndarray] = {}
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
        from insightface.model_zoo import model_zoo
        from insightface.model_zoo.arcface_onnx import ArcFaceONNX
        from insightface.model_zoo.scrfd import SCRFD

        onnxruntime.set_default_logger_severity(3)
        self.files = find_pack_files(self.model_dir)
        gpu = self.gpu_present if self.gpu_present is not None else gpu_device_count() > 0
        providers = self.requested_providers or choose_accel_providers(self.accel, gpu_present=gpu)
        names = [provider_name(p) for p in providers]
        # ONNX Runtime's threads spin-wait between runs by default: on the CPU they steal the cores
        # the download/decode threads need, on the GPU they burn a core each while the device works.
        options = session_options(threads=self.ort_threads)
        detector = model_zoo.get_model(str(self.files.detector), providers=providers, sess_options=options)
        recognizer = model_zoo.get_model(
            str(self.files.recognizer), providers=providers, sess_options=options
        )
        if not isinstance(detector, SCRFD):
            raise ModelPackError(f"{self.files.detector} did not load as an SCRFD detector")
        if not detector.use_kps:
            raise ModelPackError(f"{self.files.detector} gives no landmarks; the recognizer needs them")
        if not isinstance(recognizer, ArcFaceONNX):
            raise ModelPackError(f"{self.files.recognizer} did not load as an ArcFace recognizer")
        if CUDA not in names and self.cpu_graph_rewrite:
            rewritten, self.rewritten_prelu = rewrite_prelu(self.files.recognizer.read_bytes())
            if self.rewritten_prelu:
                # ArcFaceONNX keeps reading its settings from the original file; only the session changes.
                recognizer.session = onnxruntime.InferenceSession(
                    rewritten, sess_options=options, providers=providers
                )
        self.static_size = detector.static_input_size
        if self.static_size is not None:
            self.det_sizes = [tuple(self.static_size)]
            if (self.det_size, self.det_size) != tuple(self.static_size):
                log.info(
                    "detector %s has a fixed %sx%s input: DET_SIZE=%s does not apply",
                    self.files.detector.name,
                    *self.static_size,
                    self.det_size,
                )
        else:
            self.det_sizes = [(self.det_size, self.det_size)]
            if self.det_small_size:
                self.det_sizes.insert(0, (self.det_small_size, self.det_small_size))
        detector.prepare(0, input_size=self.det_sizes, det_thresh=self.det_thresh)
        batch_axis = recognizer.input_shape[0]
        self.batch_one = isinstance(batch_axis, int) and batch_axis == 1
        self.detector = detector
        self.recognizer = recognizer
        self.batch_detector = (
            self.accel.batch_detect and self.static_size is None and has_batch_axis(detector.session)
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
            dets, kpss = self._detect_fixed_input(pixels)
        if kpss is None:
            kpss = np.empty((0, 5, 2), dtype=np.float32)
        return dets.astype(np.float32, copy=False), kpss.astype(np.float32, copy=False)

    def _detect_fixed_input(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """A fixed-input detector: its own size, plus the small pass drawn into a corner of its canvas."""
        import cv2

        assert self.static_size is not None
        width, height = self.static_size
        candidates = [self.detector._detect_candidates(pixels, (width, height), self.det_thresh)]
        small = self.det_small_size
        if small and small < min(width, height):
            scale = small / max(pixels.shape[0], pixels.shape[1])
            new_w = max(1, int(pixels.shape[1] * scale))
            new_h = max(1, int(pixels.shape[0] * scale))
            canvas = np.zeros((height, width, 3), dtype=np.uint8)
            canvas[:new_h, :new_w] = cv2.resize(pixels, (new_w, new_h))
            pre, kps = self.detector._detect_candidates(canvas, (width, height), self.det_thresh)
            if pre.shape[0]:
                pre = pre.copy()
                pre[:, :4] /= scale
                kps = kps / scale if kps is not None else None
            candidates.append((pre, kps))
        kept = [(pre, kps) for pre, kps in candidates if pre.shape[0]]
        if not kept:
            return np.empty((0, 5), dtype=np.float32), np.empty((0, 5, 2), dtype=np.float32)
        pre_det = np.vstack([pre for pre, _ in kept]).astype(np.float32)
        kpss = np.vstack([kps for _, kps in kept])
        order = np.argsort(-pre_det[:, 4], kind="stable")
        pre_det, kpss = pre_det[order], kpss[order]
        keep = self.detector.nms(pre_det)
        return pre_det[keep], kpss[keep]

    def detect_many(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`detect` for each image; with a batch-axis detector, one call per chunk and size."""
        self._require_loaded()
        if not self.batch_detector:
            return [self.detect(pixels) for pixels in images]
        found: list[tuple[np.ndarray, np.ndarray]] = []
        for start in range(0, len(images), self.det_batch):
            found.extend(self._detect_chunk(images[start : start + self.det_batch]))
        return found

    def _detect_chunk(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        import cv2

        det = self.detector
        per_image: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in images]
        for width, height in self.det_sizes:
            canvases, scales = [], []
            for pixels in images:
                canvas, scale = _letterbox(pixels, width, height)
                canvases.append(canvas)
                scales.append(scale)
            blob = cv2.dnn.blobFromImages(
                canvases, 1.0 / det.input_std, (width, height), (det.input_mean,) * 3, swapRB=True
            )
            count = blob.shape[0]
            if self.pad_to_buckets:
                blob = pad_batch(blob, bucket_for(count, self.det_buckets))
            feeds = {det.input_name: np.ascontiguousarray(blob, dtype=np.float32)}
            if self.accel.io_binding:
                outs = run_bound(det.session, feeds, list(det.output_names))
            else:
                outs = det.session.run(det.output_names, feeds)
            for index in range(count):
                pre, kps = self._candidates(outs, index, width, height, scales[index])
                if pre.shape[0]:
                    per_image[index].append((pre, kps))
        return [self._merge(kept) for kept in per_image]

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
    ) -> tuple[np.ndarray, np.ndarray]:
        """Image ``index`` of a batched run, decoded as ``SCRFD.forward`` + ``_detect_candidates`` do."""
        from insightface.model_zoo.scrfd import distance2bbox, distance2kps

        det = self.detector
        fmc = det.fmc
        scores_list, boxes_list, kps_list = [], [], []
        for level, stride in enumerate(det._feat_stride_fpn):
            scores = outs[level][index]
            keep = np.where(scores >= self.det_thresh)[0]
            if not keep.size:
                continue
            centers = self._anchors(height // stride, width // stride, stride)[keep]
            boxes = distance2bbox(centers, outs[level + fmc][index][keep] * stride)
            kpss = distance2kps(centers, outs[level + fmc * 2][index][keep] * stride)
            scores_list.append(scores[keep])
            boxes_list.append(boxes)
            kps_list.append(kpss.reshape((kpss.shape[0], -1, 2)))
        if not scores_list:
            return np.empty((0, 5), dtype=np.float32), np.empty((0, 5, 2), dtype=np.float32)
        scores = np.vstack(scores_list)
        order = np.argsort(-scores.ravel(), kind="stable")
        pre = np.hstack((np.vstack(boxes_list) / det_scale, scores)).astype(np.float32, copy=False)
        return pre[order], (np.vstack(kps_list) / det_scale)[order]

    def _merge(self, kept: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """One image's candidates of every size, best first, through the detector's NMS (``SCRFD.detect``)."""
        if not kept:
            return np.empty((0, 5), dtype=np.float32), np.empty((0, 5, 2), dtype=np.float32)
        pre = np.vstack([p for p, _ in kept]).astype(np.float32, copy=False)
        kpss = np.vstack([k for _, k in kept])
        order = np.argsort(-pre[:, 4], kind="stable")
        pre, kpss = pre[order], kpss[order]
        keep = self.detector.nms(pre)
        return pre[keep].astype(np.float32, copy=False), kpss[keep].astype(np.float32, copy=False)

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


def _letterbox(pixels: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float]:
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
