"""Seeding SQS queues on the in-process moto server."""

from __future__ import annotations

from tests.support.moto_server import ACCOUNT_ID, REGION, MotoEndpoint


def create_queue(moto: MotoEndpoint, name: str = "faceidx-work", visibility: int = 1800) -> str:
    return moto.client("sqs").create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility)})[
        "QueueUrl"
    ]


def seed_messages(queue_url: str, count: int, body: str = '{"Records": []}') -> None:
    """Put ``count`` messages straight into moto's backend (the HTTP API would take minutes for 25k)."""
    import uuid

    from moto.sqs.models import Message, sqs_backends

    queue = sqs_backends[ACCOUNT_ID][REGION].get_queue(queue_url.rstrip("/").rsplit("/", 1)[-1])
    with queue._messages_lock:
        queue._messages.extend(Message(str(uuid.uuid4()), body) for _ in range(count))
