"""A moto account ready for face_infra_bootstrap, as the infra tests (and the demo) need it.

What bootstrap expects to exist already, the customer's side, is created here: the input and output
buckets, a VPC subnet and a security group. Two moto gaps are bridged, both in-process (the test
moto server runs in this process):

- moto loads AWS managed policies (``AmazonEC2ContainerServiceforEC2Role``) only when
  ``MOTO_IAM_LOAD_MANAGED_POLICIES=true`` is set before its IAM backend starts.
- moto creates a MANAGED compute environment only with a ``serviceRole``. On AWS faceidx names none
  (the service-linked role is used); here the service-linked role is created explicitly and passed
  as ``service_role_arn``: the same role AWS would use.
- moto 5.2 accepts UpdateComputeEnvironment's ``computeResources`` but drops them (a TODO in moto);
  ``keep_compute_resource_updates`` stores them, as AWS does, so tests can check the state.
- moto 5.2 ignores a job queue's ``jobStateTimeLimitActions`` on create and update and never
  describes them; ``keep_job_queue_time_limit_actions`` stores and describes them, as AWS does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest

from faceidx_dev.local.moto_server import REGION

INPUT_BUCKET = "faceidx-test-photos"
OUTPUT_BUCKET = "faceidx-test-index"
OUTPUT_URI = f"s3://{OUTPUT_BUCKET}/faces-v1/"
WORKER_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/faceidx-worker:test"


@dataclass
class InfraAccount:
    """Params for a bootstrap against this moto account, plus clients to inspect it."""

    moto: Any
    params: dict[str, Any]
    region: str = REGION

    def client(self, service: str) -> Any:
        return self.moto.client(service, region_name=self.region)


def keep_compute_resource_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.batch.models import BatchBackend

    original = BatchBackend.update_compute_environment

    def update(
        self: Any, compute_environment_name: str, state: Any, compute_resources: Any, service_role: Any
    ) -> Any:
        result = original(self, compute_environment_name, state, compute_resources, service_role)
        if compute_resources:
            self.get_compute_environment(compute_environment_name).compute_resources.update(compute_resources)
        return result

    monkeypatch.setattr(BatchBackend, "update_compute_environment", update)


def keep_job_queue_time_limit_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.batch.models import JobQueue
    from moto.batch.responses import BatchResponse

    key = "jobStateTimeLimitActions"

    def storing(original: Any, name_param: str) -> Any:
        def handler(self: Any) -> str:
            result = original(self)
            actions = self._get_param(key)
            if actions is not None:
                queue = self.batch_backend.get_job_queue(self._get_param(name_param))
                queue.faceidx_time_limit_actions = actions
            return result

        return handler

    original_describe = JobQueue.describe

    def describe(self: Any) -> dict[str, Any]:
        described = original_describe(self)
        actions = getattr(self, "faceidx_time_limit_actions", None)
        if actions is not None:
            described[key] = actions
        return described

    monkeypatch.setattr(
        BatchResponse, "createjobqueue", storing(BatchResponse.createjobqueue, "jobQueueName")
    )
    monkeypatch.setattr(BatchResponse, "updatejobqueue", storing(BatchResponse.updatejobqueue, "jobQueue"))
    monkeypatch.setattr(JobQueue, "describe", describe)


def prepare_infra_account(
    moto: Any, monkeypatch: pytest.MonkeyPatch | None = None, region: str = REGION
) -> InfraAccount:
    """Call on a freshly reset moto server, before any IAM call: buckets, network, service role.

    Tests pass ``monkeypatch`` (undone after the test). A script (the demo) passes none: the
    environment variable is then set for the rest of the process, and moto's UpdateComputeEnvironment
    is left as it is. A moto server in another process needs ``MOTO_IAM_LOAD_MANAGED_POLICIES=true``
    in its own environment instead.
    """
    if monkeypatch is None:
        os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    else:
        monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        keep_compute_resource_updates(monkeypatch)
        keep_job_queue_time_limit_actions(monkeypatch)
    s3 = moto.client("s3", region_name=region)
    for bucket in (INPUT_BUCKET, OUTPUT_BUCKET):
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    ec2 = moto.client("ec2", region_name=region)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(
        GroupName="faceidx-batch", Description="faceidx GPU workers", VpcId=vpc
    )["GroupId"]
    service_role = moto.client("iam", region_name=region).create_service_linked_role(
        AWSServiceName="batch.amazonaws.com"
    )["Role"]["Arn"]
    params = {
        "input_bucket": INPUT_BUCKET,
        "output_uri": OUTPUT_URI,
        "subnets": [subnet],
        "security_group_ids": [group],
        "worker_image": WORKER_IMAGE,
        "service_role_arn": service_role,
        "dry_run": False,
    }
    return InfraAccount(moto=moto, params=params, region=region)
