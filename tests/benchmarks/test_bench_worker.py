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
