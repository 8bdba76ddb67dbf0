"""The recognizer's PRelu rewrite for the CPU: the same floats, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from faceidx_worker.onnx_rewrite import rewrite_prelu

pytestmark = pytest.mark.assets


def test_prelu_rewrite_gives_the_same_floats(assets_dir):
    import onnx
    import onnxruntime

    original = (assets_dir / "models" / "mobilefacenet_128d_dynbatch.onnx").read_bytes()
    rewritten, count = rewrite_prelu(original)
    ops = [node.op_type for node in onnx.load_model_from_string(rewritten).graph.node]
    assert count == 33
    assert "PRelu" not in ops
    assert ops.count("Max") == ops.count("Min") == 33

    def run(model: bytes, batch: np.ndarray) -> np.ndarray:
        session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: batch})[0]

    # activations of both signs, zeros and large values all pass through every rewritten node
    rng = np.random.default_rng(7)
    for sigma in (1, 50):
        batch = rng.normal(0, sigma, (1, 3, 112, 112)).astype(np.float32)
        batch[0, :, :8] = 0
        assert np.array_equal(run(rewritten, batch), run(original, batch))


@pytest.mark.parametrize("name", ["det_500m.onnx", "mobilefacenet_128d_static.onnx"])
def test_a_model_without_prelu_is_left_alone(assets_dir, name):
    model = (assets_dir / "models" / name).read_bytes()  # ReLU / Clip activations only
    assert rewrite_prelu(model) == (model, 0)
