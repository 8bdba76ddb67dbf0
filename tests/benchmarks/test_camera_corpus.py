"""The camera-like corpus of ``make bench``: what each kind of file is, and that a built corpus is reused."""

from __future__ import annotations

import pytest

from faceidx_worker.images import read_header
from faceidx_worker.model import InsightFaceModelPack
from tests.support.benchmarks import load_benchmark
from tests.support.worker_harness import make_model_pack


@pytest.mark.assets
def test_the_corpus_has_camera_sized_rotated_and_group_files(assets_dir, tmp_path):
    corpus = load_benchmark("camera_corpus")
    model = InsightFaceModelPack(make_model_pack(tmp_path / "pack", assets_dir), ort_threads=1)
    model.load()
    files = corpus.build(
        tmp_path / "corpus", assets_dir, model.detect, sources=["obama.jpg", "t1.jpg"], groups=(1, 1)
    )
    assert sorted(f.kind for f in files) == [
        "exif-rotated",
        "exif-rotated",
        "group-12mp",
        "group-24mp",
        "portrait-12mp",
        "portrait-12mp",
        "portrait-24mp",  # every third photo: obama.jpg, the first
    ]
    for item in files:
        header = read_header(item.path.read_bytes())
        width, height = header.oriented_size
        megapixels = width * height / 1e6
        assert header.format == "JPEG"
        if item.kind == "exif-rotated":
            assert header.orientation in (6, 8)
        else:
            assert header.orientation == 1
        expected = 24 if item.kind.endswith("24mp") else 12
        assert abs(megapixels - expected) / expected < 0.05, item
        assert item.path.stat().st_size > 2_000_000  # noise at quality 95: camera-sized files
    stamps = {f.path: f.path.stat().st_mtime_ns for f in files}
    again = corpus.build(
        tmp_path / "corpus", assets_dir, model.detect, sources=["obama.jpg", "t1.jpg"], groups=(1, 1)
    )
    assert {f.path: f.path.stat().st_mtime_ns for f in again} == stamps  # reused, not rebuilt
