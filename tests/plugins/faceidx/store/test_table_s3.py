"""FaceTable and the DuckDB view on S3 (a moto server in its own process).

delta-rs holds the GIL while it waits on S3, so a moto server running on a thread of the test process
never answers it: the server runs as a separate process here (``tests.support.moto_process``).
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from faceidx.store.duckdb_views import connect
from faceidx.store.location import IndexLocation
from faceidx.store.table import FaceTable
from tests.plugins.faceidx.store.table_builders import Image, later, write_bytes, write_landing
from tests.support.moto_process import moto_server_process


@pytest.fixture(scope="module")
def moto_process() -> Iterator[str]:
    with moto_server_process() as url:
        yield url


@pytest.fixture
def location(moto_process: str, request) -> IndexLocation:
    bucket = "index-" + request.node.name.replace("_", "-")[:40].lower()
    boto3.client("s3", endpoint_url=moto_process, region_name="us-east-1").create_bucket(Bucket=bucket)
    return IndexLocation(
        output_uri=f"s3://{bucket}/prod",
        endpoint_url=moto_process,
        region="us-east-1",
        credentials={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )


def _keys(location: IndexLocation, prefix: str) -> list[str]:
    bucket = location.output_uri.removeprefix("s3://").split("/", 1)[0]
    answer = location.s3_client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in answer.get("Contents", []))


def test_ingest_compact_purge_and_duckdb_on_s3(location):
    write_landing(location, [Image("a.jpg"), Image("b.jpg")])
    write_landing(location, [Image("a.jpg", job="again", at=later(5))])
    write_bytes(location, f"{location.landing_uri}/dt=2026-11-20/part-junk.parquet", b"junk")
    table = FaceTable.open(location)
    report = table.ingest()
    assert report.rows_inserted == 4
    assert report.duplicates_dropped == 2
    assert list(report.files_rejected) == [f"{location.landing_uri}/dt=2026-11-20/part-junk.parquet"]
    assert _keys(location, "prod/faces/") == []  # the prefix of faces-rejected/ is not a landing file
    assert _keys(location, "prod/faces-rejected/") == [
        "prod/faces-rejected/dt=2026-11-20/part-junk.parquet",
        "prod/faces-rejected/dt=2026-11-20/part-junk.parquet.reason.json",
    ]
    assert table.ingest().noop

    write_landing(location, [Image("c.jpg", at=later(9))])
    table.ingest()
    assert table.compact("2026-11-20").files_after == 1
    table.delete("image_key = 'a.jpg'")
    table.purge_history()
    data = [key for key in _keys(location, "prod/table/faces/") if key.endswith(".parquet")]
    assert len(data) == 1  # the compacted file minus a.jpg; no change feed file, no old version
    rows = connect(location).sql("SELECT image_key, count(*) FROM faces GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [("b.jpg", 2), ("c.jpg", 2)]
