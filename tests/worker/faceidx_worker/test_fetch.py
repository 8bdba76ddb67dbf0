"""S3 download + decode: size checks before the body is read, reasons for every failure."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from faceidx_worker.events import ImageRef
from faceidx_worker.fetch import S3ImageLoader


def _loader(world, **kwargs):
    options = {"max_image_bytes": 10_000_000, "max_image_pixels": 100_000_000, "decode_min_side": 1280}
    options.update(kwargs)
    return S3ImageLoader(world.s3, **options)


@pytest.fixture
def photo(world, assets_dir):
    data = (assets_dir / "images" / "obama.jpg").read_bytes()
    meta = world.put_image("p/obama.jpg", data)
    return ImageRef(world.input_bucket, "p/obama.jpg", size=meta["size"]), meta


def test_loads_and_reports_the_etag(world, photo):
    ref, meta = photo
    loaded = _loader(world).load(ref)
    assert loaded.error is None
    assert loaded.retryable is None
    assert loaded.etag == meta["etag"]
    assert (loaded.image.width, loaded.image.height) == (910, 1137)
    assert loaded.nbytes == meta["size"]


def test_size_from_the_event_refuses_without_any_s3_call(world):
    stubber = Stubber(world.s3)  # no response queued: any S3 call would raise
    with stubber:
        loaded = _loader(world, max_image_bytes=100).load(ImageRef("b", "k.jpg", size=101))
    assert loaded.error.reason == "too_large"


def test_unknown_size_is_checked_with_head(world, photo):
    ref, meta = photo
    loaded = _loader(world, max_image_bytes=meta["size"] - 1).load(ImageRef(ref.bucket, ref.key))
    assert loaded.error.reason == "too_large"
    assert "HeadObject" in loaded.error.detail


def test_event_size_that_lies_is_caught_on_get(world, photo):
    ref, meta = photo
    loaded = _loader(world, max_image_bytes=meta["size"] - 1).load(ImageRef(ref.bucket, ref.key, size=10))
    assert loaded.error.reason == "too_large"
    assert "GetObject" in loaded.error.detail


def test_missing_object_and_bucket_are_not_found(world):
    loader = _loader(world)
    assert loader.load(ImageRef(world.input_bucket, "nope.jpg", size=5)).error.reason == "not_found"
    assert loader.load(ImageRef("no-such-bucket-x", "nope.jpg", size=5)).error.reason == "not_found"


def test_bucket_allow_list(world, photo):
    ref, _ = photo
    assert _loader(world, allowed_buckets={"other"}).load(ref).error.reason == "bucket_not_allowed"
    assert _loader(world, allowed_buckets={ref.bucket}).load(ref).error is None


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        ("AccessDenied", 403, "access_denied"),
        ("InvalidObjectState", 403, "unavailable"),
        ("SlowDown", 503, None),
        ("InternalError", 500, None),
    ],
)
def test_s3_error_codes(world, code, status, reason):
    stubber = Stubber(world.s3)
    stubber.add_client_error("get_object", service_error_code=code, http_status_code=status)
    with stubber:
        loaded = _loader(world).load(ImageRef("b", "k.jpg", size=10))
    if reason is None:
        assert loaded.error is None
        assert code in loaded.retryable
    else:
        assert loaded.error.reason == reason
        assert loaded.retryable is None
