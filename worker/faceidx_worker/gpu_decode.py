"""JPEG decoding on the GPU (nvJPEG through nvImageCodec), with the CPU decoder behind it.

:class:`GpuJpegDecoder` has :func:`faceidx_worker.images.decode_image`'s signature. Baseline JPEGs
in RGB/L, with no EXIF rotation and no DCT reduction asked for, go to nvImageCodec
(``nvidia.nvimgcodec``, not in the CPU lock: install ``nvidia-nvimgcodec-cu12`` or ``-cu13`` on a GPU
image); everything else, and everything when the library or the device is missing, takes the CPU
path. The header (pixel-bomb check, orientation) is always read on the CPU first. When the GPU
decoder cannot start, one log line says why and the worker carries on with the CPU.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from faceidx_worker.images import DecodedImage, choose_dct_factor, decode_image, read_header

log = logging.getLogger(__name__)


def load_nvimgcodec() -> Any:
    """The nvImageCodec decoder, or None (with the reason logged once) when it cannot run here."""
    try:
        from nvidia import nvimgcodec  # type: ignore[import-not-found,attr-defined,unused-ignore]

        return nvimgcodec.Decoder()
    except Exception as exc:  # ImportError, or the library's own error when no GPU/driver is visible
        log.warning("GPU JPEG decoding is not available (%s): decoding on the CPU", exc, exc_info=True)
        return None


class GpuJpegDecoder:
    """``decode_image`` on the GPU where it can be, on the CPU otherwise. Thread-safe."""

    def __init__(self, decoder: Any = None, *, load: bool = True) -> None:
        self._decoder = decoder if decoder is not None or not load else load_nvimgcodec()
        self.gpu_decodes = 0
        self.cpu_decodes = 0

    @property
    def on_gpu(self) -> bool:
        return self._decoder is not None

    def __call__(self, data: bytes, *, max_pixels: int, min_side: int = 0) -> DecodedImage:
        if self._decoder is not None:
            header = read_header(data)
            plain = header.format == "JPEG" and header.mode in ("RGB", "L") and header.orientation == 1
            if (
                plain
                and header.width * header.height <= max_pixels
                and choose_dct_factor(header, min_side) == 1
            ):
                pixels = self._decode_gpu(data)
                if pixels is not None:
                    self.gpu_decodes += 1
                    return DecodedImage(pixels=pixels, width=header.width, height=header.height, factor=1)
        self.cpu_decodes += 1
        return decode_image(data, max_pixels=max_pixels, min_side=min_side)

    def _decode_gpu(self, data: bytes) -> np.ndarray | None:
        try:
            image = self._decoder.decode(data)
            rgb = np.asarray(image.cpu()) if hasattr(image, "cpu") else np.asarray(image)
        except Exception as exc:  # a JPEG nvJPEG refuses (progressive, odd sampling): the CPU decodes it
            log.info("GPU decode refused an image (%s): decoding it on the CPU", exc, exc_info=True)
            return None
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            return None
        return np.ascontiguousarray(rgb[:, :, ::-1])  # RGB -> BGR, as cv2 gives
