"""Decoding: limits before decode, EXIF orientation, odd pixel formats, DCT-reduced JPEG decoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from faceidx_worker.images import (
    ImageError,
    ImageHeader,
    apply_orientation,
    choose_dct_factor,
    decode_image,
    read_header,
)
from faceidx_worker.rows import ErrorReason
from tests.support import worker_images as gen

BIG = 10**9


@pytest.fixture(scope="module")
def obama(assets_dir):
    return gen.load_bgr(assets_dir / "images" / "obama.jpg")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_apply_orientation_matches_pillow(orientation):
    stored = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    exif = Image.Exif()
    exif[0x0112] = orientation
    image = Image.fromarray(stored)
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    assert np.array_equal(apply_orientation(stored, orientation), expected)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_gives_the_upright_picture(obama, orientation):
    decoded = decode_image(gen.exif_oriented_jpeg(obama, orientation), max_pixels=BIG)
    assert (decoded.height, decoded.width) == obama.shape[:2]
    assert decoded.pixels.shape == obama.shape
    # same picture up to JPEG noise: compare to the upright original
    assert np.abs(decoded.pixels.astype(int) - obama.astype(int)).mean() < 6


@pytest.mark.parametrize(
    ("maker", "mode"),
    [
        (gen.gray16_png, "I;16"),
        (gen.rgb16_png, "RGB"),
        (gen.gray_jpeg, "L"),
        (gen.rgba_png, "RGBA"),
        (gen.cmyk_jpeg, "CMYK"),
        (gen.palette_png, "P"),
    ],
)
def test_odd_pixel_formats_become_8bit_bgr(obama, maker, mode):
    data = maker(obama)
    assert read_header(data).mode == mode
    decoded = decode_image(data, max_pixels=BIG)
    assert decoded.pixels.dtype == np.uint8
    assert decoded.pixels.shape == obama.shape
    gray_expected = obama.mean(axis=2)
    gray_decoded = decoded.pixels.astype(float).mean(axis=2)
    # the same picture: content correlates strongly with the original (not inverted, not clipped)
    assert np.corrcoef(gray_expected.ravel(), gray_decoded.ravel())[0, 1] > 0.97


def test_too_many_pixels_is_refused_from_the_header_alone():
    bomb = gen.png_claiming_size(60000, 60000)  # 3.6 GP claimed, a few hundred bytes of data
    with pytest.raises(ImageError) as caught:
        decode_image(bomb, max_pixels=100_000_000)
    assert caught.value.reason is ErrorReason.TOO_MANY_PIXELS
    assert "60000x60000" in caught.value.detail


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n garbage"])
def test_garbage_is_a_decode_error(data):
    with pytest.raises(ImageError) as caught:
        decode_image(data, max_pixels=BIG)
    assert caught.value.reason is ErrorReason.DECODE_ERROR


def test_truncated_jpeg_is_a_decode_error_or_decodes(obama):
    # libjpeg pads a truncated scan with grey; either outcome is fine, a crash is not
    data = gen.truncated(gen.jpeg_bytes(obama), 0.05)
    try:
        decoded = decode_image(data, max_pixels=BIG)
    except ImageError:
        with pytest.raises(ImageError, match=r"^decode_error: "):
            decode_image(data, max_pixels=BIG)
    else:
        assert decoded.pixels.shape == obama.shape


@pytest.mark.parametrize(
    ("fmt", "size", "min_side", "factor"),
    [
        ("JPEG", (4000, 3000), 1280, 2),
        ("JPEG", (4000, 3000), 640, 4),
        ("JPEG", (6000, 4000), 640, 8),
        ("JPEG", (1280, 886), 1280, 1),
        ("JPEG", (2560, 1000), 1280, 2),
        ("JPEG", (2558, 1000), 1280, 1),
        ("JPEG", (4000, 3000), 0, 1),
        ("PNG", (4000, 3000), 640, 1),
    ],
)
def test_dct_factor_keeps_the_minimum_side(fmt, size, min_side, factor):
    header = ImageHeader(format=fmt, mode="RGB", width=size[0], height=size[1], orientation=1)
    assert choose_dct_factor(header, min_side) == factor


def test_reduced_decode_reports_original_geometry(obama):
    big = np.ascontiguousarray(np.repeat(np.repeat(obama, 4, axis=0), 4, axis=1))  # 3640 x 4548
    data = gen.exif_oriented_jpeg(big, 6, quality=80)
    decoded = decode_image(data, max_pixels=BIG, min_side=1000)
    assert decoded.factor == 4
    assert (decoded.width, decoded.height) == (big.shape[1], big.shape[0])
    scale_x, scale_y = decoded.scale
    assert scale_x == pytest.approx(4, rel=0.01)
    assert scale_y == pytest.approx(4, rel=0.01)


def test_pillow_path_reduces_cmyk_too(obama):
    big = np.ascontiguousarray(np.repeat(np.repeat(obama, 2, axis=0), 2, axis=1))
    decoded = decode_image(gen.cmyk_jpeg(big), max_pixels=BIG, min_side=900)
    assert decoded.factor == 2
    assert decoded.pixels.shape[:2] == obama.shape[:2]


def test_header_reads_size_without_decoding():
    header = read_header(gen.png_claiming_size(123, 45))
    assert (header.width, header.height, header.format) == (123, 45, "PNG")
    out = io.BytesIO()
    Image.new("RGB", (10, 20)).save(out, "JPEG")
    assert read_header(out.getvalue()).oriented_size == (10, 20)
