"""The fault proxy itself: it must recognise operations as AWS routes them, and its faults must reach
botocore in the shapes botocore retries (or, for access_denied, does not)."""

from __future__ import annotations

from email.message import Message

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.fault_proxy import classify


def _headers(**values: str) -> Message:
    headers = Message()
    for name, value in values.items():
        headers[name.replace("_", "-")] = value
    return headers


def _auth(service: str) -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, "
        "SignedHeaders=host, Signature=0"
    )


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "service", "operation"),
    [
        ("POST", "/", {"X_Amz_Target": "AmazonSQS.ReceiveMessage"}, b"{}", "sqs", "ReceiveMessage"),
        ("POST", "/", {"X_Amz_Target": "AmazonSQS.DeleteMessageBatch"}, b"{}", "sqs", "DeleteMessageBatch"),
        (
            "POST",
            "/",
            {"Content_Type": "application/x-www-form-urlencoded", "Authorization": _auth("sqs")},
            b"Action=ReceiveMessage&QueueUrl=x",
            "sqs",
            "ReceiveMessage",
        ),
        ("GET", "/uploads/a%20b/c.jpg", {"Authorization": _auth("s3")}, b"", "s3", "GetObject"),
        ("HEAD", "/uploads/c.jpg", {"Authorization": _auth("s3")}, b"", "s3", "HeadObject"),
        ("PUT", "/index/faces/part.parquet", {"Authorization": _auth("s3")}, b"x", "s3", "PutObject"),
        (
            "PUT",
            "/uploads/copy.jpg",
            {"Authorization": _auth("s3"), "x_amz_copy_source": "uploads/a.jpg"},
            b"",
            "s3",
            "CopyObject",
        ),
        ("GET", "/index?list-type=2&prefix=x", {"Authorization": _auth("s3")}, b"", "s3", "ListObjectsV2"),
        ("PUT", "/uploads", {"Authorization": _auth("s3")}, b"", "s3", "CreateBucket"),
        ("POST", "/v1/listjobs", {"Authorization": _auth("batch")}, b"{}", "batch", "ListJobs"),
        ("POST", "/v1/submitjob", {"Authorization": _auth("batch")}, b"{}", "batch", "SubmitJob"),
    ],
)
def test_operations_are_recognised_as_aws_routes_them(method, path, headers, body, service, operation):
    call = classify(method, path, _headers(**headers), body)
    assert (call.service, call.operation) == (service, operation)


def test_faults_reach_botocore_and_are_retried_or_not(moto, proxy):
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=proxy.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 5}),
    )
    s3.create_bucket(Bucket="proxy-check")
    for fault in ("503", "throttle", "reset"):
        proxy.add("s3", "PutObject", fault)
    s3.put_object(Bucket="proxy-check", Key="a b/ü.jpg", Body=b"payload")
    assert [r.outcome for r in proxy.requests if r.operation == "PutObject"] == [
        "503",
        "throttle",
        "reset",
        "200",
    ]
    assert s3.get_object(Bucket="proxy-check", Key="a b/ü.jpg")["Body"].read() == b"payload"

    denied = proxy.add("s3", "GetObject", "access_denied", times=None)
    with pytest.raises(ClientError) as error:
        s3.get_object(Bucket="proxy-check", Key="a b/ü.jpg")
    assert error.value.response["Error"]["Code"] == "AccessDenied"
    assert denied.hits == 1  # a 403 is not retried
