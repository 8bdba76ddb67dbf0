"""S3 URIs and ETags, parsed one way for every feature (the worker, a separate image, has its own)."""

from __future__ import annotations


def split_s3_uri(uri: str) -> tuple[str, str] | None:
    """``s3://bucket/some/prefix/`` -> ``("bucket", "some/prefix")`` (no slash at either end of the
    prefix); ``None`` when ``uri`` is not an ``s3://`` URI with a bucket."""
    text = uri.strip()
    if not text.startswith("s3://"):
        return None
    bucket, _, prefix = text[len("s3://") :].partition("/")
    return (bucket, prefix.strip("/")) if bucket else None


def normalise_etag(etag: str | None) -> str | None:
    """``"abc"`` -> ``abc``; S3 lists ETags quoted, events and the index hold them bare."""
    if etag is None:
        return None
    bare = etag.strip().strip('"')
    return bare or None
