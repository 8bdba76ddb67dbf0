"""A pack's files told apart, choosing the default pack of a model folder, and the message's model_pack."""

from __future__ import annotations

import json

import pytest

from faceidx_worker.events import MessageKind, parse_body
from faceidx_worker.packs import (
    ModelPackError,
    PackChoiceError,
    choose_default_pack,
    classify_onnx,
    discover_packs,
    find_pack_files,
)
from tests.support.worker_harness import make_model_pack, s3_event_body, s3_record


def _pack(folder):
    folder.mkdir(parents=True)
    (folder / "det.onnx").write_bytes(b"")
    return folder


def test_a_folder_of_onnx_files_is_one_pack(tmp_path):
    folder = _pack(tmp_path / "buffalo_l")
    assert choose_default_pack(folder, "buffalo_l") == ("buffalo_l", folder)


def test_a_folder_of_packs_picks_the_named_one(tmp_path):
    a, b = _pack(tmp_path / "models" / "a"), _pack(tmp_path / "models" / "b")
    (tmp_path / "models" / "empty").mkdir()
    assert discover_packs(tmp_path / "models") == {"a": a, "b": b}
    assert choose_default_pack(tmp_path / "models", "b") == ("b", b)


def test_a_single_pack_needs_no_name(tmp_path):
    a = _pack(tmp_path / "models" / "a")
    assert choose_default_pack(tmp_path / "models", "models") == ("a", a)


@pytest.mark.parametrize("requested", ["models", "c"])
def test_an_ambiguous_or_missing_default_is_a_configuration_error(tmp_path, requested):
    _pack(tmp_path / "models" / "a")
    _pack(tmp_path / "models" / "b")
    with pytest.raises(PackChoiceError, match="set FACEIDX_MODEL_PACK to one of them"):
        choose_default_pack(tmp_path / "models", requested)


def test_the_body_s_model_pack_goes_with_every_image():
    body = json.loads(s3_event_body([s3_record("b", "x.jpg"), s3_record("b", "y.jpg")]))
    parsed = parse_body(json.dumps({**body, "model_pack": "buffalo_s"}))
    assert [ref.model_pack for ref in parsed.images] == ["buffalo_s", "buffalo_s"]
    assert [ref.model_pack for ref in parse_body(json.dumps(body)).images] == [None, None]


@pytest.mark.parametrize("bad", ["", 7, "../up"])
def test_a_bad_model_pack_is_malformed(bad):
    body = json.loads(s3_event_body([s3_record("b", "x.jpg")]))
    assert parse_body(json.dumps({**body, "model_pack": bad})).kind is MessageKind.MALFORMED


@pytest.mark.assets
def test_pack_files_are_told_apart_from_the_graph(assets_dir, tmp_path):
    models = assets_dir / "models"
    assert classify_onnx(models / "det_500m.onnx") == "detection"
    assert classify_onnx(models / "scrfd_500m_bnkps_640.onnx") == "detection"
    assert classify_onnx(models / "mobilefacenet_128d_static.onnx") == "recognition"
    assert classify_onnx(models / "mobilefacenet_128d_dynbatch.onnx") == "recognition"

    two_detectors = make_model_pack(
        tmp_path / "two", assets_dir, ["det_500m.onnx", "det_2.5g.onnx", "mobilefacenet_128d_static.onnx"]
    )
    with pytest.raises(ModelPackError, match="exactly one detection"):
        find_pack_files(two_detectors)
    no_recognizer = make_model_pack(tmp_path / "norec", assets_dir, ["det_500m.onnx"])
    with pytest.raises(ModelPackError, match="exactly one recognition"):
        find_pack_files(no_recognizer)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelPackError, match=r"no \.onnx"):
        find_pack_files(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "det.onnx").write_bytes(b"<html>not a model</html>")
    with pytest.raises(ModelPackError, match="not a readable ONNX model"):
        find_pack_files(broken)
