"""S3 for faceidx: listings of the input bucket and reads of the index, through ``S3Hook``.

It takes the Airflow connection (``aws_default``: region, credentials, and for local runs the endpoint
URL in its extra) and turns AWS errors into messages that name the resource and the fix.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from botocore.exceptions import ClientError

from faceidx.aws.errors import AwsCallError, explain
from faceidx.aws.parsing import ListedObject

log = logging.getLogger(__name__)

# Index files up to this size are fetched in one GET; larger ones by ranges (footer + 4 columns).
WHOLE_OBJECT_BYTES = 8 * 1024 * 1024


# face_reindex's name for the AWS layer's error (raised by this hook and by the SQS hook's sends).
ReindexAwsError = AwsCallError


def _explain(err: ClientError, operation: str, resource: str, fixes: dict[str, str], default_fix: str) -> str:
    return explain(err, operation, resource, fix=default_fix, fixes=fixes)


class RangeReader(io.RawIOBase):
    """A seekable, read-only file over ranged reads: ``fetch(start, end_inclusive) -> bytes``.

    Lets pyarrow read a Parquet footer and a few column chunks of a large S3 object without
    downloading the rest. Small objects are better fetched whole (``ReindexS3Hook.open_index_file``).
    """

    def __init__(self, fetch: Callable[[int, int], bytes], size: int, name: str = "") -> None:
        super().__init__()
        self._fetch = fetch
        self._size = size
        self._position = 0
        self.name = name
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise ValueError(f"negative seek position {position} in {self.name}")
        self._position = position
        return position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._position >= self._size or len(view) == 0:
            return 0
        end = min(self._position + len(view), self._size) - 1
        data = self._fetch(self._position, end)
        count = len(data)
        view[:count] = data
        self._position += count
        self.requests += 1
        return count


class ReindexS3Hook(S3Hook):
    """Lists candidate images and opens index files, honouring the connection's endpoint and region."""

    def _bucket_arn(self, bucket: str) -> str:
        """The bucket's ARN in the client's partition (``aws``, ``aws-cn``, ``aws-us-gov``)."""
        return f"arn:{self.get_conn().meta.partition}:s3:::{bucket}"

    def iter_objects(self, bucket: str, prefix: str) -> Iterator[ListedObject]:
        """Every object under ``prefix`` (paginated; nothing is held in memory)."""
        try:
            for item in self.iter_file_metadata(prefix=prefix, bucket_name=bucket):
                yield ListedObject.from_listing(item)
        except ClientError as err:
            raise ReindexAwsError(
                _explain(
                    err,
                    "ListObjectsV2",
                    f"s3://{bucket}/{prefix}",
                    {
                        "denied": f"Grant s3:ListBucket on {self._bucket_arn(bucket)} to the Airflow AWS "
                        "connection.",
                        "missing": "Fix the bucket Param (or the Airflow Variable faceidx_input_bucket).",
                    },
                    "Check the bucket Param and the aws_default connection, then rerun the run (it is safe).",
                )
            ) from err

    def list_index_files(self, bucket: str, prefix: str) -> list[tuple[str, int]]:
        """``(key, size)`` of every ``.parquet`` object under ``prefix`` (the index's ``faces/``)."""
        try:
            return [
                (str(item["Key"]), int(item.get("Size", 0)))
                for item in self.iter_file_metadata(prefix=prefix, bucket_name=bucket)
                if str(item["Key"]).endswith(".parquet")
            ]
        except ClientError as err:
            raise ReindexAwsError(
                _explain(
                    err,
                    "ListObjectsV2",
                    f"s3://{bucket}/{prefix}",
                    {
                        "denied": f"Grant s3:ListBucket on {self._bucket_arn(bucket)} to the "
                        "Airflow AWS connection, or turn only_missing off.",
                        "missing": "Fix the output_uri Param (or the Airflow Variable faceidx_output_uri).",
                    },
                    "Check output_uri and the aws_default connection, or turn only_missing off.",
                )
            ) from err

    def open_index_file(self, bucket: str, key: str, size: int) -> Any:
        """A file-like pyarrow can read: the whole object when small, ranged reads otherwise."""
        client = self.get_conn()

        def fetch(start: int, end: int) -> bytes:
            try:
                response = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")
            except ClientError as err:
                raise ReindexAwsError(
                    _explain(
                        err,
                        "GetObject",
                        f"s3://{bucket}/{key}",
                        {
                            "denied": f"Grant s3:GetObject on {self._bucket_arn(bucket)}/* to the Airflow "
                            "AWS connection."
                        },
                        "Check output_uri, or turn only_missing off.",
                    )
                ) from err
            return bytes(response["Body"].read())

        if size <= WHOLE_OBJECT_BYTES:
            data = fetch(0, max(size - 1, 0)) if size else b""
            buffer = io.BytesIO(data)
            buffer.name = f"s3://{bucket}/{key}"  # type: ignore[misc]
            return buffer
        return RangeReader(fetch, size, name=f"s3://{bucket}/{key}")
