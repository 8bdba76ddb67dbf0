"""China and GovCloud: every ARN the bootstrap writes is in the partition of the account's own ARNs.

moto answers in the partition of the region it is asked in (``arn:aws-cn:...`` in cn-north-1), so a
whole bootstrap runs there and the state moto holds is checked.
"""

from __future__ import annotations

import json

import pytest

from faceidx.infra.arns import ArnError, parse_arn, partition_of
from faceidx.infra.hook_base import InfraReconcileHook
from faceidx.infra.tasks import run_bootstrap
from tests.plugins.faceidx.infra.conftest import actions
from tests.support.infra_moto import INPUT_BUCKET, prepare_infra_account
from tests.support.moto_server import aws_connection_uri_json


@pytest.mark.parametrize(
    ("arn", "partition", "region", "account"),
    [
        ("arn:aws:sqs:us-east-1:123456789012:faceidx-work", "aws", "us-east-1", "123456789012"),
        ("arn:aws-cn:sqs:cn-north-1:123456789012:faceidx-work", "aws-cn", "cn-north-1", "123456789012"),
        ("arn:aws-us-gov:iam::123456789012:role/a/b:c", "aws-us-gov", "", "123456789012"),
    ],
)
def test_parse_arn(arn, partition, region, account):
    parsed = parse_arn(arn)
    assert (parsed.partition, parsed.region, parsed.account_id) == (partition, region, account)
    assert partition_of(arn) == partition


@pytest.mark.parametrize("text", ["", "faceidx-work", "arn::sqs:r:1:q", "arn:aws:sqs"])
def test_not_an_arn(text):
    with pytest.raises(ArnError):
        parse_arn(text)


@pytest.mark.parametrize(("region", "partition"), [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")])
def test_bootstrap_writes_arns_in_the_accounts_partition(moto, monkeypatch, region, partition):
    account = prepare_infra_account(moto, monkeypatch, region=region)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection_uri_json(moto.url, region))
    run = run_bootstrap(
        account.params, {}, lambda: InfraReconcileHook(aws_conn_id="aws_default", waiter_delay=1)
    )
    assert set(actions(run).values()) == {"created"}
    iam, sqs = account.client("iam"), account.client("sqs")

    url = sqs.get_queue_url(QueueName="faceidx-work")["QueueUrl"]
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"]
    )
    assert (
        policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"]
        == f"arn:{partition}:s3:::{INPUT_BUCKET}"
    )

    attached = iam.list_attached_role_policies(RoleName="faceidx-batch-instance-role")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [
        f"arn:{partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
    ]
    inline = iam.get_role_policy(RoleName="faceidx-batch-job-role", PolicyName="faceidx-worker")[
        "PolicyDocument"
    ]
    s3_resources = [r for s in inline["Statement"] for r in [s["Resource"]] if ":s3:::" in r]
    assert s3_resources
    assert all(r.startswith(f"arn:{partition}:s3:::") for r in s3_resources), s3_resources

    (notification,) = [
        r for step in run["steps"] for r in step["results"] if r["kind"] == "s3 bucket notification"
    ]
    assert notification["arn"] == f"arn:{partition}:s3:::{INPUT_BUCKET}"
    assert "arn:aws:" not in json.dumps(run["steps"]), "no ARN of the aws partition anywhere"
