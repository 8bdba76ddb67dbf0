"""The AWS side of face_reindex: S3 listings and index reads through ``S3Hook``, sends through ``SqsHook``.

Both hooks take the Airflow connection (``aws_default``: region, credentials, and for local runs the
endpoint URL in its extra) and turn AWS errors into messages that name the resource and the fix.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.hooks.sqs import SqsHook
from botocore.exceptions import ClientError

from faceidx.aws.errors import explain
from faceidx.reindex.events import EntryFailure, classify_batch_response
from faceidx.reindex.index import IndexLocation, RangeReader
from faceidx.reindex.selection import ListedObject

log = logging.getLogger(__name__)

# Index files up to this size are fetched in one GET; larger ones by ranges (footer + 4 columns).
WHOLE_OBJECT_BYTES = 8 * 1024 * 1024


class ReindexAwsError(RuntimeError):
    """An AWS call failed; the message names the call, the resource, AWS's answer and the fix."""


def _explain(err: ClientError, operation: str, resource: str, fixes: dict[str, str], default_fix: str) -> str:
    return explain(err, operation, resource, fix=default_fix, fixes=fixes)


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

    def list_index_files(self, location: IndexLocation) -> list[tuple[str, int]]:
        """``(key, size)`` of every ``.parquet`` object under ``<prefix>/faces/``."""
        assert location.bucket is not None
        try:
            return [
                (str(item["Key"]), int(item.get("Size", 0)))
                for item in self.iter_file_metadata(prefix=location.faces_prefix, bucket_name=location.bucket)
                if str(item["Key"]).endswith(".parquet")
            ]
        except ClientError as err:
            raise ReindexAwsError(
                _explain(
                    err,
                    "ListObjectsV2",
                    location.describe(),
                    {
                        "denied": f"Grant s3:ListBucket on {self._bucket_arn(location.bucket)} to the "
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


@dataclass
class SendReport:
    """What happened to a list of entries: how many SQS accepted, and the ones it refused for good."""

    sent: int = 0
    failed: list[EntryFailure] = field(default_factory=list)
    retried: int = 0


class ReindexSqsHook(SqsHook):
    """SendMessageBatch with per-entry failure handling. Nothing here receives or deletes."""

    max_attempts = 4
    backoff_seconds = 0.5  # doubled after each attempt: 0.5, 1, 2 s

    def send_batch(
        self, queue_url: str, entries: Sequence[dict[str, str]], sleep: Callable[[float], None] = time.sleep
    ) -> SendReport:
        """Send up to 10 entries; re-send the entries SQS failed on its side (throttling, internal
        errors) up to ``max_attempts`` times with a short backoff. Sender faults are not retried."""
        max_attempts, backoff_seconds = self.max_attempts, self.backoff_seconds
        report = SendReport()
        pending = list(entries)
        for attempt in range(1, max_attempts + 1):
            try:
                response = self.conn.send_message_batch(QueueUrl=queue_url, Entries=pending)
            except ClientError as err:
                raise ReindexAwsError(
                    _explain(
                        err,
                        "SendMessageBatch",
                        queue_url,
                        {
                            "denied": f"Grant sqs:SendMessage on {queue_url} to the Airflow AWS connection.",
                            "missing": "Run face_infra_bootstrap to create the queue, or fix the queue_url "
                            "Param / faceidx_queue_url Variable.",
                        },
                        "Rerun the run: messages already sent are duplicates the index removes.",
                    )
                ) from err
            outcome = classify_batch_response([e["Id"] for e in pending], response)
            report.sent += len(outcome.succeeded)
            report.failed.extend(outcome.permanent)
            if not outcome.retryable:
                return report
            if attempt == max_attempts:
                report.failed.extend(outcome.retryable)
                return report
            retry_ids = {failure.entry_id for failure in outcome.retryable}
            pending = [entry for entry in pending if entry["Id"] in retry_ids]
            report.retried += len(pending)
            delay = backoff_seconds * 2 ** (attempt - 1)
            log.warning(
                "SQS refused %s of the entries for %s (first: %s %s); re-sending them in %.1f s "
                "(attempt %s of %s)",
                len(pending),
                queue_url,
                outcome.retryable[0].code,
                outcome.retryable[0].message,
                delay,
                attempt + 1,
                max_attempts,
            )
            sleep(delay)
        return report
