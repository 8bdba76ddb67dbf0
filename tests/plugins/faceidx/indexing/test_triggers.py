"""SqsQueueDepthTrigger against the moto server through the async (aiobotocore) client."""

from __future__ import annotations

import asyncio
import time

from faceidx.indexing.triggers import SqsQueueDepthTrigger


def _events(trigger: SqsQueueDepthTrigger) -> list[dict]:
    async def collect() -> list[dict]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def _trigger(url: str, min_depth: int, seconds: float) -> SqsQueueDepthTrigger:
    return SqsQueueDepthTrigger(
        queue_url=url,
        min_depth=min_depth,
        poke_interval=0.2,
        deadline=time.time() + seconds,
        aws_conn_id="aws_default",
    )


def test_success_when_backlog_arrives(moto):
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName="work")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="one")
    events = _events(_trigger(url, 1, 5))
    assert events == [
        {
            "status": "success",
            "depth": {"visible": 1, "in_flight": 0, "delayed": 0},
            "message": events[0]["message"],
        }
    ]
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "one"


def test_timeout_on_empty_queue(moto):
    url = moto.client("sqs").create_queue(QueueName="work")["QueueUrl"]
    (event,) = _events(_trigger(url, 1, 0.5))
    assert event["status"] == "timeout"
    assert "stayed below min_depth 1" in event["message"]


def test_error_event_for_missing_queue(moto):
    (event,) = _events(_trigger(f"{moto.url}/123456789012/nope", 1, 2))
    assert event["status"] == "error"
    assert "face_infra_bootstrap" in event["message"]


def test_serialize_round_trip():
    trigger = _trigger("http://q", 3, 10)
    path, kwargs = trigger.serialize()
    assert path == "faceidx.indexing.triggers.SqsQueueDepthTrigger"
    assert SqsQueueDepthTrigger(**kwargs).serialize() == (path, kwargs)
