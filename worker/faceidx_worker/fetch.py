"""Download an announced image from S3 and decode it, turning every per-image failure into a reason.

Three outcomes per image:

* a :class:`~faceidx_worker.images.DecodedImage`;
* an :class:`~faceidx_worker.images.ImageError` (permanent: the image gets an ``error`` row and its
  message is deleted): ``bucket_not_allowed``, ``too_large``, ``not_found``, ``unavailable``,
  ``too_many_pixels``, ``decode_error``;
* a :class:`RetryableImageError`: no row is written and the message is handed back, so SQS
  re-delivers it (and, after ``maxReceiveCount`` receives, moves it to the dead-letter queue). Two
  kinds, both decided by :func:`classify_s3_error`: a *denial* (``AccessDenied`` and other 403s,
  every ``KMS.*`` code S3 relays for an SSE-KMS object: a missing ``kms:Decrypt``, a disabled key, a
  key pending deletion) is a permission or key problem an operator can fix, after which a redrive of
  the dead-letter queue indexes the image; a *transient* failure (throttling, 5xx still failing after
  botocore's retries, a lost connection, any code not listed) may pass by itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from faceidx_worker.events import ImageRef
from faceidx_worker.face_decode import ADAPTIVE, decode_for_faces
from faceidx_worker.images import DecodedImage, ImageError
from faceidx_worker.rows import ErrorReason

_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}
_UNAVAILABLE = {"InvalidObjectState"}  # archived (Glacier / Deep Archive): needs a restore first
# 403s. S3 answers a missing kms:Decrypt with AccessDenied (its message names kms:Decrypt), and relays
# the key's own state as KMS.DisabledException, KMS.NotFoundException, KMS.KMSInvalidStateException
# (pending deletion) and the like, all matched by the prefix.
_DENIED = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "AccountProblem"}
_KMS_PREFIX = "KMS."

NOT_FOUND = "not_found"
UNAVAILABLE = "unavailable"
DENIED = "denied"
TRANSIENT = "transient"


def classify_s3_error(code: str, status: str) -> str:
    """What an S3 error on HeadObject/GetObject means for the image's message.

    ``not_found`` and ``unavailable`` are permanent (an error row; the message is deleted). ``denied``
    and ``transient`` hand the message back (no row; the dead-letter queue after ``maxReceiveCount``).
    """
    if code in _UNAVAILABLE:
        return UNAVAILABLE
    if code in _NOT_FOUND or (status == "404" and not code.startswith(_KMS_PREFIX)):
        return NOT_FOUND
    if code in _DENIED or code.startswith(_KMS_PREFIX) or status == "403":
        return DENIED
    return TRANSIENT


class RetryableImageError(Exception):
    """A transient failure or a denial: hand the message back rather than write an error row."""


@dataclass
class LoadedImage:
    """What the download/decode stage hands to inference for one image."""

    ref: ImageRef
    etag: str | None = None
    image: DecodedImage | None = None
    error: ImageError | None = None
    retryable: str | None = None
    nbytes: int = 0
    download_seconds: float = 0.0
    decode_seconds: float = 0.0


class S3ImageLoader:
    """Fetch + decode one image; thread-safe (boto3 clients are), so a pool of threads shares it."""

    def __init__(
        self,
        s3_client: Any,
        *,
        max_image_bytes: int,
        max_image_pixels: int,
        decode_min_side: int,
        allowed_buckets: Collection[str] | None = None,
        decode_threads: int = 0,
        decode_mode: str = ADAPTIVE,
        det_size: int = 640,
    ) -> None:
        self.s3 = s3_client
        self.max_image_bytes = max_image_bytes
        self.max_image_pixels = max_image_pixels
        self.decode_min_side = decode_min_side
        self.decode_mode = decode_mode
        self.det_size = det_size
        self.allowed_buckets = allowed_buckets
        # Downloads wait on the network and may be many; decoding needs a core. Bounding the decoders
        # leaves the inference thread a core of its own instead of a 1/N share among N decoders.
        self._decode_slots = threading.BoundedSemaphore(decode_threads) if decode_threads > 0 else None

    def load(self, ref: ImageRef) -> LoadedImage:
        result = LoadedImage(ref=ref, etag=ref.etag)
        started = time.perf_counter()
        try:
            data, etag = self.download(ref)
        except ImageError as exc:
            result.error = exc
            return result
        except RetryableImageError as exc:
            result.retryable = str(exc)
            return result
        finally:
            result.download_seconds = time.perf_counter() - started
        result.etag = etag or ref.etag
        result.nbytes = len(data)
        if self._decode_slots is not None:
            self._decode_slots.acquire()
        started = time.perf_counter()
        try:
            result.image = decode_for_faces(
                data,
                max_pixels=self.max_image_pixels,
                mode=self.decode_mode,
                det_size=self.det_size,
                min_side=self.decode_min_side,
            )
        except ImageError as exc:
            result.error = exc
        finally:
            result.decode_seconds = time.perf_counter() - started
            if self._decode_slots is not None:
                self._decode_slots.release()
        return result

    def download(self, ref: ImageRef) -> tuple[bytes, str | None]:
        """The object's bytes and ETag. Size limits are checked before any byte of the body is read."""
        if self.allowed_buckets is not None and ref.bucket not in self.allowed_buckets:
            raise ImageError(
                ErrorReason.BUCKET_NOT_ALLOWED,
                f"s3://{ref.bucket}/{ref.key}: bucket {ref.bucket} is not in FACEIDX_ALLOWED_BUCKETS",
            )
        where = f"s3://{ref.bucket}/{ref.key}"
        size = ref.size
        if size is None:
            head = self._call(where, "HeadObject", self.s3.head_object, Bucket=ref.bucket, Key=ref.key)
            size = int(head.get("ContentLength", 0))
        self._check_size(where, size, "event" if ref.size is not None else "HeadObject")
        response = self._call(where, "GetObject", self.s3.get_object, Bucket=ref.bucket, Key=ref.key)
        body = response["Body"]
        try:
            self._check_size(where, int(response.get("ContentLength", 0)), "GetObject")
            try:
                data = body.read(self.max_image_bytes + 1)
            except (BotoCoreError, OSError) as exc:
                raise RetryableImageError(f"{where}: reading the body failed: {exc}") from None
        finally:
            body.close()
        self._check_size(where, len(data), "downloaded")
        if not data:
            raise ImageError(ErrorReason.DECODE_ERROR, f"{where} is empty (0 bytes)")
        etag = response.get("ETag")
        return data, etag.strip('"') if isinstance(etag, str) else None

    def _check_size(self, where: str, size: int, source: str) -> None:
        if size > self.max_image_bytes:
            raise ImageError(
                ErrorReason.TOO_LARGE,
                f"{where} is {size} bytes ({source}) > FACEIDX_MAX_IMAGE_BYTES {self.max_image_bytes}",
            )

    @staticmethod
    def _call(where: str, operation: str, method: Any, **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            message = str(error.get("Message", ""))
            kind = classify_s3_error(code, status)
            if kind == UNAVAILABLE:
                raise ImageError(
                    ErrorReason.UNAVAILABLE,
                    f"{where}: {operation} says {code} (archived object: restore it first)",
                ) from None
            if kind == NOT_FOUND:
                raise ImageError(
                    ErrorReason.NOT_FOUND, f"{where}: {operation} says {code or status}"
                ) from None
            if kind == DENIED:
                key = "its KMS key refuses" if code.startswith(_KMS_PREFIX) else "access is denied"
                raise RetryableImageError(
                    f"{where}: {operation} says {code or status} {message}".rstrip()
                    + f": {key}, the image itself may be fine. Grant the job role s3:GetObject on the "
                    "bucket and kms:Decrypt on the bucket's KMS key, and check the key is enabled and not "
                    "pending deletion (s3:ListBucket too, or S3 reports a missing key as 403); then redrive "
                    "the dead-letter queue"
                ) from None
            raise RetryableImageError(f"{where}: {operation} failed: {code or status} {message}") from None
        except BotoCoreError as exc:
            raise RetryableImageError(f"{where}: {operation} failed: {exc}") from None
