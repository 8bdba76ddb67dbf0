"""SqsQueueDepthSensor reads depth only: every seeded message can still be received afterwards."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred

from faceidx.aws.sqs import SqsQueueDepthError
from faceidx.indexing.sensors import SqsQueueDepthSensor, SqsQueueDepthSensorError
from faceidx.indexing.triggers import SqsQueueDepthTrigger


def _seed(moto, count: int) -> str:
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName="work", Attributes={"VisibilityTimeout": "1800"})["QueueUrl"]
    for start in range(0, count, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(min(10, count - start))],
        )
    return url


def _receive_all(moto, url: str) -> set[str]:
    sqs = moto.client("sqs")
    bodies: set[str] = set()
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            return bodies
        bodies.update(m["Body"] for m in got)


def _sensor(url: str, **kwargs) -> SqsQueueDepthSensor:
    return SqsQueueDepthSensor(task_id="sense_depth", queue_url=url, aws_conn_id="aws_default", **kwargs)


@pytest.mark.parametrize("deferrable", [True, False])
def test_poke_never_consumes(moto, deferrable):
    url = _seed(moto, 37)
    sensor = _sensor(url, deferrable=deferrable)
    for _ in range(3):
        result = sensor.poke({})
        assert result.is_done
        assert result.xcom_value == {"visible": 37, "in_flight": 0, "delayed": 0}
    assert _receive_all(moto, url) == {f"m{i}" for i in range(37)}


def test_deferrable_returns_at_once_when_backlog_is_there(moto):
    url = _seed(moto, 12)
    assert _sensor(url, min_depth=10).execute({}) == {"visible": 12, "in_flight": 0, "delayed": 0}
    assert len(_receive_all(moto, url)) == 12


def test_deferrable_defers_to_async_trigger_below_min_depth(moto):
    url = _seed(moto, 3)
    sensor = _sensor(url, min_depth=5, wait_timeout="90", poke_interval=7)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, SqsQueueDepthTrigger)
    assert trigger.min_depth == 5
    assert trigger.poke_interval == 7
    assert trigger.queue_url == url
    assert sensor.timeout == 90


def test_reschedule_mode_when_not_deferrable(moto):
    assert _sensor("http://x", deferrable=False).mode == "reschedule"


def test_trigger_timeout_event_skips_the_task():
    sensor = _sensor("http://queue")
    event = {"status": "timeout", "depth": {"visible": 0, "in_flight": 0, "delayed": 0}, "message": "empty"}
    with pytest.raises(AirflowSkipException, match="Nothing to index"):
        sensor.execute_complete({}, event)


def test_trigger_error_event_fails_even_with_soft_fail():
    sensor = _sensor("http://queue")
    assert sensor.soft_fail
    with pytest.raises(SqsQueueDepthSensorError, match="does not exist"):
        sensor.execute_complete({}, {"status": "error", "depth": None, "message": "queue does not exist"})


def test_missing_queue_says_what_to_do(moto):
    sensor = _sensor(f"{moto.url}/123456789012/missing")
    with pytest.raises(SqsQueueDepthError, match="Run the face_infra_bootstrap DAG"):
        sensor.poke({})


def test_empty_queue_url_says_how_to_configure_it():
    with pytest.raises(SqsQueueDepthSensorError, match="faceidx_queue_url"):
        _sensor("").execute({})
