"""The adaptive decode: which images take it, its geometry, and, with the real models, the same faces as
a full decode on camera-like photos (counts, cosines, EXIF rotation, finer re-decodes only where needed)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from faceidx_worker.face_decode import (
    ADAPTIVE,
    FULL,
    SCALED,
    area_warp,
    decode_for_faces,
    detect_and_crop,
    detection_factor,
    face_scale_eligible,
    fit_size,
)
from faceidx_worker.images import ImageError, ImageHeader, decode_image
from faceidx_worker.model import InsightFaceModelPack
from tests.support.benchmarks import load_benchmark

BIG = 10**9
# The bounds the adaptive decode is held to against the full decode, on camera-like files (issue 23).
MIN_COSINE = 0.98
MEDIAN_COSINE = 0.99


def header(fmt: str = "JPEG", mode: str = "RGB", size: tuple[int, int] = (4032, 3024)) -> ImageHeader:
    return ImageHeader(format=fmt, mode=mode, width=size[0], height=size[1], orientation=1)


@pytest.mark.parametrize(
    ("size", "factor"),
    [
        ((4032, 3024), 4),  # 12 MP: 1008 px at 1/4, 504 at 1/8 (under 640)
        ((6000, 4000), 8),  # 24 MP: 750 px at 1/8
        ((5119, 100), 8),  # ceil(5119 / 8) = 640 is enough: the long side counts
        ((5111, 100), 4),  # ceil(5111 / 8) = 639 is not
        ((1280, 960), 2),
        ((640, 480), 1),
    ],
)
def test_the_detection_decode_keeps_the_detector_size_on_the_long_side(size, factor):
    assert detection_factor(header(size=size), 640) == factor


@pytest.mark.parametrize(
    ("fmt", "mode", "size", "eligible"),
    [
        ("JPEG", "RGB", (4032, 3024), True),
        ("JPEG", "L", (1280, 720), True),
        ("JPEG", "RGB", (1279, 720), False),  # under 2 x det size: a plain decode
        ("JPEG", "CMYK", (4032, 3024), False),
        ("PNG", "RGB", (4032, 3024), False),
        ("WEBP", "RGB", (4032, 3024), False),
    ],
)
def test_only_large_rgb_or_gray_jpegs_take_the_face_scale_decode(fmt, mode, size, eligible):
    assert face_scale_eligible(header(fmt, mode, size), 640) is eligible


@pytest.mark.parametrize(("width", "height"), [(4032, 3024), (3024, 4032), (1000, 1000), (640, 17)])
def test_the_shrink_has_the_letterbox_size(width, height):
    box = 640
    ratio = height / width
    expected = (int(box / ratio), box) if ratio > 1 else (box, int(box * ratio))
    assert fit_size(width, height, box, box) == expected


def test_an_area_crop_of_a_flat_image_is_flat_and_an_enlarging_map_is_a_plain_warp():
    flat = np.full((1400, 1400, 3), 77, np.uint8)  # the crop covers pixels 100 to 1220
    shrink = np.array([[0.1, 0.0, -10.0], [0.0, 0.1, -10.0]])
    crop = area_warp(flat, shrink, 112)
    assert crop.shape == (112, 112, 3)
    assert np.all(crop[5:100, 5:100] == 77)
    noise = np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    enlarge = np.array([[1.5, 0.0, -20.0], [0.0, 1.5, -20.0]])
    assert np.array_equal(area_warp(noise, enlarge, 112), cv2.warpAffine(noise, enlarge, (112, 112)))


def jpeg(pixels: np.ndarray, orientation: int = 1) -> bytes:
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)).save(
        buffer, "JPEG", quality=95, exif=exif.tobytes()
    )
    return buffer.getvalue()


def test_png_and_small_jpegs_decode_in_full_in_every_mode():
    pixels = np.random.default_rng(2).integers(0, 255, (300, 2000, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    for mode in (ADAPTIVE, FULL):
        decoded = decode_for_faces(buffer.getvalue(), max_pixels=BIG, mode=mode, det_size=640)
        assert decoded.faces is None
        assert decoded.factor == 1
        assert decoded.pixels.shape == (300, 2000, 3)
    small = jpeg(pixels[:, :1000])
    assert decode_for_faces(small, max_pixels=BIG, mode=ADAPTIVE, det_size=640).faces is None


def test_scaled_mode_is_the_older_decode():
    pixels = np.random.default_rng(3).integers(0, 255, (1500, 2600, 3), dtype=np.uint8)
    data = jpeg(pixels)
    scaled = decode_for_faces(data, max_pixels=BIG, mode=SCALED, det_size=640, min_side=1280)
    assert np.array_equal(scaled.pixels, decode_image(data, max_pixels=BIG, min_side=1280).pixels)
    with pytest.raises(ValueError, match="decode mode"):
        decode_for_faces(data, max_pixels=BIG, mode="fast", det_size=640)


def test_the_pixel_limit_is_checked_before_the_face_scale_decode():
    data = jpeg(np.zeros((1400, 2600, 3), np.uint8))
    with pytest.raises(ImageError, match="too_many_pixels"):
        decode_for_faces(data, max_pixels=1000, mode=ADAPTIVE, det_size=640)


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_the_reduced_decode_is_the_rotated_picture_in_original_geometry(orientation):
    upright = np.random.default_rng(4).integers(0, 255, (1600, 2800, 3), dtype=np.uint8)
    upright[:400, :700] = 255  # a white top-left corner, wherever the file stores it
    turn = {1: None, 3: cv2.ROTATE_180, 6: cv2.ROTATE_90_COUNTERCLOCKWISE, 8: cv2.ROTATE_90_CLOCKWISE}
    stored = upright if turn[orientation] is None else cv2.rotate(upright, turn[orientation])
    decoded = decode_for_faces(jpeg(stored, orientation), max_pixels=BIG, mode=ADAPTIVE, det_size=640)
    assert (decoded.width, decoded.height) == (2800, 1600)
    assert decoded.factor == 4
    assert decoded.faces is not None
    assert decoded.pixels.shape[:2] == (400, 700)
    assert decoded.faces.scale == (4.0, 4.0)
    assert decoded.pixels[:80, :150].mean() > 240  # the white corner is top-left after rotation


# -- with the real models ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(small_pack):
    pack = InsightFaceModelPack(small_pack, ort_threads=1)
    pack.load()
    return pack


@pytest.fixture(scope="module")
def camera_corpus(assets_dir, model, tmp_path_factory):
    """Two group photos with small faces (12 and 24 MP) and EXIF-rotated 12 MP portraits."""
    corpus = load_benchmark("camera_corpus")
    folder = tmp_path_factory.mktemp("camera")
    files = {
        f.path.name: f.path.read_bytes()
        for f in corpus.build(folder, assets_dir, model.detect, portraits=False, groups=(1, 1))
    }
    rng = np.random.default_rng(7)
    for name, orientation in (("two_people.jpg", 6), ("t1.jpg", 8), ("obama.jpg", 1)):
        upright = corpus.add_noise(corpus.upscale(cv2.imread(str(assets_dir / "images" / name)), 12e6), rng)
        data = corpus.encode_rotated(upright, orientation) if orientation != 1 else corpus.encode(upright)
        files[f"{name}_{orientation}"] = data
        files[f"{name}_{orientation}_upright"] = corpus.encode(upright)
    return files


def faces_of(model, data: bytes, mode: str):
    decoded = decode_for_faces(data, max_pixels=BIG, mode=mode, det_size=640)
    assert decoded.faces is not None
    boxes, _, crops = detect_and_crop(model, decoded.faces)
    embeddings = model.embed(crops) if crops else np.empty((0, 128), np.float32)
    return boxes, embeddings, decoded.faces


def matched_cosines(boxes, embeddings, other_boxes, other_embeddings):
    centres = (other_boxes[:, :2] + other_boxes[:, 2:4]) / 2
    cosines = []
    for box, embedding in zip(boxes, embeddings, strict=True):
        nearest = int(np.argmin(((centres - (box[:2] + box[2:4]) / 2) ** 2).sum(1)))
        cosines.append(float(embedding @ other_embeddings[nearest]))
    return cosines


@pytest.mark.assets
def test_the_adaptive_decode_finds_the_full_decodes_faces_on_camera_like_files(model, camera_corpus):
    cosines = []
    finer = {}
    for name, data in camera_corpus.items():
        full_boxes, full_embeddings, _ = faces_of(model, data, FULL)
        boxes, embeddings, pixels = faces_of(model, data, ADAPTIVE)
        assert len(boxes) == len(full_boxes), name
        cosines += matched_cosines(full_boxes, full_embeddings, boxes, embeddings)
        finer[name] = pixels.finer_decodes
    assert len(cosines) >= 20
    assert min(cosines) >= MIN_COSINE
    assert float(np.median(cosines)) >= MEDIAN_COSINE
    # small faces in group photos need a finer decode; a portrait's one big face does not
    assert all(count >= 1 for name, count in finer.items() if name.startswith("group"))
    assert finer["obama.jpg_1"] == 0


@pytest.mark.assets
def test_boxes_of_an_exif_rotated_file_land_where_the_upright_files_are(model, camera_corpus):
    for name in ("two_people.jpg_6", "t1.jpg_8"):
        rotated, _, _ = faces_of(model, camera_corpus[name], ADAPTIVE)
        upright, _, _ = faces_of(model, camera_corpus[f"{name}_upright"], ADAPTIVE)
        assert len(rotated) == len(upright) >= 2
        for box in upright:
            distance = np.abs(rotated[:, :4] - box[:4]).max(axis=1).min()
            assert distance < 0.05 * (box[2] - box[0]), name


@pytest.mark.assets
def test_the_asset_photos_give_the_same_faces_in_every_mode(model, assets_dir, expected_faces):
    for name in expected_faces:
        data = (assets_dir / "images" / name).read_bytes()
        full = decode_for_faces(data, max_pixels=BIG, mode=FULL, det_size=640)
        adaptive = decode_for_faces(data, max_pixels=BIG, mode=ADAPTIVE, det_size=640)
        if full.faces is None:  # small photos: the plain full decode in both modes
            assert adaptive.faces is None
            assert np.array_equal(full.pixels, adaptive.pixels)
            continue
        full_boxes, full_embeddings, _ = faces_of(model, data, FULL)
        boxes, embeddings, _ = faces_of(model, data, ADAPTIVE)
        assert len(boxes) == len(full_boxes), name
        assert min(matched_cosines(full_boxes, full_embeddings, boxes, embeddings), default=1) >= MIN_COSINE


class ProtocolOnly:
    """The model behind the plain ``FaceModel`` protocol: no ``detect_prescaled``."""

    def __init__(self, model):
        self._model = model
        self.name = model.name
        self.version = model.version
        self.embedding_size = model.embedding_size

    def detect(self, pixels):
        return self._model.detect(pixels)

    def align(self, pixels, landmarks):
        return self._model.align(pixels, landmarks)

    def embed(self, crops):
        return self._model.embed(crops)


@pytest.mark.assets
def test_the_indexer_reports_original_pixels_with_or_without_the_face_scale_path(model, camera_corpus):
    from faceidx_worker.events import ImageRef
    from faceidx_worker.fetch import LoadedImage
    from faceidx_worker.indexer import index_images

    data = camera_corpus["two_people.jpg_6"]

    def index(mode, with_model):
        image = decode_for_faces(data, max_pixels=BIG, mode=mode, det_size=640)
        loaded = LoadedImage(ref=ImageRef(bucket="b", key="k"), image=image)
        return index_images(with_model, [loaded]).outcomes[0]

    full = index(FULL, model)
    adaptive = index(ADAPTIVE, model)
    plain = index(ADAPTIVE, ProtocolOnly(model))  # a model without the path: detected on the reduced pixels
    assert (adaptive.width, adaptive.height) == (full.width, full.height)
    assert len(full.faces) == len(adaptive.faces) == len(plain.faces) == 2
    for ours, theirs in ((adaptive, full), (plain, full)):
        for face, reference in zip(
            sorted(ours.faces, key=lambda f: f.bbox[0]),
            sorted(theirs.faces, key=lambda f: f.bbox[0]),
            strict=True,
        ):
            assert np.abs(face.bbox - reference.bbox).max() < 0.05 * (reference.bbox[2] - reference.bbox[0])
            assert float(face.embedding @ reference.embedding) > 0.9


@pytest.mark.parametrize("gray", [False, True])
def test_simplejpeg_and_opencv_give_the_same_pixels_at_every_scale(gray, monkeypatch):
    import sys

    from faceidx_worker.face_decode import decode_at
    from faceidx_worker.images import _decode_cv2, read_header

    pixels = np.random.default_rng(5).integers(0, 255, (1300, 2700, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    image = Image.fromarray(pixels)
    (image.convert("L") if gray else image).save(buffer, "JPEG", quality=95)
    data = buffer.getvalue()
    head = read_header(data)
    for factor in (1, 2, 4, 8):
        assert np.array_equal(decode_at(data, head, factor), _decode_cv2(data, factor))
    monkeypatch.setitem(sys.modules, "simplejpeg", None)  # not installed: OpenCV decodes
    assert np.array_equal(decode_at(data, head, 2), _decode_cv2(data, 2))
