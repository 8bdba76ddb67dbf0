"""S3 download + decode: size checks before the body is read, reasons for every failure."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from faceidx_worker.events import ImageRef
from faceidx_worker.fetch import (
    DENIED,
    NOT_FOUND,
    TRANSIENT,
    UNAVAILABLE,
    S3ImageLoader,
    classify_s3_error,
)


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


# (operation, code, HTTP status, message) as S3 really answers them; reason None = handed back.
KMS_DENIED = (
    "User: arn:aws:sts::123456789012:assumed-role/faceidx-job/i-0abc is not authorized to perform: "
    "kms:Decrypt on the resource associated with this ciphertext because no identity-based policy allows "
    "the kms:Decrypt action"
)
S3_ERRORS = [
    # permanent: an error row, the message is deleted
    ("get_object", "NoSuchKey", 404, "The specified key does not exist.", "not_found"),
    ("get_object", "NoSuchBucket", 404, "The specified bucket does not exist", "not_found"),
    ("head_object", "404", 404, "Not Found", "not_found"),  # HEAD has no body: the status is the code
    (
        "get_object",
        "InvalidObjectState",
        403,
        "The operation is not valid for the object's storage class",
        "unavailable",
    ),
    # denied: handed back (DLQ after maxReceiveCount), never an error row
    ("get_object", "AccessDenied", 403, "Access Denied", None),
    ("get_object", "AccessDenied", 403, KMS_DENIED, None),
    ("head_object", "403", 403, "Forbidden", None),
    ("get_object", "AllAccessDisabled", 403, "All access to this object has been disabled", None),
    (
        "get_object",
        "KMS.DisabledException",
        400,
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd is disabled.",
        None,
    ),
    (
        "get_object",
        "KMS.KMSInvalidStateException",
        400,
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd is pending deletion.",
        None,
    ),
    (
        "get_object",
        "KMS.NotFoundException",
        400,
        "Key 'arn:aws:kms:us-east-1:123456789012:key/1234abcd' does not exist",
        None,
    ),
    ("get_object", "KMS.AccessDeniedException", 400, KMS_DENIED, None),
    (
        "get_object",
        "KMS.KeyUnavailableException",
        500,
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd is unavailable.",
        None,
    ),
    # transient: handed back
    ("get_object", "SlowDown", 503, "Please reduce your request rate.", None),
    ("get_object", "InternalError", 500, "We encountered an internal error. Please try again.", None),
]


@pytest.mark.parametrize(("operation", "code", "status", "message", "reason"), S3_ERRORS)
def test_s3_error_codes(world, operation, code, status, message, reason):
    stubber = Stubber(world.s3)
    stubber.add_client_error(
        operation, service_error_code=code, service_message=message, http_status_code=status
    )
    with stubber:
        size = None if operation == "head_object" else 10  # no size in the event: HeadObject first
        loaded = _loader(world).load(ImageRef("b", "k.jpg", size=size))
    if reason is None:
        assert loaded.error is None, loaded.error
        assert code in loaded.retryable
    else:
        assert loaded.error.reason == reason
        assert loaded.retryable is None


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("NoSuchKey", "404", NOT_FOUND),
        ("", "404", NOT_FOUND),
        ("InvalidObjectState", "403", UNAVAILABLE),
        ("AccessDenied", "403", DENIED),
        ("", "403", DENIED),
        ("KMS.KMSInvalidStateException", "400", DENIED),
        ("KMS.NotFoundException", "404", DENIED),  # the key is missing, not the object
        ("KMS.ThrottlingException", "400", DENIED),
        ("SlowDown", "503", TRANSIENT),
        ("RequestTimeout", "400", TRANSIENT),
        ("ExpiredToken", "400", TRANSIENT),  # the SDK refreshes the job role's credentials
        ("SomethingNew", "400", TRANSIENT),  # unknown codes are handed back, never an error row
    ],
)
def test_classify_s3_error(code, status, kind):
    assert classify_s3_error(code, status) == kind


def test_a_kms_denial_says_what_to_grant(world):
    stubber = Stubber(world.s3)
    stubber.add_client_error(
        "get_object", service_error_code="AccessDenied", service_message=KMS_DENIED, http_status_code=403
    )
    with stubber:
        loaded = _loader(world).load(ImageRef("b", "k.jpg", size=10))
    assert "kms:Decrypt" in loaded.retryable
    assert "dead-letter queue" in loaded.retryable
