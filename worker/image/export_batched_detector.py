"""Give an SCRFD detector export a real batch axis (ONNX graph surgery), run at image build time.

insightface's SCRFD exports (``det_10g.onnx``, ``det_500m.onnx``, ...) fold the batch into the
candidate axis: each head ends ``Transpose(perm=[2, 3, 0, 1])`` (N, A*C, H, W -> H, W, N, A*C) then
``Reshape([-1, C])``, so the outputs are ``[H*W*A*N, C]`` and only a batch of 1 decodes correctly.
This rewrites each head to ``Transpose(perm=[0, 2, 3, 1])`` + ``Reshape([0, -1, C])``, giving
``[N, H*W*A, C]`` with the same row order per image, and frees the input's batch dimension. The
backbone is untouched. insightface reads a rank-3 output as a batched model (``SCRFD.batched``) and
takes image 0, so the rewritten file still works one image at a time; the worker runs it on a whole
batch (``InsightFaceModelPack.detect_many``). ``tests/worker/image`` checks outputs equal to the original
on real photos.

    python export_batched_detector.py det_10g.onnx [--out det_10g.onnx]   # in place by default

A model that already has a batch axis, or whose heads do not have this shape, is left as it is (exit 0,
with a line saying why), so the build never fails on a pack whose detector is already exported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

BATCH = "batch"


class NotFoldedError(ValueError):
    """The model is not an SCRFD export with a folded batch axis (nothing to rewrite)."""


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {output: node for node in graph.node for output in node.output}


def unfold_batch_axis(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose heads keep the batch axis. Raises :class:`NotFoldedError`."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    producers = _producers(graph)
    initializers = {init.name: init for init in graph.initializer}
    if len(graph.output) < 5:
        raise NotFoldedError(f"{len(graph.output)} outputs: not an SCRFD detector")
    new_shapes: dict[str, str] = {}
    for output in graph.output:
        node = producers.get(output.name)
        if node is not None and node.op_type in ("Sigmoid", "Identity"):
            node = producers.get(node.input[0])
        if node is None or node.op_type != "Reshape" or node.input[1] not in initializers:
            raise NotFoldedError(f"output {output.name} is not made by a Reshape with a constant shape")
        shape = numpy_helper.to_array(initializers[node.input[1]])
        transpose = producers.get(node.input[0])
        if shape.tolist()[:1] != [-1] or len(shape) != 2 or transpose is None:
            raise NotFoldedError(f"output {output.name}: reshape to {shape.tolist()}, not [-1, C]")
        if transpose.op_type != "Transpose":
            raise NotFoldedError(f"output {output.name}: no Transpose before its Reshape")
        perm = next((list(a.ints) for a in transpose.attribute if a.name == "perm"), None)
        if perm != [2, 3, 0, 1]:
            raise NotFoldedError(f"output {output.name}: transpose {perm}, not [2, 3, 0, 1]")
        for attribute in transpose.attribute:
            if attribute.name == "perm":
                del attribute.ints[:]
                attribute.ints.extend([0, 2, 3, 1])
        channels = int(shape[1])
        shape_name = new_shapes.get(str(channels))
        if shape_name is None:
            shape_name = f"faceidx_batched_shape_{channels}"
            graph.initializer.append(
                numpy_helper.from_array(np.array([0, -1, channels], dtype=np.int64), shape_name)
            )
            new_shapes[str(channels)] = shape_name
        node.input[1] = shape_name
        dims = output.type.tensor_type.shape.dim
        del dims[:]
        for value in (BATCH, "candidates", channels):
            dim = dims.add()
            if isinstance(value, int):
                dim.dim_value = value
            else:
                dim.dim_param = value
    input_dims = graph.input[0].type.tensor_type.shape.dim
    input_dims[0].ClearField("dim_value")
    input_dims[0].dim_param = BATCH
    del graph.value_info[:]  # shapes inferred for batch 1 no longer hold
    used = {name for node in graph.node for name in node.input}
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:  # the old [-1, C] shapes
        graph.initializer.remove(init)
    onnx.checker.check_model(model)
    return model


def has_batch_axis(model: onnx.ModelProto) -> bool:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return bool(dims) and not dims[0].dim_value and len(model.graph.output[0].type.tensor_type.shape.dim) == 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--out", type=Path, help="where to write (default: replace the model)")
    args = parser.parse_args(argv)
    model = onnx.load_model(str(args.model))
    if has_batch_axis(model):
        print(f"{args.model}: already has a batch axis, left as it is")
        return 0
    try:
        batched = unfold_batch_axis(model)
    except NotFoldedError as exc:
        print(f"{args.model}: left as it is ({exc})")
        return 0
    out = args.out or args.model
    onnx.save_model(batched, str(out))
    print(f"{args.model}: batch axis restored, written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
