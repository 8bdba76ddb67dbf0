"""Session options for throughput: device detection, providers, buckets, IO binding, batched detection."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest

from faceidx_worker import accel
from faceidx_worker.accel import (
    CPU,
    CUDA,
    TENSORRT,
    AccelOptions,
    batch_buckets,
    bucket_for,
    choose_providers,
    pad_batch,
    run_bound,
    session_options,
)
from faceidx_worker.images import decode_image
from faceidx_worker.model import InsightFaceModelPack

EXPORT = Path(__file__).resolve().parents[3] / "worker" / "image" / "export_batched_detector.py"


@pytest.mark.parametrize(
    ("runtime", "nodes", "smi", "expected"),
    [
        (1, 0, None, 1),  # the CUDA runtime answers: it decides
        (0, 2, 2, 0),  # a runtime saying "no device" wins over stale device nodes
        (None, 2, None, 2),  # no runtime library: count /dev/nvidia<N>
        (None, 0, 1, 1),  # no nodes (some containers): nvidia-smi -L
        (None, 0, None, 0),  # nothing at all: no GPU, whatever ONNX Runtime lists
    ],
)
def test_gpu_presence_comes_from_the_device(monkeypatch, runtime, nodes, smi, expected):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(accel, "_cuda_runtime_count", lambda: runtime)
    monkeypatch.setattr(accel, "_device_nodes", lambda: nodes)
    monkeypatch.setattr(accel, "_nvidia_smi_count", lambda: smi)
    assert accel.gpu_device_count() == expected


def test_hidden_devices_count_as_none(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(accel, "_cuda_runtime_count", lambda: 1)
    assert accel.gpu_device_count() == 0


def test_this_machine_reports_a_count():
    assert accel.gpu_device_count() >= 0  # ctypes and /dev probing never raise


def test_an_onnxruntime_gpu_build_without_a_gpu_gets_the_cpu():
    assert choose_providers(AccelOptions(), gpu_present=False, available=[CUDA, CPU]) == [CPU]
    assert choose_providers(AccelOptions(), gpu_present=True, available=[CPU]) == [CPU]


def test_cuda_uses_heuristic_algorithm_search():
    providers = choose_providers(AccelOptions(), gpu_present=True, available=[TENSORRT, CUDA, CPU])
    assert [accel.provider_name(p) for p in providers] == [CUDA, CPU]  # TensorRT only when asked for
    first = providers[0]
    assert isinstance(first, tuple)
    assert first[1]["cudnn_conv_algo_search"] == "HEURISTIC"


def test_fp16_puts_tensorrt_with_its_engine_cache_first(tmp_path):
    options = AccelOptions(fp16=True, trt_cache_dir=tmp_path)
    providers = choose_providers(options, gpu_present=True, available=[TENSORRT, CUDA, CPU])
    assert [accel.provider_name(p) for p in providers] == [TENSORRT, CUDA, CPU]
    first = providers[0]
    assert isinstance(first, tuple)
    trt = first[1]
    assert trt["trt_fp16_enable"] == "True"
    assert trt["trt_engine_cache_path"] == str(tmp_path)


def test_fp16_without_tensorrt_says_so_and_runs_fp32(caplog):
    providers = choose_providers(AccelOptions(fp16=True), gpu_present=True, available=[CUDA, CPU])
    assert [accel.provider_name(p) for p in providers] == [CUDA, CPU]
    assert "TensorrtExecutionProvider" in caplog.text


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="HEURISTIC"):
        AccelOptions(cudnn_conv_algo_search="FAST")
    with pytest.raises(ValueError, match="gpu_lanes"):
        AccelOptions(gpu_lanes=0)


def test_sessions_never_spin():
    entries = session_options(threads=1).get_session_config_entry
    assert entries("session.intra_op.allow_spinning") == "0"
    assert entries("session.inter_op.allow_spinning") == "0"


@pytest.mark.parametrize(
    ("largest", "buckets"),
    [(1, [1]), (16, [1, 2, 4, 8, 16]), (64, [1, 2, 4, 8, 16, 32, 64]), (48, [1, 2, 4, 8, 16, 32, 48])],
)
def test_batch_buckets(largest, buckets):
    assert batch_buckets(largest) == buckets


@pytest.mark.parametrize(("count", "bucket"), [(1, 1), (3, 4), (17, 32), (64, 64), (65, 65)])
def test_a_chunk_runs_at_the_smallest_bucket_holding_it(count, bucket):
    assert bucket_for(count, batch_buckets(64)) == bucket


def test_padding_adds_zero_rows_only():
    blob = np.ones((3, 2), np.float32)
    padded = pad_batch(blob, 4)
    assert padded.shape == (4, 2)
    assert padded[:3].all()
    assert not padded[3].any()
    assert pad_batch(blob, 3) is blob


# -- with the real models -----------------------------------------------------------------------
@pytest.mark.assets
def test_io_binding_gives_the_floats_of_session_run(assets_dir):
    import onnxruntime

    session = onnxruntime.InferenceSession(
        str(assets_dir / "models" / "mobilefacenet_128d_dynbatch.onnx"), providers=[CPU]
    )
    blob = np.random.default_rng(7).normal(size=(5, 3, 112, 112)).astype(np.float32)
    name = session.get_inputs()[0].name
    (expected,) = session.run(None, {name: blob})
    (bound,) = run_bound(session, {name: blob})
    np.testing.assert_array_equal(bound, expected)


def _batched_pack(assets_dir: Path, folder: Path) -> Path:
    spec = importlib.util.spec_from_file_location("export_batched_detector", EXPORT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder.mkdir()
    original = onnx.load_model(str(assets_dir / "models" / "det_500m.onnx"))
    onnx.save_model(module.unfold_batch_axis(original), str(folder / "det_500m.onnx"))
    (folder / "rec.onnx").symlink_to(assets_dir / "models" / "mobilefacenet_128d_dynbatch.onnx")
    return folder


@pytest.mark.assets
def test_batched_detection_finds_what_one_by_one_finds(assets_dir, small_pack, tmp_path):
    names = [
        "t1.jpg",
        "obama_and_biden.jpg",
        "many_face.png",
        "Tom_Hanks_54745.png",
        "no_face.png",
        "biden.jpg",
    ]
    images = [decode_image((assets_dir / "images" / n).read_bytes(), max_pixels=10**9).pixels for n in names]
    reference = InsightFaceModelPack(small_pack, det_thresh=0.5, ort_threads=1)
    reference.load()
    assert not reference.batch_detector  # insightface's export folds the batch axis
    batched = InsightFaceModelPack(_batched_pack(assets_dir, tmp_path / "pack"), det_thresh=0.5, det_batch=4)
    batched.load()
    assert batched.batch_detector
    together = batched.detect_many(images)  # 6 images: chunks of 4 and 2
    for name, pixels, (boxes, landmarks) in zip(names, images, together, strict=True):
        expected_boxes, expected_landmarks = reference.detect(pixels)
        assert boxes.shape == expected_boxes.shape, name
        np.testing.assert_allclose(boxes, expected_boxes, rtol=1e-4, atol=1e-2)
        np.testing.assert_allclose(landmarks, expected_landmarks, rtol=1e-4, atol=1e-2)
    # One at a time through insightface's own (batched=True) reading of the export: the same boxes.
    alone, _ = batched.detect(images[0])
    np.testing.assert_allclose(alone, together[0][0], rtol=1e-4, atol=1e-2)


@pytest.mark.assets
def test_padded_buckets_change_no_embedding(small_pack, assets_dir):
    pack = InsightFaceModelPack(small_pack, det_thresh=0.5, ort_threads=1, embed_batch=8)
    pack.load()
    pixels = decode_image((assets_dir / "images" / "t1.jpg").read_bytes(), max_pixels=10**9).pixels
    _, landmarks = pack.detect(pixels)
    crops = [pack.align(pixels, points) for points in landmarks]
    plain = pack.embed(crops)
    pack.pad_to_buckets = True  # what a GPU session does: 6 crops run as a batch of 8
    np.testing.assert_allclose(pack.embed(crops), plain, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        pack.embed(crops),
        np.vstack([pack.recognizer.get_feat([c]) for c in crops])
        / np.linalg.norm(np.vstack([pack.recognizer.get_feat([c]) for c in crops]), axis=1, keepdims=True),
        rtol=1e-4,
        atol=1e-5,
    )
