"""Preparing a moto server for ``face_infra_bootstrap``: what a real account already has.

A real account has its buckets, VPC subnets and security groups; moto starts empty, and its Batch also
needs a named service role. Used by ``make demo`` and by the compose stack's ``moto-setup`` service
(docker/moto_setup.py). Each function takes a boto3 client and is idempotent.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)

SERVICE_ROLE_NAME = "faceidx-moto-batch-service-role"


def ensure_bucket(s3: Any, name: str) -> None:
    existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
    if name in existing:
        log.info("bucket %s: unchanged", name)
        return
    s3.create_bucket(Bucket=name)
    log.info("bucket %s: created", name)


def ensure_service_role(iam: Any) -> str:
    for page in iam.get_paginator("list_roles").paginate():
        for role in page.get("Roles", []):
            if role["RoleName"] != SERVICE_ROLE_NAME:
                continue
            log.info("IAM role %s: unchanged", SERVICE_ROLE_NAME)
            return str(role["Arn"])
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "batch.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    arn = iam.create_role(RoleName=SERVICE_ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]
    log.info("IAM role %s: created", SERVICE_ROLE_NAME)
    return str(arn)


def default_network(ec2: Any) -> tuple[list[str], list[str]]:
    subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["default"]}])
    vpcs = {subnet["VpcId"] for subnet in subnets}
    group_ids = [g["GroupId"] for g in groups["SecurityGroups"] if g["VpcId"] in vpcs]
    if not subnets or not group_ids:
        raise RuntimeError(
            f"moto has no default VPC subnets ({len(subnets)}) or default security group "
            f"({len(group_ids)}): restart the moto service (`docker compose restart moto`) and run "
            "`docker compose up moto-setup` again"
        )
    return sorted(subnet["SubnetId"] for subnet in subnets), sorted(group_ids)
