"""ARNs as the specs need them. Pure.

AWS has more than one partition: ``aws``, ``aws-cn`` (China) and ``aws-us-gov`` (GovCloud). An ARN
written ``arn:aws:...`` does not exist in the other two, so the specs write ``arn:${PARTITION}:...``
and the partition is read from the first ARN AWS hands back (the dead-letter queue's and the work
queue's).
"""

from __future__ import annotations

from dataclasses import dataclass

KNOWN_PARTITIONS = ("aws", "aws-cn", "aws-us-gov")


class ArnError(ValueError):
    """A string that is not an ARN."""


@dataclass(frozen=True)
class Arn:
    partition: str
    service: str
    region: str
    account_id: str
    resource: str


def parse_arn(arn: str) -> Arn:
    """``arn:partition:service:region:account:resource`` (the resource may hold more colons)."""
    parts = str(arn).split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not parts[1]:
        raise ArnError(f"{arn!r} is not an ARN (arn:partition:service:region:account:resource)")
    return Arn(*parts[1:])


def partition_of(arn: str) -> str:
    """``arn:aws-cn:sqs:cn-north-1:...`` -> ``aws-cn``."""
    return parse_arn(arn).partition


def s3_bucket_arn(partition: str, bucket: str) -> str:
    return f"arn:{partition}:s3:::{bucket}"
