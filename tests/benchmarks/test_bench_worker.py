"""The worker benchmark's full-decode ceiling: the arithmetic, and the decode cost it measures."""

from __future__ import annotations

import pytest

from tests.support.benchmarks import load_benchmark


def test_the_ceiling_is_the_cores_divided_by_the_cpu_an_image_needs():
    bench = load_benchmark("bench_worker")
    # 2 cores, 100 CPU-ms of decode and 50 of inference per image: at most 13.3 images/s
    assert bench.full_decode_ceiling(100.0, 50.0, 2) == pytest.approx(13.333, abs=1e-3)
    # a decode twice as costly lowers it; more cores raise it in proportion
    assert bench.full_decode_ceiling(200.0, 50.0, 2) < bench.full_decode_ceiling(100.0, 50.0, 2)
    assert bench.full_decode_ceiling(100.0, 50.0, 4) == pytest.approx(
        2 * bench.full_decode_ceiling(100.0, 50.0, 2)
    )


@pytest.mark.assets
def test_the_decode_cost_grows_with_the_pixels(assets_dir, tmp_path):
    import cv2

    bench = load_benchmark("bench_worker")
    photo = cv2.imread(str(assets_dir / "images" / "obama.jpg"))
    small, large = tmp_path / "small.jpg", tmp_path / "large.jpg"
    cv2.imwrite(str(small), photo)
    cv2.imwrite(str(large), cv2.resize(photo, None, fx=4, fy=4))
    small_ms = bench.decode_cpu_ms([small] * 5)
    large_ms = bench.decode_cpu_ms([large] * 5)
    assert 0 < small_ms < large_ms


@pytest.mark.assets
def test_the_decode_costs_cover_every_decode_and_count_the_finer_re_decodes(assets_dir, tmp_path):
    from tests.support.worker_harness import make_model_pack

    bench = load_benchmark("bench_worker")
    corpus = load_benchmark("camera_corpus")
    pack = make_model_pack(tmp_path / "pack", assets_dir)
    model = bench.InsightFaceModelPack(pack)
    model.load()
    files = corpus.build(tmp_path / "corpus", assets_dir, model.detect, sources=["obama.jpg"], groups=(1, 0))
    costs = bench.decode_costs(pack, [f.path for f in files], 0.5)
    assert costs["images"] == 4  # a 12 MP, a 24 MP and an EXIF-rotated portrait, a group photo
    assert set(costs["cpu_ms"]) == {"full", "adaptive", "half", "full_opencv"}
    assert all(value > 0 for value in costs["cpu_ms"].values())
    assert costs["finer_share"] == 0.25  # the group photo's small faces; the portraits' one face is large
    libraries = bench.library_costs([f.path for f in files], limit=1)
    assert {"opencv", "pillow", "simplejpeg"} <= set(libraries)
    assert set(libraries["opencv"]) == {"1/1", "1/2", "1/4", "1/8"}
