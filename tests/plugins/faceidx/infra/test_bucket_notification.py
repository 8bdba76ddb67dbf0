"""The input bucket's notification, as AWS would take it: S3's test event does not start a GPU worker,
and a configuration AWS would reject for overlapping another is refused before any change.

S3 posts an ``s3:TestEvent`` to the work queue after each PutBucketNotificationConfiguration (moto does
too). AWS rejects overlapping configurations with ``InvalidArgument``; moto accepts them, so the check
is ours, and the tests put the other team's configuration in place with moto first.
"""

from __future__ import annotations

import json

import pytest

from faceidx.infra.notification_overlap import events_overlap, keys_overlap, overlaps
from faceidx.infra.results import InfraReconcileError
from faceidx.infra.test_events import IDLE_VISIBLE
from tests.plugins.faceidx.infra.conftest import actions
from tests.support.infra_moto import INPUT_BUCKET

NOTIFICATION = f"s3 bucket notification {INPUT_BUCKET}"


def _depth(account) -> dict[str, int]:
    sqs = account.client("sqs")
    url = sqs.get_queue_url(QueueName="faceidx-work")["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return {
        "visible": int(attributes["ApproximateNumberOfMessages"]),
        "in_flight": int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    }


def _bodies(account) -> list[dict]:
    sqs = account.client("sqs")
    url = sqs.get_queue_url(QueueName="faceidx-work")["QueueUrl"]
    messages = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"]
    ).get("Messages", [])
    return [
        {**json.loads(m["Body"]), "_receives": int(m["Attributes"]["ApproximateReceiveCount"])}
        for m in messages
    ]


def test_a_first_bootstrap_leaves_an_empty_queue(bootstrap, account):
    run = bootstrap()
    assert actions(run)[NOTIFICATION] == "created"
    assert _depth(account) == {"visible": 0, "in_flight": 0}, "no message left for a worker to start on"


def test_a_change_deletes_its_test_event_and_releases_real_messages_at_once(bootstrap, account):
    bootstrap()
    s3 = account.client("s3")
    for key in ("a.jpg", "b.png"):
        s3.put_object(Bucket=INPUT_BUCKET, Key=key, Body=b"x")
    # someone removed one of ours: the next bootstrap puts it back, and S3 posts a new test event
    held = s3.get_bucket_notification_configuration(Bucket=INPUT_BUCKET)
    s3.put_bucket_notification_configuration(
        Bucket=INPUT_BUCKET,
        NotificationConfiguration={"QueueConfigurations": held["QueueConfigurations"][1:]},
    )
    sqs = account.client("sqs")
    url = sqs.get_queue_url(QueueName="faceidx-work")["QueueUrl"]
    assert sum(
        json.loads(m["Body"]).get("Event") == "s3:TestEvent"
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    ), "moto posted a test event for the hand-made change"

    run = bootstrap()
    assert actions(run)[NOTIFICATION] == "updated"
    bodies = _bodies(account)  # released at once: visible without waiting for a visibility timeout
    assert sorted(r["s3"]["object"]["key"] for b in bodies for r in b.get("Records", [])) == [
        "a.jpg",
        "b.png",
    ]
    assert not [b for b in bodies if b.get("Event") == "s3:TestEvent"]


def test_a_busy_queue_is_not_received_from(bootstrap, account):
    bootstrap()
    sqs = account.client("sqs")
    url = sqs.get_queue_url(QueueName="faceidx-work")["QueueUrl"]
    for i in range(IDLE_VISIBLE + 1):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"backlog": i}))
    account.client("s3").put_bucket_notification_configuration(
        Bucket=INPUT_BUCKET, NotificationConfiguration={}
    )
    # the hand-made removal posted no test event (no queue named); the bootstrap's put does
    bootstrap()
    assert _depth(account)["visible"] == IDLE_VISIBLE + 2, "backlog + the test event, left for workers"
    messages = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"]
    )["Messages"]
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in messages} == {"1"}, "never received before"


