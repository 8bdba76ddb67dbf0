"""Take the ``s3:TestEvent`` a bucket notification put causes out of the work queue.

After every PutBucketNotificationConfiguration, S3 posts one ``s3:TestEvent`` message to each queue
the configuration names. The workers delete it without work, but on an idle queue it is depth 1: the
next ``face_indexing`` tick would start a GPU job just to delete it. So the bootstrap, which caused
it, deletes it itself:

* only when the queue is otherwise idle (nothing in flight, at most ``IDLE_VISIBLE`` visible): a queue
  with a backlog gets workers anyway, and they delete the test event, so receiving there would only
  add to real messages' receive counts (which lead to the dead-letter queue) for nothing;
* it deletes only ``s3:TestEvent`` bodies for this bucket, and releases every other message at once
  (ChangeMessageVisibility 0), each at most once;
* it stops at the first test event found, or after ``BUDGET_SECONDS`` (S3 delivers within seconds).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from faceidx.common.tables import format_pairs
from faceidx.infra.arns import parse_arn

log = logging.getLogger(__name__)

IDLE_VISIBLE = 10
BUDGET_SECONDS = 30.0
WAIT_SECONDS = 5  # long poll of one receive
HOLD_SECONDS = 30  # a message received here comes back on its own after this, if the release fails


def is_test_event(body: str, bucket: str) -> bool:
    """S3's ``{"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": ...}`` for ``bucket``. Pure."""
    try:
        document = json.loads(body)
    except ValueError:
        return False
    return (
        isinstance(document, dict)
        and document.get("Event") == "s3:TestEvent"
        and document.get("Bucket") in (None, bucket)
    )


def drain_test_events(hook: Any, queue_arn: str, bucket: str, budget_seconds: float = BUDGET_SECONDS) -> str:
    """Delete the test event(s) S3 just posted to the queue ``queue_arn``; a note for the summary."""
    arn = parse_arn(queue_arn)
    resource = f"SQS queue {arn.resource}"
    url = hook.call(
        "sqs", "get_queue_url", resource, QueueName=arn.resource, QueueOwnerAWSAccountId=arn.account_id
    )["QueueUrl"]
    attributes = hook.call(
        "sqs",
        "get_queue_attributes",
        resource,
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    visible = int(attributes.get("ApproximateNumberOfMessages", 0))
    in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
    if in_flight or visible > IDLE_VISIBLE:
        note = (
            f"S3's test event was left in {arn.resource}: the queue is busy ({visible} visible, "
            f"{in_flight} in flight), so workers run anyway and delete it."
        )
        log.info("%s", note)
        return note

    deleted, released = 0, 0
    seen: set[str] = set()
    started = time.monotonic()
    while not deleted and time.monotonic() - started < budget_seconds:
        messages = hook.call(
            "sqs",
            "receive_message",
            resource,
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=WAIT_SECONDS,
            VisibilityTimeout=HOLD_SECONDS,
        ).get("Messages", [])
        tests = [m for m in messages if is_test_event(m["Body"], bucket)]
        others = [m for m in messages if m not in tests]
        if tests:
            hook.call(
                "sqs",
                "delete_message_batch",
                resource,
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(tests)],
            )
            deleted += len(tests)
        if others:
            hook.call(
                "sqs",
                "change_message_visibility_batch",
                resource,
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(others)
                ],
            )
            released += len(others)
        if others and all(m["MessageId"] in seen for m in others):
            break  # only messages already looked at come back: the test event is not among them
        seen.update(m["MessageId"] for m in others)
    seconds = time.monotonic() - started
    log.info(
        "%s",
        format_pairs(
            [
                ("queue", arn.resource),
                ("s3:TestEvent messages deleted", deleted),
                ("other messages released at once (visibility 0)", released),
                ("seconds", round(seconds, 1)),
            ],
            title="S3's test event after the notification change",
        ),
    )
    if deleted:
        return f"Deleted S3's test event from {arn.resource}, so no worker starts for it."
    return (
        f"No S3 test event reached {arn.resource} within {round(seconds)} s; if it arrives later, the "
        "next face_indexing run starts one worker, which deletes it."
    )
