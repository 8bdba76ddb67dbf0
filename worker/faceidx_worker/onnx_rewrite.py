"""The recognizer's ``PRelu`` rewritten for ONNX Runtime's CPU provider.

ONNX Runtime's CPU ``PRelu`` kernel is slow (half of MobileFaceNet's time), so on the CPU the
recognizer's ``PRelu`` nodes become ``Max(x, 0) + Min(x, 0) * slope``: the same floats, bit for bit,
about 1.7x faster. ``FACEIDX_CPU_GRAPH_REWRITE=0`` turns it off; GPU sessions always run the model file
as it is. The model pack applies it at load (:meth:`faceidx_worker.model.InsightFaceModelPack.load`).
"""

from __future__ import annotations

import numpy as np


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
