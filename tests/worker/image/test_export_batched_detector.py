"""The image build's detector export: a real batch axis, the same outputs as the original, per image."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest

pytestmark = pytest.mark.assets

SCRIPT = Path(__file__).resolve().parents[3] / "worker" / "image" / "export_batched_detector.py"
PHOTOS = ("t1.jpg", "obama_and_biden.jpg", "many_face.png", "lfw_Rob_Lowe_0001.jpg")


def _export_module():
    spec = importlib.util.spec_from_file_location("export_batched_detector", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _session(model: onnx.ModelProto) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _blob(assets_dir: Path, size: int) -> np.ndarray:
    pixels = []
    for name in PHOTOS:
        image = cv2.imread(str(assets_dir / "images" / name))
        assert image is not None, name
        pixels.append(cv2.resize(image, (size, size)))
    return cv2.dnn.blobFromImages(pixels, 1 / 128, (size, size), (127.5,) * 3, swapRB=True)


@pytest.mark.parametrize("name", ["det_500m.onnx", "det_2.5g.onnx"])
@pytest.mark.parametrize("size", [128, 640])
def test_a_batch_of_photos_gives_each_photo_the_original_outputs(assets_dir, name, size):
    module = _export_module()
    original = onnx.load_model(str(assets_dir / "models" / name))
    batched = module.unfold_batch_axis(original)
    assert module.has_batch_axis(batched)
    assert not module.has_batch_axis(original)
    blob = _blob(assets_dir, size)
    together = _session(batched).run(None, {batched.graph.input[0].name: blob})
    assert [out.shape[0] for out in together] == [len(PHOTOS)] * len(together)
    one_by_one = _session(original)
    for index in range(len(PHOTOS)):
        alone = one_by_one.run(None, {original.graph.input[0].name: blob[index : index + 1]})
        for expected, got in zip(alone, together, strict=True):
            np.testing.assert_allclose(got[index], expected, rtol=1e-5, atol=1e-5)


def test_the_script_rewrites_in_place_and_leaves_a_done_or_other_model_alone(assets_dir, tmp_path, capsys):
    module = _export_module()
    target = tmp_path / "det_500m.onnx"
    target.write_bytes((assets_dir / "models" / "det_500m.onnx").read_bytes())
    assert module.main([str(target)]) == 0
    assert module.has_batch_axis(onnx.load_model(str(target)))
    assert module.main([str(target)]) == 0  # a second build step run: nothing to do
    assert "already has a batch axis" in capsys.readouterr().out
    recognizer = tmp_path / "rec.onnx"
    recognizer.write_bytes((assets_dir / "models" / "mobilefacenet_128d_dynbatch.onnx").read_bytes())
    before = recognizer.read_bytes()
    assert module.main([str(recognizer)]) == 0
    assert recognizer.read_bytes() == before
    assert "left as it is" in capsys.readouterr().out
