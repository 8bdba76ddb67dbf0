"""GPU JPEG decoding falls back to the CPU decoder: without nvImageCodec, and for what nvJPEG refuses."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from faceidx_worker.gpu_decode import GpuJpegDecoder
from faceidx_worker.images import decode_image


def _jpeg(width: int = 64, height: int = 48) -> bytes:
    pixels = np.random.default_rng(3).integers(0, 255, (height, width, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", pixels)
    assert ok
    return data.tobytes()


class _FakeNvDecoder:
    """Stands in for nvimgcodec.Decoder: decodes with OpenCV, returns RGB like nvImageCodec."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def decode(self, data: bytes) -> np.ndarray:
        if self.fail:
            raise RuntimeError("nvjpeg: unsupported")
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert bgr is not None
        return bgr[:, :, ::-1]


def test_without_nvimgcodec_it_says_so_and_decodes_on_the_cpu(caplog):
    caplog.set_level(logging.WARNING)
    decoder = GpuJpegDecoder()  # nvImageCodec is not installed on the CPU image
    assert not decoder.on_gpu
    assert "decoding on the CPU" in caplog.text
    data = _jpeg()
    np.testing.assert_array_equal(
        decoder(data, max_pixels=10**8).pixels, decode_image(data, max_pixels=10**8).pixels
    )
    assert decoder.cpu_decodes == 1


def test_the_gpu_path_gives_bgr_pixels_and_the_original_size():
    decoder = GpuJpegDecoder(_FakeNvDecoder())
    data = _jpeg()
    decoded = decoder(data, max_pixels=10**8)
    np.testing.assert_array_equal(decoded.pixels, decode_image(data, max_pixels=10**8).pixels)
    assert (decoded.width, decoded.height, decoded.factor) == (64, 48, 1)
    assert decoder.gpu_decodes == 1


def test_a_refused_image_and_a_reduced_decode_go_to_the_cpu():
    data = _jpeg(3000, 2000)
    refused = GpuJpegDecoder(_FakeNvDecoder(fail=True))
    assert refused(data, max_pixels=10**8).factor == 1
    assert refused.cpu_decodes == 1
    reduced = GpuJpegDecoder(_FakeNvDecoder())
    assert reduced(data, max_pixels=10**8, min_side=1280).factor == 2  # DCT scaling is a CPU feature
    assert reduced.gpu_decodes == 0
