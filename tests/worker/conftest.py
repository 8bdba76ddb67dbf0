"""Fixtures for the worker tests: model packs from ../shared/assets and a moto world (queue + buckets)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.worker_harness import ODD_PACK, SMALL_PACK, make_model_pack

INPUT_BUCKET = "faceidx-uploads"
OUTPUT_BUCKET = "faceidx-index"


@pytest.fixture(scope="session")
def expected_faces(assets_dir: Path) -> dict[str, Any]:
    return json.loads((assets_dir / "expected.json").read_text())["images"]


@pytest.fixture(scope="session")
def small_pack(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """det_500m + the dynamic-batch MobileFaceNet: the same code paths as buffalo_l, 128-d."""
    return make_model_pack(tmp_path_factory.mktemp("packs") / "small_pack", assets_dir, SMALL_PACK)


@pytest.fixture(scope="session")
def odd_pack(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixed-640 detector + the batch-1-only recognizer."""
    return make_model_pack(tmp_path_factory.mktemp("packs") / "odd_pack", assets_dir, ODD_PACK)


@dataclass
class MotoWorld:
    url: str
    sqs: Any
    s3: Any
    queue_url: str
    dlq_url: str
    input_bucket: str = INPUT_BUCKET
    output_bucket: str = OUTPUT_BUCKET

    def put_image(self, key: str, data: bytes) -> dict[str, Any]:
        response = self.s3.put_object(Bucket=self.input_bucket, Key=key, Body=data)
        return {"size": len(data), "etag": response["ETag"].strip('"')}

    def send(self, body: str) -> str:
        return self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)["MessageId"]


@pytest.fixture
def world(moto: Any) -> MotoWorld:
    sqs = moto.client("sqs")
    s3 = moto.client("s3")
    dlq_url = sqs.create_queue(QueueName="faceidx-work-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName="faceidx-work",
        Attributes={
            "VisibilityTimeout": "60",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
        },
    )["QueueUrl"]
    s3.create_bucket(Bucket=INPUT_BUCKET)
    s3.create_bucket(Bucket=OUTPUT_BUCKET)
    return MotoWorld(url=moto.url, sqs=sqs, s3=s3, queue_url=queue_url, dlq_url=dlq_url)
