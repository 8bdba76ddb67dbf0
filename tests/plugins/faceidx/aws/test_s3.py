"""The AWS side of face_reindex: listings and sends on moto, per-entry failures with botocore's Stubber."""

from __future__ import annotations

import io
import json

import pytest
from botocore.stub import Stubber

from faceidx.aws.s3 import RangeReader, ReindexAwsError, ReindexS3Hook
from faceidx.aws.sqs import SqsWorkQueueHook


def _entries(count):
    return [{"Id": str(n), "MessageBody": json.dumps({"n": n})} for n in range(count)]


def test_iter_objects_lists_every_object_under_the_prefix(moto):
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="photos")
    for key in ("a/1.jpg", "a/2.jpg", "a/sub/3.png", "b/4.jpg"):
        s3.put_object(Bucket="photos", Key=key, Body=b"x" * 3)
    listed = list(ReindexS3Hook(aws_conn_id="aws_default").iter_objects("photos", "a/"))
    assert [(o.key, o.size) for o in listed] == [("a/1.jpg", 3), ("a/2.jpg", 3), ("a/sub/3.png", 3)]
    assert all(o.etag.startswith('"') and o.last_modified.tzinfo is not None for o in listed)


def test_a_missing_bucket_names_the_bucket_and_the_fix(moto):
    with pytest.raises(ReindexAwsError, match=r"s3://no-such-bucket/x/ failed \(NoSuchBucket.*bucket Param"):
        list(ReindexS3Hook(aws_conn_id="aws_default").iter_objects("no-such-bucket", "x/"))
    with pytest.raises(ReindexAwsError, match="output_uri Param"):
        ReindexS3Hook(aws_conn_id="aws_default").list_index_files("no-index", "v1/faces/")


def test_range_reader_behaves_like_a_file():
    data = bytes(range(256)) * 4
    reader = RangeReader(lambda s, e: data[s : e + 1], len(data))
    assert reader.seek(-4, io.SEEK_END) == len(data) - 4
    assert reader.read(10) == data[-4:]
    assert reader.read(1) == b""
    reader.seek(100)
    reader.seek(5, io.SEEK_CUR)
    assert reader.read(3) == data[105:108]
    with pytest.raises(ValueError, match="negative"):
        reader.seek(-1)


def test_send_batch_puts_the_messages_in_the_queue(moto):
    sqs = moto.client("sqs")
    queue_url = sqs.create_queue(QueueName="work")["QueueUrl"]
    report = SqsWorkQueueHook(aws_conn_id="aws_default").send_batch(queue_url, _entries(10))
    assert (report.sent, report.failed, report.retried) == (10, [], 0)
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "10"


def test_a_missing_queue_says_to_run_the_bootstrap(moto):
    hook = SqsWorkQueueHook(aws_conn_id="aws_default")
    missing = f"{moto.url}/123456789012/not-there"
    with pytest.raises(ReindexAwsError, match="face_infra_bootstrap"):
        hook.send_batch(missing, _entries(1))


def test_failed_entries_are_retried_and_sender_faults_are_not(moto):
    hook = SqsWorkQueueHook(aws_conn_id="aws_default")
    delays = []
    entries = _entries(4)
    with Stubber(hook.conn) as stub:
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [{"Id": "0", "MessageId": "m0", "MD5OfMessageBody": "x"}],
                "Failed": [
                    {"Id": "1", "SenderFault": False, "Code": "InternalError", "Message": "try again"},
                    {"Id": "2", "SenderFault": True, "Code": "InvalidParameterValue", "Message": "bad body"},
                    {"Id": "3", "SenderFault": False, "Code": "ThrottlingException", "Message": "slow down"},
                ],
            },
            {"QueueUrl": "q", "Entries": entries},
        )
        # only the two retryable entries go again; one makes it, one fails again
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [{"Id": "1", "MessageId": "m1", "MD5OfMessageBody": "x"}],
                "Failed": [
                    {"Id": "3", "SenderFault": False, "Code": "ThrottlingException", "Message": "slow"}
                ],
            },
            {"QueueUrl": "q", "Entries": [entries[1], entries[3]]},
        )
        stub.add_response(
            "send_message_batch",
            {"Successful": [{"Id": "3", "MessageId": "m3", "MD5OfMessageBody": "x"}], "Failed": []},
            {"QueueUrl": "q", "Entries": [entries[3]]},
        )
        report = hook.send_batch("q", entries, sleep=delays.append)
        stub.assert_no_pending_responses()
    assert report.sent == 3
    assert [(f.entry_id, f.code) for f in report.failed] == [("2", "InvalidParameterValue")]
    assert report.retried == 3
    assert delays == [0.5, 1.0]


def test_entries_that_keep_failing_are_reported(moto):
    hook = SqsWorkQueueHook(aws_conn_id="aws_default")
    hook.max_attempts = 3
    failing = {
        "Successful": [],
        "Failed": [{"Id": "0", "SenderFault": False, "Code": "InternalError", "Message": "down"}],
    }
    with Stubber(hook.conn) as stub:
        for _ in range(3):
            stub.add_response("send_message_batch", failing)
        report = hook.send_batch("q", _entries(1), sleep=lambda _: None)
        stub.assert_no_pending_responses()
    assert report.sent == 0
    assert [(f.entry_id, f.code) for f in report.failed] == [("0", "InternalError")]


@pytest.mark.parametrize(("region", "partition"), [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")])
def test_access_denied_names_the_bucket_arn_in_the_connections_partition(monkeypatch, region, partition):
    from tests.support.moto_server import aws_connection_uri_json

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection_uri_json("http://127.0.0.1:9"))
    hook = ReindexS3Hook(aws_conn_id="aws_default", region_name=region)
    with Stubber(hook.get_conn()) as stubber:
        stubber.add_client_error(
            "list_objects_v2",
            service_error_code="AccessDenied",
            service_message="Access Denied",
            http_status_code=403,
        )
        with pytest.raises(ReindexAwsError) as caught:
            list(hook.iter_objects("photos", "a/"))
    assert f"Grant s3:ListBucket on arn:{partition}:s3:::photos " in str(caught.value)
