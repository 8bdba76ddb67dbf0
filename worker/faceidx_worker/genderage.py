"""The optional age/gender model (``FACEIDX_GENDERAGE=1``): insightface's ``genderage.onnx`` contract.

insightface 2.1 (``model_zoo/attribute.py``, ``Attribute``) routes a model with a 96x96 input and one
output of 3 values to its ``genderage`` task. The input is the face cut around its box centre, scaled so
that 1.5 x the longer box side fills 96 pixels, not rotated (``face_align.transform``), as a BGR->RGB
blob with mean 0 / std 1 for an mxnet-converted model (a ``Sub``/``Mul`` or ``bn_data`` node among its
first nodes) and mean 127.5 / std 128 otherwise. The output is ``[female, male, age / 100]``: the gender
is the larger of the first two (``F`` when index 0), the age ``round(out[2] * 100)``.

No such model ships with the test assets; a pack that has one (``buffalo_l`` does) gets ages and
genders, a pack without one logs a warning at load and leaves the columns null.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

INPUT_SIZE = 96


def parse_genderage(prediction: np.ndarray) -> tuple[int, str]:
    """(age, gender) from one ``[female, male, age / 100]`` output row."""
    values = np.asarray(prediction, dtype=np.float32).reshape(-1)
    if values.shape[0] != 3:
        raise ValueError(f"a genderage output has 3 values, not {values.shape[0]}")
    gender = "M" if int(np.argmax(values[:2])) == 1 else "F"
    return int(np.round(float(values[2]) * 100)), gender


def is_genderage(path: Path) -> bool:
    """A 96x96 single-input model with one output of 3 values (insightface's routing rule)."""
    import onnx

    model = onnx.load_model(str(path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        return False
    shape = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    out = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    return len(shape) == 4 and shape[2:] == [INPUT_SIZE, INPUT_SIZE] and len(out) == 2 and out[1] == 3


def input_normalisation(path: Path) -> tuple[float, float]:
    """(mean, std) as insightface's ``Attribute`` picks them from the first graph nodes."""
    import onnx

    nodes = onnx.load_model(str(path), load_external_data=False).graph.node[:8]
    sub = mul = False
    for index, node in enumerate(nodes):
        sub = sub or node.name.startswith(("Sub", "_minus"))
        mul = mul or node.name.startswith(("Mul", "_mul"))
        if index < 3 and node.name == "bn_data":
            sub = mul = True
    return (0.0, 1.0) if sub and mul else (127.5, 128.0)


class GenderAgeModel:
    """One ONNX Runtime session of a genderage model; faces one at a time (the model is tiny)."""

    def __init__(self, path: Path, session: Any) -> None:
        self.path = path
        self.session = session
        self.mean, self.std = input_normalisation(path)
        self.input_name = session.get_inputs()[0].name

    def predict(self, pixels: np.ndarray, bbox: np.ndarray) -> tuple[int, str]:
        """(age, gender) of the face in ``bbox`` (x1, y1, x2, y2 in ``pixels`` coordinates)."""
        import cv2
        from insightface.utils import face_align

        x1, y1, x2, y2 = (float(v) for v in bbox[:4])
        scale = INPUT_SIZE / (max(x2 - x1, y2 - y1) * 1.5)
        crop, _ = face_align.transform(pixels, ((x1 + x2) / 2, (y1 + y2) / 2), INPUT_SIZE, scale, 0)
        blob = cv2.dnn.blobFromImage(
            crop, 1.0 / self.std, (INPUT_SIZE, INPUT_SIZE), (self.mean,) * 3, swapRB=True
        )
        [output] = self.session.run(None, {self.input_name: blob.astype(np.float32)})
        return parse_genderage(output[0])
