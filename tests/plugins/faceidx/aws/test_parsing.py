"""AWS answers read into plain data: depth counters, redrive policy, SendMessageBatch outcomes, listings."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from faceidx.aws.parsing import (
    ListedObject,
    QueueDepth,
    classify_batch_response,
    dlq_name_from_redrive_policy,
    parse_queue_depth,
)


def test_parse_queue_depth():
    depth = parse_queue_depth(
        {
            "ApproximateNumberOfMessages": "7",
            "ApproximateNumberOfMessagesNotVisible": "2",
            "ApproximateNumberOfMessagesDelayed": "1",
        }
    )
    assert depth == QueueDepth(visible=7, in_flight=2, delayed=1)
    assert depth.total == 10
    assert QueueDepth.from_dict(depth.to_dict()) == depth
    with pytest.raises(ValueError, match="lacks ApproximateNumberOfMessagesDelayed"):
        parse_queue_depth({"ApproximateNumberOfMessages": "1", "ApproximateNumberOfMessagesNotVisible": "0"})


def test_dlq_name_from_redrive_policy():
    policy = json.dumps(
        {"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:faceidx-dlq", "maxReceiveCount": 5}
    )
    assert dlq_name_from_redrive_policy(policy) == "faceidx-dlq"
    assert dlq_name_from_redrive_policy(None) is None


@pytest.mark.parametrize(
    ("sent", "response", "succeeded", "retryable", "permanent"),
    [
        (["0", "1"], {"Successful": [{"Id": "0"}, {"Id": "1"}]}, ("0", "1"), [], []),
        (
            ["0", "1", "2"],
            {
                "Successful": [{"Id": "0"}],
                "Failed": [
                    {"Id": "1", "SenderFault": False, "Code": "InternalError", "Message": "try again"},
                    {"Id": "2", "SenderFault": True, "Code": "InvalidParameterValue", "Message": "bad body"},
                ],
            },
            ("0",),
            ["1"],
            ["2"],
        ),
        # an entry SQS mentions nowhere is retried: a duplicate is better than a lost image
        (["0", "1"], {"Successful": [{"Id": "0"}]}, ("0",), ["1"], []),
        (["0"], {"Failed": [{"Id": "0", "Code": "Throttling"}]}, (), ["0"], []),
    ],
)
def test_classify_batch_response(sent, response, succeeded, retryable, permanent):
    outcome = classify_batch_response(sent, response)
    assert outcome.succeeded == succeeded
    assert [f.entry_id for f in outcome.retryable] == retryable
    assert [f.entry_id for f in outcome.permanent] == permanent


def test_listed_object_from_a_listing_entry():
    at = datetime(2026, 11, 20, 8, tzinfo=UTC)
    item = {"Key": "a/1.jpg", "ETag": '"abc"', "Size": 3, "LastModified": at}
    assert ListedObject.from_listing(item) == ListedObject("a/1.jpg", '"abc"', 3, at, "STANDARD")
    archived = ListedObject.from_listing({**item, "StorageClass": "GLACIER"})
    assert archived.storage_class == "GLACIER"
