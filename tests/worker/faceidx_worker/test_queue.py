"""SqsWorkQueue against the moto server: batches of 10, per-entry failures, visibility changes."""

from __future__ import annotations

import time

from botocore.stub import Stubber

from faceidx_worker.queue import QueueMessage, SqsWorkQueue
from tests.support.worker_harness import queue_counts


def _queue(world, **kwargs):
    return SqsWorkQueue(world.sqs, world.queue_url, wait_seconds=0, **kwargs)


def _receive_all(queue, expected):
    got = []
    for _ in range(20):
        got.extend(queue.receive())
        if len(got) >= expected:
            break
    return got


def test_delete_in_batches_of_ten(world):
    for number in range(23):
        world.send(f"m{number}")
    queue = _queue(world)
    messages = _receive_all(queue, 23)
    assert len(messages) == 23
    assert {m.body for m in messages} == {f"m{n}" for n in range(23)}
    assert all(m.receive_count == 1 for m in messages)
    assert queue.delete(messages) == []
    assert queue_counts(world.sqs, world.queue_url) == (0, 0)


def test_release_makes_messages_visible_at_once(world):
    for number in range(12):
        world.send(f"m{number}")
    queue = _queue(world, visibility_timeout=600)
    messages = _receive_all(queue, 12)
    assert queue_counts(world.sqs, world.queue_url) == (0, 12)
    assert queue.release(messages) == []
    assert queue_counts(world.sqs, world.queue_url) == (12, 0)
    again = _receive_all(queue, 12)
    assert {m.receive_count for m in again} == {2}


def test_extend_keeps_a_message_hidden_past_its_first_timeout(world):
    world.send("long job")
    queue = _queue(world, visibility_timeout=1)
    (message,) = queue.receive()
    assert queue.extend([message], 60) == []
    time.sleep(1.5)
    assert queue.receive() == []  # still ours
    assert queue_counts(world.sqs, world.queue_url) == (0, 1)


def test_without_extension_the_message_comes_back(world):
    world.send("short timeout")
    queue = _queue(world, visibility_timeout=1)
    assert len(queue.receive()) == 1
    time.sleep(1.5)
    assert [m.body for m in queue.receive()] == ["short timeout"]


def test_per_entry_failures_are_returned(world):
    world.send("real")
    queue = _queue(world)
    (real,) = queue.receive()
    fake = QueueMessage(message_id="fake", receipt_handle="not-a-receipt-handle", body="")
    stubber = Stubber(world.sqs)
    stubber.add_response(
        "delete_message_batch",
        {
            "Successful": [{"Id": "0"}],
            "Failed": [{"Id": "1", "SenderFault": True, "Code": "ReceiptHandleIsInvalid", "Message": "bad"}],
        },
    )
    with stubber:
        failed = queue.delete([real, fake])
    assert failed == [fake]


def test_max_receive_count_reads_the_redrive_policy(world):
    assert _queue(world).max_receive_count() == 3  # the world's work queue: DLQ after 3 receives
    bare_url = world.sqs.create_queue(QueueName="no-redrive")["QueueUrl"]
    assert SqsWorkQueue(world.sqs, bare_url).max_receive_count() is None
