"""The device pixel path on a machine without a GPU: it says why it is not taken, and its steps, run
through a stand-in for CV-CUDA made of the same OpenCV calls, give the CPU path's faces."""

from __future__ import annotations

import logging
import sys
import types
from collections import namedtuple

import cv2
import numpy as np
import pytest

from faceidx_worker.accel import CPU, CUDA
from faceidx_worker.face_decode import FULL, decode_for_faces, detect_and_crop
from faceidx_worker.gpu_pixels import DevicePixels, choose_pixel_path, index_on_device, load_device_pixels
from faceidx_worker.model import InsightFaceModelPack
from tests.support.benchmarks import load_benchmark


def test_without_a_gpu_the_cpu_path_is_taken_and_the_log_says_why(caplog):
    caplog.set_level(logging.INFO, logger="faceidx_worker.gpu_pixels")
    assert load_device_pixels(gpu_present=False) == (None, "no GPU on this machine")
    assert choose_pixel_path(gpu_present=False) is None
    assert "pixels on the CPU (adaptive decode): no GPU on this machine" in caplog.text


def test_without_the_cuda_provider_the_cpu_path_is_taken():
    device, why = load_device_pixels(gpu_present=True, providers=[CPU])
    assert device is None
    assert "onnxruntime-gpu" in why


def test_without_nvimagecodec_or_cvcuda_the_cpu_path_is_taken(monkeypatch):
    monkeypatch.setitem(sys.modules, "nvidia", types.ModuleType("nvidia"))  # no nvimgcodec in it
    device, why = load_device_pixels(gpu_present=True, providers=[CUDA, CPU])
    assert device is None
    assert "nvidia-nvimgcodec-cu12" in why
    nvidia = types.ModuleType("nvidia")
    nvidia.nvimgcodec = types.SimpleNamespace(Decoder=lambda: "decoder")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nvidia", nvidia)
    monkeypatch.setitem(sys.modules, "cvcuda", None)  # import fails
    device, why = load_device_pixels(gpu_present=True, providers=[CUDA, CPU])
    assert device is None
    assert "cvcuda-cu12" in why


class HostCvcuda:
    """CV-CUDA's calls as the device path makes them, done by OpenCV on host arrays."""

    Interp = types.SimpleNamespace(AREA=cv2.INTER_AREA, LINEAR=cv2.INTER_LINEAR)
    Border = types.SimpleNamespace(CONSTANT=cv2.BORDER_CONSTANT)
    RectI = namedtuple("RectI", "x y width height")
    Stream = types.SimpleNamespace(current=types.SimpleNamespace(sync=lambda: None))

    @staticmethod
    def as_tensor(image, layout):
        assert layout == "HWC"
        return np.asarray(image)

    @staticmethod
    def resize(src, shape, interp):
        return cv2.resize(src, (shape[1], shape[0]), interpolation=interp)

    @staticmethod
    def copymakeborder(src, *, border_mode, border_value, top, left, bottom, right):
        return cv2.copyMakeBorder(src, top, bottom, left, right, border_mode, value=border_value)

    @staticmethod
    def convertto(src, dtype, *, scale, offset):
        return src.astype(dtype) * scale + offset

    @staticmethod
    def stack(tensors):
        return np.stack(tensors)

    @staticmethod
    def reformat(batch, layout):
        assert layout == "NCHW"
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))

    @staticmethod
    def Tensor(shape, dtype, layout):  # CV-CUDA names it so
        return np.zeros(shape, dtype)

    @staticmethod
    def warp_affine_into(out, src, xform, flags, *, border_mode, border_value):
        size = (out.shape[1], out.shape[0])
        out[...] = cv2.warpAffine(src, np.asarray(xform, np.float64), size, flags=flags, borderValue=0.0)

    @classmethod
    def customcrop(cls, image, rect):
        return image[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]


class HostDecoder:
    """nvImageCodec's ``decode``: RGB pixels."""

    def decode(self, data):
        return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


class HostDevicePixels(DevicePixels):
    def run(self, session, input_name, tensor, output_names):
        return session.run(output_names, {input_name: np.asarray(tensor, np.float32)})


@pytest.mark.assets
def test_the_device_steps_give_the_cpu_full_decodes_faces(small_pack, assets_dir):
    model = InsightFaceModelPack(small_pack, ort_threads=1)
    model.load()
    corpus = load_benchmark("camera_corpus")
    rng = np.random.default_rng(3)
    photo = corpus.upscale(cv2.imread(str(assets_dir / "images" / "t1.jpg")), 4e6)
    data = corpus.encode(corpus.add_noise(photo, rng))
    device = HostDevicePixels(decoder=HostDecoder(), cvcuda=HostCvcuda())
    boxes, landmarks, embeddings = index_on_device(device, model, data)
    decoded = decode_for_faces(data, max_pixels=10**9, mode=FULL, det_size=640)
    assert decoded.faces is not None
    cpu_boxes, cpu_landmarks, crops = detect_and_crop(model, decoded.faces)
    assert len(boxes) == len(cpu_boxes) == 6
    assert np.allclose(boxes, cpu_boxes, atol=0.5)
    assert np.allclose(landmarks, cpu_landmarks, atol=0.5)
    # x * (1/std) - mean/std on the device, (x - mean) / std in blobFromImage: the last float bits differ,
    # a candidate at the threshold may join the landmark vote, the landmarks move a fraction of a pixel
    cosines = np.sum(embeddings * model.embed(crops), axis=1)
    assert cosines.min() > 0.995
