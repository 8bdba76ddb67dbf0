"""Helpers to run the face indexing worker as a real subprocess against the moto server.

Used by tests/worker (and usable by the demo/soak scripts): model-pack folders built from
../shared/assets with symlinks, S3 event bodies in every shape the worker parses, a subprocess
wrapper that collects the worker's JSON log lines, and a reader for the Parquet files moto holds.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

REPO = Path(__file__).resolve().parents[2]
WORKER_DIR = REPO / "worker"

SMALL_PACK = ("det_500m.onnx", "mobilefacenet_128d_dynbatch.onnx")
ODD_PACK = ("scrfd_500m_bnkps_640.onnx", "mobilefacenet_128d_static.onnx")


def make_model_pack(folder: Path, assets: Path, files: Iterable[str] = SMALL_PACK) -> Path:
    """A FACEIDX_MODEL_DIR-shaped folder of symlinks to the asset models (nothing is copied)."""
    from faceidx_dev.local.demo_inputs import link_model_pack

    return link_model_pack(assets / "models", folder, files)


def s3_record(bucket: str, key: str, size: int | None = None, etag: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": quote_plus(key), "sequencer": "0062D1C5B7E2A1F2C3"}
    if size is not None:
        obj["size"] = size
    if etag is not None:
        obj["eTag"] = etag
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": obj},
    }


def s3_event_body(records: Iterable[dict[str, Any]]) -> str:
    return json.dumps({"Records": list(records)})


def sns_wrap(body: str) -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "7a1a4cbd-0000-0000-0000-000000000000",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:uploads",
            "Message": body,
        }
    )


def eventbridge_body(bucket: str, key: str, size: int | None = None, etag: str | None = None) -> str:
    obj: dict[str, Any] = {"key": key}
    if size is not None:
        obj["size"] = size
    if etag is not None:
        obj["etag"] = etag
    return json.dumps(
        {
            "version": "0",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "detail": {"bucket": {"name": bucket}, "object": obj, "reason": "PutObject"},
        }
    )


TEST_EVENT_BODY = json.dumps(
    {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-01-01T00:00:00.000Z", "Bucket": "uploads"}
)


def worker_env(
    *,
    moto_url: str,
    queue_url: str,
    output_uri: str,
    model_dir: Path,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "AIRFLOW", "FACEIDX_", "AWS_BATCH"))
    }
    env.update(
        {
            "FACEIDX_QUEUE_URL": queue_url,
            "FACEIDX_OUTPUT_URI": output_uri,
            "FACEIDX_MODEL_DIR": str(model_dir),
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "FACEIDX_MAX_IDLE_SECONDS": "2",
            "FACEIDX_RECEIVE_WAIT_SECONDS": "1",
            "FACEIDX_FLUSH_MAX_SECONDS": "1",
            "FACEIDX_DOWNLOAD_THREADS": "2",
            "FACEIDX_ORT_THREADS": "1",
            "FACEIDX_METRICS_ENABLED": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


@dataclass
class WorkerRun:
    returncode: int
    lines: list[dict[str, Any]]
    text_lines: list[str]
    stderr: str

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == name]

    @property
    def summary(self) -> dict[str, Any]:
        found = self.events("summary")
        assert len(found) == 1, f"expected one summary line, got {len(found)}:\n{self.describe()}"
        return found[0]

    @property
    def emf(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if "_aws" in line]

    def messages(self) -> list[str]:
        return [str(line.get("message", "")) for line in self.events("log")]

    def describe(self) -> str:
        return "\n".join(self.text_lines[-60:]) + "\n--- stderr ---\n" + self.stderr[-4000:]


@dataclass
class WorkerProcess:
    """The worker started exactly as the job definition does: ``python run_detection_service.py``
    (or ``script``, a stand-in entry point that wraps it, run from the same folder)."""

    env: dict[str, str]
    script: Path | None = None
    process: subprocess.Popen[str] | None = None
    text_lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None
    _stderr: list[str] = field(default_factory=list)

    def start(self) -> WorkerProcess:
        self.process = subprocess.Popen(
            [sys.executable, str(self.script or "run_detection_service.py")],
            cwd=WORKER_DIR,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        threading.Thread(target=self._read_err, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.text_lines.append(line.rstrip("\n"))

    def _read_err(self) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)

    def lines(self) -> list[dict[str, Any]]:
        parsed = []
        for text in list(self.text_lines):
            try:
                parsed.append(json.loads(text))
            except ValueError:
                parsed.append({"event": "NOT_JSON", "text": text})
        return parsed

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.lines()):
                return True
            if self.process is not None and self.process.poll() is not None:
                return predicate(self.lines())
            time.sleep(0.05)
        return False

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 120) -> WorkerRun:
        assert self.process is not None
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"worker did not exit within {timeout}s:\n" + "\n".join(self.text_lines[-40:])
            )
        if self._reader is not None:
            self._reader.join(5)
        time.sleep(0.05)
        return WorkerRun(self.process.returncode, self.lines(), list(self.text_lines), "".join(self._stderr))


def run_worker(env: dict[str, str], timeout: float = 120) -> WorkerRun:
    return WorkerProcess(env).start().wait(timeout)


def read_output_table(s3: Any, bucket: str, prefix: str = "") -> Any:
    """All Parquet files under ``s3://bucket/prefix`` as one pyarrow table (plus their keys)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    keys = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    tables = [
        pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
        for key in sorted(keys)
        if key.endswith(".parquet")
    ]
    if not tables:
        return None, keys
    return pa.concat_tables(tables), keys


def queue_counts(sqs: Any, queue_url: str) -> tuple[int, int]:
    """(visible, in flight) messages."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )
