"""only_missing with the index on S3: the face table (delta-rs) and the landing files (the S3 hook).

moto runs in its own process (``tests.support.moto_process``): delta-rs cannot talk to the ``moto``
fixture's server, which runs on a thread of this process.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from faceidx.aws.s3 import ReindexS3Hook
from faceidx.aws.sqs import SqsWorkQueueHook
from faceidx.reindex.selection import Interval
from faceidx.reindex.tasks import ReindexRequest, queue_interval
from faceidx.store.location import IndexLocation
from faceidx.store.table import FaceTable
from tests.support.moto_process import moto_server_process
from tests.support.moto_server import MotoEndpoint, aws_connection_uri_json
from tests.support.reindex_moto import (
    INPUT_BUCKET,
    OUTPUT_BUCKET,
    create_resources,
    drain,
    index_file_bytes,
    put,
)

NOW = datetime.now(UTC)
PARAMS = {"prefix": "p/", "select_by": "prefix", "suffixes": [".jpg"], "only_missing": True}


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server_process() as url:
        yield url


@pytest.fixture
def moto(moto_url, monkeypatch) -> MotoEndpoint:
    endpoint = MotoEndpoint(url=moto_url)
    endpoint.reset()
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection_uri_json(moto_url))
    return endpoint


def _land(moto: MotoEndpoint, name: str, images: list[tuple[str, str, str]]) -> str:
    key = f"v1/faces/dt={NOW:%Y-%m-%d}/{name}"
    body = index_file_bytes(images, indexed_at=NOW)
    moto.client("s3").put_object(Bucket=OUTPUT_BUCKET, Key=key, Body=body)
    return key


def test_the_face_table_and_the_pending_landing_files_on_s3_both_count(moto):
    queue_url = create_resources(moto)
    ingested, pending, errored, missing = (put(moto, f"p/{name}.jpg") for name in "abcd")
    table_location = IndexLocation(
        output_uri=f"s3://{OUTPUT_BUCKET}/v1",
        endpoint_url=moto.url,
        region="us-east-1",
        credentials={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )
    _land(moto, "part-1.parquet", [(ingested.key, ingested.etag, "ok")])
    assert FaceTable.open(table_location).ingest().files_ingested == 1  # face_table's ingest
    _land(moto, "part-2.parquet", [(pending.key, pending.etag, "ok"), (errored.key, errored.etag, "error")])

    request = ReindexRequest.from_params(
        PARAMS, bucket=INPUT_BUCKET, queue_url=queue_url, output_uri=f"s3://{OUTPUT_BUCKET}/v1/"
    )
    summary = queue_interval(
        request,
        Interval(NOW - timedelta(days=1), NOW + timedelta(days=1)),
        origin={"origin": "face_reindex"},
        s3=ReindexS3Hook(aws_conn_id="aws_default"),
        sqs=SqsWorkQueueHook(aws_conn_id="aws_default"),
        region="us-east-1",
        table_location=table_location,
    )
    queued = sorted(body["Records"][0]["s3"]["object"]["key"] for body in drain(moto, queue_url))
    assert queued == sorted([errored.key, missing.key])
    assert summary["skipped"]["already_indexed"] == 2
    assert summary["index_files_read"] == 1  # the pending file; the ingested one is gone from faces/
    assert summary["table_version"] == 1
