"""The age/gender option: insightface's output contract, and a pack with or without the model.

No genderage model ships with the test assets, so a tiny ONNX graph with the same interface (96x96
input, one output of 3 values, constant) stands in for it: it proves the wiring, not the estimates.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from faceidx_worker.events import ImageRef
from faceidx_worker.fetch import LoadedImage
from faceidx_worker.genderage import is_genderage, parse_genderage
from faceidx_worker.images import decode_image
from faceidx_worker.indexer import index_images
from faceidx_worker.model import InsightFaceModelPack
from faceidx_worker.packs import find_pack_files
from tests.support.worker_harness import make_model_pack


@pytest.mark.parametrize(
    ("output", "expected"),
    [([0.9, 0.1, 0.34], (34, "F")), ([0.2, 0.8, 0.071], (7, "M")), ([[0.4, 0.6, 0.257]], (26, "M"))],
)
def test_the_output_is_female_male_age_over_100(output, expected):
    assert parse_genderage(np.array(output)) == expected


def test_an_output_of_another_size_is_refused():
    with pytest.raises(ValueError, match="3 values"):
        parse_genderage(np.zeros(4))


def _constant_genderage(path, values=(0.2, 0.7, 0.33)):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.zeros((3, 3), np.float32), "w")
    bias = numpy_helper.from_array(np.asarray(values, np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["data"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w", "b"], ["fc1"]),
        ],
        "genderage",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 96, 96])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 3])],
        initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def pack_with_genderage(assets_dir, tmp_path_factory):
    pack = make_model_pack(tmp_path_factory.mktemp("packs") / "with_genderage", assets_dir)
    _constant_genderage(pack / "genderage.onnx")
    return pack


def _t1(model, assets_dir):
    data = (assets_dir / "images" / "t1.jpg").read_bytes()
    image = decode_image(data, max_pixels=10**9, min_side=1280)
    [outcome] = index_images(model, [LoadedImage(ref=ImageRef("b", "t1.jpg"), image=image)]).outcomes
    return outcome.faces


@pytest.mark.assets
def test_a_pack_with_a_genderage_model_gives_age_and_gender(pack_with_genderage, assets_dir):
    files = find_pack_files(pack_with_genderage)
    assert files.genderage == pack_with_genderage / "genderage.onnx"
    assert is_genderage(files.genderage)
    model = InsightFaceModelPack(pack_with_genderage, ort_threads=1, genderage=True)
    model.load()
    faces = _t1(model, assets_dir)
    assert len(faces) == 6
    assert {(face.age, face.gender) for face in faces} == {(33, "M")}


@pytest.mark.assets
def test_without_the_option_the_columns_stay_null(pack_with_genderage, assets_dir):
    model = InsightFaceModelPack(pack_with_genderage, ort_threads=1)
    model.load()
    assert {(face.age, face.gender) for face in _t1(model, assets_dir)} == {(None, None)}


@pytest.mark.assets
def test_asked_for_but_absent_logs_a_warning_and_stays_null(small_pack, assets_dir, caplog):
    assert find_pack_files(small_pack).genderage is None
    model = InsightFaceModelPack(small_pack, ort_threads=1, genderage=True)
    with caplog.at_level(logging.WARNING, logger="faceidx_worker.model"):
        model.load()
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "FACEIDX_GENDERAGE is on" in warning
    assert "holds no genderage model" in warning
    assert {(face.age, face.gender) for face in _t1(model, assets_dir)} == {(None, None)}
