"""Erasure with the index on S3 (a moto server): Delta table, Lance vectors, crops and the receipt."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from faceidx.erasure.forget import ForgetTarget, forget
from faceidx.store.location import IndexLocation
from faceidx.store.table import FaceTable
from faceidx.store.vectors import VectorIndex
from faceidx_worker.rows import face_id
from tests.plugins.faceidx.erasure.test_forget import BUCKET, LANDING_SCHEMA, V1, image_rows, unit

OUTPUT_BUCKET = "faceidx-index"


@dataclass
class SeparateMoto:
    """A moto server in its own process: delta-rs and Lance hold the GIL while they wait on S3, so an
    in-process (threaded) moto could never answer them."""

    url: str

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture(scope="module")
def moto() -> Iterator[SeparateMoto]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield SeparateMoto(url)
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def location(moto):
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=OUTPUT_BUCKET)
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    return IndexLocation(
        output_uri=f"s3://{OUTPUT_BUCKET}/idx",
        region="us-east-1",
        endpoint_url=moto.url,
        credentials=credentials,
    )


def _keys(moto, prefix):
    listing = moto.client("s3").list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def test_forget_an_image_on_s3(moto, location):
    s3 = moto.client("s3")
    crop = f"s3://{OUTPUT_BUCKET}/idx/crops/a0.jpg"
    s3.put_object(Bucket=OUTPUT_BUCKET, Key="idx/crops/a0.jpg", Body=b"crop")
    rows = image_rows("a.jpg", unit(1, 1), crops=[crop]) + image_rows("b.jpg", unit(2, 2))
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=LANDING_SCHEMA), buffer)
    s3.put_object(Bucket=OUTPUT_BUCKET, Key="idx/faces/dt=2026-11-20/part-1.parquet", Body=buffer.getvalue())
    table = FaceTable.open(location)
    table.ingest()
    index = VectorIndex(location)
    index.sync(table, V1)

    receipt = forget(location, ForgetTarget("image", f"s3://{BUCKET}/a.jpg"), reason="r", actor="ops")

    assert table.read(columns=["image_key"])["image_key"].to_pylist() == ["b.jpg", "b.jpg"]
    gone = face_id(BUCKET, "a.jpg", "e1", V1, 0)
    found = {m.face_id for ms in index.search(unit(1, 1), model_version=V1, k=5) for m in ms}
    assert gone not in found
    assert _keys(moto, "idx/crops/") == []
    (key,) = _keys(moto, "idx/receipts/forget/")
    saved = json.loads(s3.get_object(Bucket=OUTPUT_BUCKET, Key=key)["Body"].read())
    assert receipt.uri == f"s3://{OUTPUT_BUCKET}/{key}"
    assert saved["removed"]["crops"] == [crop]
    assert saved["removed"]["table_rows"] == {V1: 1}
    assert saved["verification"]["passed"] is True


@pytest.mark.parametrize("step", ["intent", "vectors", "history", "receipt"])
def test_an_erasure_on_s3_killed_after_a_step_is_finished_by_a_rerun(moto, location, step):
    """The same kill-and-rerun as on a local folder (test_kill_and_rerun.py), with the index, the lease
    and the intent records on S3: ``faceidx forget`` is SIGKILLed right after ``step``, then run again."""
    import os
    from pathlib import Path

    s3 = moto.client("s3")
    prefix = f"run-{step}"
    location = IndexLocation(
        output_uri=f"s3://{OUTPUT_BUCKET}/{prefix}",
        region=location.region,
        endpoint_url=location.endpoint_url,
        credentials=location.credentials,
    )
    crop = f"s3://{OUTPUT_BUCKET}/{prefix}/crops/a0.jpg"
    s3.put_object(Bucket=OUTPUT_BUCKET, Key=f"{prefix}/crops/a0.jpg", Body=b"crop")
    rows = image_rows("a.jpg", unit(1, 1), crops=[crop]) + image_rows("b.jpg", unit(2, 2))
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=LANDING_SCHEMA), buffer)
    s3.put_object(
        Bucket=OUTPUT_BUCKET, Key=f"{prefix}/faces/dt=2026-11-20/part-1.parquet", Body=buffer.getvalue()
    )
    table = FaceTable.open(location)
    table.ingest()
    VectorIndex(location).sync(table, V1)

    repo = Path(__file__).resolve().parents[4]
    env = {
        **os.environ,
        "FACEIDX_OUTPUT_URI": location.output_uri,
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "FACEIDX_ACTOR": "ops",
        "FACEIDX_LEASE_TTL_SECONDS": "2",
        "PYTHONPATH": os.pathsep.join(str(repo / p) for p in ("plugins", "worker")),
    }
    env.pop("FACEIDX_VECTORS_URI", None)
    command = [sys.executable, "-m", "faceidx.cli", "forget", "--image", f"s3://{BUCKET}/a.jpg", "--json"]
    killed = subprocess.run(
        command,
        env={**env, "FACEIDX_FAULT_KILL_AT": step},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    receipt = json.loads(rerun.stdout)
    assert receipt["verification"]["passed"] is True

    (key,) = _keys(moto, f"{prefix}/receipts/forget/")  # one receipt, named after the intent
    assert key.endswith(f"-{receipt['id']}.json")
    intents = [
        json.loads(s3.get_object(Bucket=OUTPUT_BUCKET, Key=k)["Body"].read())
        for k in _keys(moto, f"{prefix}/table/_faceidx/intents/erasure/")
    ]
    assert [i["state"] for i in intents] == ["finished"]
    table = FaceTable.open(location)
    assert table.read(columns=["image_key"])["image_key"].to_pylist() == ["b.jpg", "b.jpg"]
    gone = face_id(BUCKET, "a.jpg", "e1", V1, 0)
    found = {m.face_id for ms in VectorIndex(location).search(unit(1, 1), model_version=V1, k=5) for m in ms}
    assert gone not in found
    assert _keys(moto, f"{prefix}/crops/") == []