def test_an_overlapping_lambda_notification_is_refused_before_any_change(bootstrap, account):
    s3 = account.client("s3")
    other = {
        "Id": "thumbnails",
        "LambdaFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:thumbnails",
        "Events": ["s3:ObjectCreated:*"],
    }
    s3.put_bucket_notification_configuration(
        Bucket=INPUT_BUCKET, NotificationConfiguration={"LambdaFunctionConfigurations": [other]}
    )
    with pytest.raises(InfraReconcileError) as err:
        bootstrap()
    message = str(err.value)
    assert "thumbnails" in message
    assert "InvalidArgument" in message
    assert "EventBridge" in message
    held = s3.get_bucket_notification_configuration(Bucket=INPUT_BUCKET)
    assert "QueueConfigurations" not in held, "nothing was changed"
    assert [c["Id"] for c in held["LambdaFunctionConfigurations"]] == ["thumbnails"]


def test_the_dry_run_reports_the_overlap_too(bootstrap, account):
    s3 = account.client("s3")
    sqs = account.client("sqs")
    other_url = sqs.create_queue(QueueName="audit")["QueueUrl"]
    other_arn = sqs.get_queue_attributes(QueueUrl=other_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    other = {
        "Id": "audit-deletes",
        "QueueArn": other_arn,
        "Events": ["s3:ObjectRemoved:Delete"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "2026/"}]}},
    }
    s3.put_bucket_notification_configuration(
        Bucket=INPUT_BUCKET, NotificationConfiguration={"QueueConfigurations": [other]}
    )
    with pytest.raises(InfraReconcileError, match="audit-deletes"):
        bootstrap(dry_run=True)


@pytest.mark.parametrize(
    ("ours", "theirs", "overlap"),
    [
        (["s3:ObjectCreated:*"], ["s3:ObjectCreated:Put"], True),
        (["s3:ObjectCreated:Put"], ["s3:ObjectCreated:*"], True),
        (["s3:ObjectCreated:*", "s3:ObjectRemoved:*"], ["s3:ObjectRemoved:Delete"], True),
        (["s3:ObjectCreated:*"], ["s3:ObjectRemoved:*"], False),
        (["s3:ObjectCreated:*"], ["s3:ObjectRestore:Completed"], False),
    ],
)
def test_event_types_overlap(ours, theirs, overlap):
    assert events_overlap(ours, theirs) is overlap


def _filtered(prefix: str = "", suffix: str = "") -> dict:
    rules = [{"Name": "Prefix", "Value": prefix}] if prefix else []
    rules += [{"Name": "suffix", "Value": suffix}] if suffix else []
    return {"Filter": {"Key": {"FilterRules": rules}}} if rules else {}


@pytest.mark.parametrize(
    ("ours", "theirs", "overlap"),
    [
        (_filtered(suffix=".jpg"), {}, True),  # no filter matches every key
        (_filtered(suffix=".jpg"), _filtered(prefix="photos/"), True),  # photos/x.jpg
        (_filtered(suffix=".jpg"), _filtered(suffix="s.jpg"), True),
        (_filtered(suffix=".jpg"), _filtered(suffix=".png"), False),
        (_filtered(suffix=".jpg"), _filtered(suffix=".JPG"), False),  # filters are case-sensitive
        (_filtered(prefix="a/", suffix=".jpg"), _filtered(prefix="b/"), False),
    ],
)
def test_key_filters_overlap(ours, theirs, overlap):
    assert keys_overlap(ours, theirs) is overlap


def test_an_overlap_names_the_other_configuration_and_its_destination():
    ours = [{"Id": "faceidx-jpg", "Events": ["s3:ObjectCreated:*"], **_filtered(suffix=".jpg")}]
    topic = {"Id": "all", "TopicArn": "arn:aws:sns:us-east-1:1:all", "Events": ["s3:ObjectCreated:Put"]}
    [found] = overlaps(ours, {"TopicConfigurations": [topic]})
    assert "TopicConfiguration all" in found.describe()
    assert "arn:aws:sns:us-east-1:1:all" in found.describe()
    assert "faceidx-jpg" in found.describe()
