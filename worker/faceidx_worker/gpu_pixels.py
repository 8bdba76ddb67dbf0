"""Pixels that stay on the GPU: decode, resize, normalisation and face crops on the device, the batch
handed to ONNX Runtime through IO binding from device memory.

The CPU path (:mod:`faceidx_worker.face_decode`) saves work by decoding less. On a GPU the decode is
nvJPEG's (through nvImageCodec, ``nvidia-nvimgcodec-cu12``) and costs the CPU nothing, so the image is
decoded whole, once, and never copied back to host memory: CV-CUDA (``cvcuda-cu12``) shrinks it by
area for each detector pass, pads and normalises the blob, cuts each face's region, shrinks it by area
and warps it onto the recognizer's template, exactly the steps of the CPU path. The detector's and the
recognizer's inputs are bound to ONNX Runtime as device pointers (``IOBinding.bind_input`` with
``buffer_ptr``); only their small outputs come back to the host (anchor decoding and NMS stay there).

Why CV-CUDA: it installs beside ``onnxruntime-gpu==1.26.0`` as one wheel with no dependency
(``uv pip compile`` of ``worker/requirements.txt`` with ``cvcuda-cu12==0.19.0``: one package added;
``nvidia-dali-cuda120`` adds 13, CuPy 2), it has the area resize and the affine warp the CPU path uses,
and it reads nvImageCodec's images through ``__cuda_array_interface__`` without a copy. Neither
package is in the locks yet: they go into ``worker/requirements.txt`` once ``benchmarks/gpu_check.py``
has measured this path on a GPU.

:func:`load_device_pixels` returns None, with the reason, when there is no GPU, when ONNX Runtime
offers no CUDA provider, or when nvImageCodec or CV-CUDA cannot be imported or started: the caller
then takes the CPU path. Nothing here runs on a machine without a GPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceidx_worker.accel import CUDA, gpu_device_count
from faceidx_worker.face_decode import (
    crop_region,
    fit_size,
    merge_with_votes,
    region_map,
    similarity_to_template,
)
from faceidx_worker.scrfd import ScrfdBatchDetector

log = logging.getLogger(__name__)


@dataclass
class DevicePixels:
    """The device-side libraries: an nvImageCodec decoder and the ``cvcuda`` module, on ``device_id``."""

    decoder: Any
    cvcuda: Any
    device_id: int = 0

    def decode(self, data: bytes) -> Any:
        """The image decoded on the GPU, RGB, as a CV-CUDA ``HWC`` tensor (no host copy)."""
        image = self.decoder.decode(data)
        return self.cvcuda.as_tensor(image, "HWC")

    def detection_blob(
        self, image: Any, size: tuple[int, int], mean: float, std: float
    ) -> tuple[Any, tuple[float, float]]:
        """The detector's NCHW float32 input for one pass, and the original pixels per input pixel:
        shrunk by area to fit ``size`` as the letterbox would, padded at the bottom and right, normalised."""
        cv = self.cvcuda
        height, width = int(image.shape[0]), int(image.shape[1])
        new_w, new_h = fit_size(width, height, *size)
        shrunk = cv.resize(image, (new_h, new_w, 3), cv.Interp.AREA) if new_w < width else image
        padded = cv.copymakeborder(
            shrunk,
            border_mode=cv.Border.CONSTANT,
            border_value=[0, 0, 0],
            top=0,
            left=0,
            bottom=size[1] - new_h,
            right=size[0] - new_w,
        )
        blob = cv.convertto(padded, np.float32, scale=1.0 / std, offset=-mean / std)
        return cv.reformat(cv.stack([blob]), "NCHW"), (width / new_w, height / new_h)

    def face_crops(self, image: Any, landmarks: np.ndarray, crop_size: int, mean: float, std: float) -> Any:
        """Every face's aligned crop as one NCHW float32 batch: each face's region shrunk by area to the
        crop's scale, then warped onto the template (the CPU path's ``area_warp``)."""
        cv = self.cvcuda
        crops = []
        for points in landmarks:
            matrix = similarity_to_template(points, crop_size)
            region, local = self._area_region(image, matrix, crop_size)
            out = cv.Tensor((crop_size, crop_size, 3), np.uint8, "HWC")
            cv.warp_affine_into(
                out,
                region,
                local.astype(np.float32),
                cv.Interp.LINEAR,
                border_mode=cv.Border.CONSTANT,
                border_value=[0, 0, 0],
            )
            crops.append(out)
        batch = cv.convertto(cv.stack(crops), np.float32, scale=1.0 / std, offset=-mean / std)
        return cv.reformat(batch, "NCHW")

    def _area_region(self, image: Any, matrix: np.ndarray, size: int) -> tuple[Any, np.ndarray]:
        cv = self.cvcuda
        scale = float(np.hypot(matrix[0, 0], matrix[0, 1]))
        if scale >= 1.0:
            return image, matrix
        x0, y0, x1, y1 = crop_region(matrix, size, int(image.shape[1]), int(image.shape[0]))
        new_w, new_h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
        region = cv.customcrop(image, cv.RectI(x0, y0, x1 - x0, y1 - y0))
        region = cv.resize(region, (new_h, new_w, 3), cv.Interp.AREA)
        return region, region_map(matrix, (x0, y0, x1, y1), (new_w, new_h))

    def run(self, session: Any, input_name: str, tensor: Any, output_names: list[str]) -> list[np.ndarray]:
        """``session`` on a device tensor through an IO binding; the outputs copied to the host."""
        self.cvcuda.Stream.current.sync()  # CV-CUDA's kernels are done before ONNX Runtime reads
        cuda = tensor.cuda()
        interface = cuda.__cuda_array_interface__
        binding = session.io_binding()
        binding.bind_input(
            name=input_name,
            device_type="cuda",
            device_id=self.device_id,
            element_type=np.float32,
            shape=tuple(interface["shape"]),
            buffer_ptr=interface["data"][0],
        )
        for name in output_names:
            binding.bind_output(name, "cpu")
        session.run_with_iobinding(binding)
        return list(binding.copy_outputs_to_cpu())


def load_device_pixels(
    *, gpu_present: bool | None = None, providers: list[str] | None = None
) -> tuple[DevicePixels | None, str]:
    """The device path, or None and why not (the CPU path is taken then)."""
    if not (gpu_present if gpu_present is not None else gpu_device_count() > 0):
        return None, "no GPU on this machine"
    if providers is None:
        import onnxruntime

        providers = list(onnxruntime.get_available_providers())
    if CUDA not in providers:
        return None, f"ONNX Runtime offers no {CUDA} (install onnxruntime-gpu)"
    try:
        from nvidia import nvimgcodec  # type: ignore[import-not-found,attr-defined,unused-ignore]

        decoder = nvimgcodec.Decoder()
    except Exception as exc:  # ImportError, or the library's own error when it cannot start
        log.info("nvImageCodec cannot start", exc_info=True)
        return None, f"nvImageCodec is not available ({exc}); install nvidia-nvimgcodec-cu12"
    try:
        import cvcuda  # type: ignore[import-not-found,unused-ignore]
    except Exception as exc:  # ImportError, or a CUDA library it cannot load
        log.info("CV-CUDA cannot start", exc_info=True)
        return None, f"CV-CUDA is not available ({exc}); install cvcuda-cu12"
    return DevicePixels(decoder=decoder, cvcuda=cvcuda), "nvImageCodec decode, CV-CUDA resize and crops"


def choose_pixel_path(**kwargs: Any) -> DevicePixels | None:
    """:func:`load_device_pixels`, with one log line saying which path the pixels take and why."""
    device, why = load_device_pixels(**kwargs)
    if device is None:
        log.info("pixels on the CPU (adaptive decode): %s", why)
    else:
        log.info("pixels on the GPU: %s", why)
    return device


def index_on_device(
    device: DevicePixels, model: Any, data: bytes
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes+scores, landmarks (original pixels) and L2-normalised embeddings of one JPEG, its pixels on
    the GPU from the decode to the recognizer (``model``: a loaded CUDA ``InsightFaceModelPack``)."""
    from faceidx_worker.model import l2_normalize

    image = device.decode(data)
    det, rec = model.detector, model.recognizer
    decoder = ScrfdBatchDetector(
        det, model.detection_sizes, model.det_thresh, batch=1, buckets=[1], io_binding=False
    )
    kept = []
    for size in model.detection_sizes:
        blob, scale = device.detection_blob(image, size, det.input_mean, det.input_std)
        outs = device.run(det.session, det.input_name, blob, list(det.output_names))
        outs = [out[None] if out.ndim == 2 else out for out in outs]  # one image: a batch of one
        boxes, points = decoder._candidates(outs, 0, size[0], size[1], 1.0)
        if boxes.shape[0]:
            boxes = boxes.copy()
            boxes[:, [0, 2]] *= scale[0]
            boxes[:, [1, 3]] *= scale[1]
            kept.append((boxes, points * np.array(scale, np.float32)))
    boxes, landmarks = merge_with_votes(det, kept)
    if not len(landmarks):
        return boxes, landmarks, np.empty((0, model.embedding_size), np.float32)
    crops = device.face_crops(image, landmarks, model.crop_size, rec.input_mean, rec.input_std)
    features = device.run(rec.session, rec.input_name, crops, list(rec.output_names))[0]
    return boxes, landmarks, l2_normalize(features)
