"""The per-account values the ``infra/`` specs need, and where each one comes from.

Each value is read from the DAG run's Param first, then from the Airflow Variable ``faceidx_<param>``,
then from a built-in default (names only). A value found nowhere is *missing*: all missing names are
reported together in one error. Pure: no Airflow or boto3 import (the DAG file reads this at parse time).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from faceidx.common.uris import split_s3_uri as common_split_s3_uri
from faceidx.infra.instance_types import largest_allocatable_mib

VARIABLE_PREFIX = "faceidx_"
DEFAULT_INSTANCE_TYPES = ("g4dn.xlarge", "g5.xlarge", "g6.xlarge")
# Memory-optimised CPU types (8 GiB per vCPU), three families so spot capacity is rarely short; sizes up to
# 16 vCPUs / 128 GiB for the largest step's override (docs/infrastructure.md has the arithmetic).
DEFAULT_MAINTENANCE_INSTANCE_TYPES = tuple(
    f"{family}.{size}"
    for family in ("r7i", "r6i", "r5")
    for size in ("large", "xlarge", "2xlarge", "4xlarge")
)
# The most memory a maintenance job may ask for on the default types: a .4xlarge's allocatable memory
# (122,552 MiB). A step that needs more waits in RUNNABLE until its queue cancels it.
MAINTENANCE_JOB_MAX_MEMORY_MIB = largest_allocatable_mib(DEFAULT_MAINTENANCE_INSTANCE_TYPES)
# The maintenance image is the worker image's repository with this suffix on its tag (worker/Dockerfile's
# `maintenance` target, pushed next to the GPU image).
MAINTENANCE_TAG_SUFFIX = "-maintenance"
DRY_RUN_PARAM = "dry_run"


@dataclass(frozen=True)
class InfraValue:
    """One per-account value: its Param name, its ``${PLACEHOLDER}`` and how to fill it."""

    param: str
    placeholder: str
    description: str
    example: Any
    default: Any = None  # None: the account must supply it
    is_list: bool = False
    optional: bool = False  # may stay empty: the spec key holding it is then left out
    derived: str = ""  # when empty, the value is computed from others (this says how); never left out

    @property
    def variable(self) -> str:
        return f"{VARIABLE_PREFIX}{self.param}"

    @property
    def empty(self) -> Any:
        return [] if self.is_list else ""


VALUES: tuple[InfraValue, ...] = (
    InfraValue(
        "input_bucket",
        "INPUT_BUCKET",
        "Existing S3 bucket the images are uploaded to. Bootstrap adds its event notification.",
        "acme-photos",
    ),
    InfraValue(
        "output_uri",
        "OUTPUT_URI",
        "Existing S3 location for the Parquet index, s3://bucket/prefix/. Workers may write only there.",
        "s3://acme-face-index/faces-v1/",
    ),
    InfraValue(
        "subnets",
        "SUBNETS",
        "Subnet ids for the GPU instances (with a route to S3, SQS, ECR and CloudWatch Logs).",
        ["subnet-0a1b2c3d4e5f60718"],
        is_list=True,
    ),
    InfraValue(
        "security_group_ids",
        "SECURITY_GROUP_IDS",
        "Security group ids for the GPU instances (outbound HTTPS is enough).",
        ["sg-0123456789abcdef0"],
        is_list=True,
    ),
    InfraValue(
        "worker_image",
        "WORKER_IMAGE",
        "The worker image built from worker/Dockerfile, pushed to ECR.",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/faceidx-worker:0.1.0",
    ),
    InfraValue(
        "maintenance_image",
        "MAINTENANCE_IMAGE",
        "The index maintenance image: worker/Dockerfile's `maintenance` target, pushed to ECR.",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/faceidx-worker:0.1.0-maintenance",
        default="",
        derived=f"worker_image with {MAINTENANCE_TAG_SUFFIX!r} appended to its tag",
    ),
    InfraValue(
        "instance_types",
        "INSTANCE_TYPES",
        "GPU instance types the compute environments may launch (g4dn.xlarge first, larger GPU "
        "families as fall-backs when spot capacity is short). Each is checked against the job's memory, "
        "GPU and vCPUs; drop a type your region does not offer.",
        list(DEFAULT_INSTANCE_TYPES),
        default=list(DEFAULT_INSTANCE_TYPES),
        is_list=True,
    ),
    InfraValue(
        "queue_name",
        "QUEUE_NAME",
        "Name of the SQS work queue; its dead-letter queue is <queue_name>-dlq.",
        "faceidx-work",
        default="faceidx-work",
    ),
    InfraValue(
        "instance_role_name",
        "INSTANCE_ROLE_NAME",
        "IAM role of the GPU instances (ECS agent).",
        "faceidx-batch-instance-role",
        default="faceidx-batch-instance-role",
    ),
    InfraValue(
        "instance_profile_name",
        "INSTANCE_PROFILE_NAME",
        "Instance profile that carries the instance role.",
        "faceidx-batch-instance-profile",
        default="faceidx-batch-instance-profile",
    ),
    InfraValue(
        "job_role_name",
        "JOB_ROLE_NAME",
        "IAM role the worker container assumes (least privilege).",
        "faceidx-batch-job-role",
        default="faceidx-batch-job-role",
    ),
    InfraValue(
        "maintenance_instance_types",
        "MAINTENANCE_INSTANCE_TYPES",
        "Memory-optimised CPU instance types of the maintenance compute environment (r7i, r6i, r5 from "
        "large to 4xlarge: 8 GiB per vCPU). Each is checked against the maintenance job's memory and "
        "vCPUs, and must have no GPU; drop a type your region does not offer.",
        list(DEFAULT_MAINTENANCE_INSTANCE_TYPES),
        default=list(DEFAULT_MAINTENANCE_INSTANCE_TYPES),
        is_list=True,
    ),
    InfraValue(
        "maintenance_job_role_name",
        "MAINTENANCE_JOB_ROLE_NAME",
        "IAM role the index maintenance jobs assume (the index under the output prefix only).",
        "faceidx-maintenance-job-role",
        default="faceidx-maintenance-job-role",
    ),
    InfraValue(
        "face_model_dir",
        "FACE_MODEL_DIR",
        "FACE_MODEL_DIR inside the worker image: where worker/Dockerfile baked the model pack.",
        "/opt/models/buffalo_l",
        default="/opt/models/buffalo_l",
    ),
    InfraValue(
        "model_pack",
        "MODEL_PACK",
        "FACEIDX_MODEL_PACK of the workers: the model pack's name, written with its model_version into "
        "every row. Set it with face_model_dir (and worker_image) when rolling a new pack: a new value "
        "registers a new job definition revision. Empty: the name of face_model_dir's folder.",
        "buffalo_l",
        default="",
        optional=True,
    ),
    InfraValue(
        "service_role_arn",
        "SERVICE_ROLE_ARN",
        "Leave empty on AWS: Batch then uses its service-linked role, which in-place infrastructure "
        "updates need. Set it only where a service role must be named (moto needs one).",
        "",
        default="",
        optional=True,
    ),
)

KMS_VALUES: tuple[InfraValue, ...] = (
    InfraValue(
        "input_kms_key_arn",
        "INPUT_KMS_KEY_ARN",
        "ARN of the KMS key that encrypts the input bucket's objects (SSE-KMS). Empty: they are not "
        "KMS-encrypted, and the job role gets no KMS permission.",
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        default="",
        optional=True,
    ),
    InfraValue(
        "output_kms_key_arn",
        "OUTPUT_KMS_KEY_ARN",
        "ARN of the KMS key of the output bucket's default encryption (SSE-KMS). Empty: not KMS; the job "
        "role gets no KMS permission for it.",
        "arn:aws:kms:us-east-1:123456789012:key/0987dcba-09fe-87dc-65ba-ab0987654321",
        default="",
        optional=True,
    ),
)
VALUES = VALUES + KMS_VALUES

VALUES_BY_PARAM: dict[str, InfraValue] = {v.param: v for v in VALUES}

# Filled from other values, never supplied.
DERIVED_PLACEHOLDERS = ("OUTPUT_BUCKET", "OUTPUT_PREFIX", "DEAD_LETTER_QUEUE_NAME")

# Known only once the resource exists: filled from the reconcile results of earlier steps.
OUTPUT_PLACEHOLDERS = (
    "DLQ_URL",
    "DLQ_ARN",
    "QUEUE_URL",
    "QUEUE_ARN",
    "ACCOUNT_ID",
    "PARTITION",
    "REGION",
    "INSTANCE_ROLE_ARN",
    "INSTANCE_PROFILE_ARN",
    "JOB_ROLE_ARN",
    "MAINTENANCE_JOB_ROLE_ARN",
)


class MissingValuesError(ValueError):
    """Some per-account values were found in no Param, Variable or default. Lists them all."""

    def __init__(self, missing: list[InfraValue]) -> None:
        self.missing = [v.param for v in missing]
        lines = [
            f"face_infra_bootstrap is missing {len(missing)} value(s): {', '.join(self.missing)}.",
            "Set each as a Param when you trigger the DAG, or once as an Airflow Variable:",
        ]
        lines.extend(
            f"  - {v.param} (Variable {v.variable}): {v.description} e.g. {v.example!r}" for v in missing
        )
        super().__init__("\n".join(lines))


class InvalidValueError(ValueError):
    """A value is present but unusable (for example an output URI that is not s3://)."""


def _is_empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, list | tuple) and not value)


def parse_list(value: Any) -> list[str]:
    """A list Param as given, or a Variable string: JSON ``["a", "b"]`` or ``a,b``."""
    if isinstance(value, list | tuple):
        return [str(item).strip() for item in value if str(item).strip()]
    text = str(value).strip()
    if text.startswith("["):
        parsed = json.loads(text)
        if not isinstance(parsed, list):
            raise InvalidValueError(f"expected a JSON list, got {text!r}")
        return [str(item).strip() for item in parsed if str(item).strip()]
    return [part.strip() for part in text.split(",") if part.strip()]


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> ``(bucket, "prefix/")``; the prefix is empty or ends with ``/``."""
    parts = common_split_s3_uri(uri)
    if parts is None:
        raise InvalidValueError(
            f"output_uri must look like s3://bucket/prefix/, got {uri!r}. Fix the output_uri Param or "
            f"the {VARIABLE_PREFIX}output_uri Variable."
        )
    bucket, prefix = parts
    return bucket, f"{prefix}/" if prefix else ""


def maintenance_image_for(worker_image: str) -> str:
    """``repo:0.1.0`` -> ``repo:0.1.0-maintenance``; ``repo`` -> ``repo:maintenance``. An image pinned by
    digest names no tag to derive from: ``maintenance_image`` must then be given."""
    image = worker_image.strip()
    if "@" in image:
        raise InvalidValueError(
            f"worker_image {image!r} is pinned by digest, so the maintenance image cannot be derived from "
            "its tag. Set the maintenance_image Param (or the "
            f"{VARIABLE_PREFIX}maintenance_image Variable) to the image built with --target maintenance."
        )
    name = image.rsplit("/", 1)[-1]
    if ":" in name:
        return f"{image}{MAINTENANCE_TAG_SUFFIX}"
    return f"{image}:{MAINTENANCE_TAG_SUFFIX.lstrip('-')}"


def resolve_values(params: Mapping[str, Any], variables: Mapping[str, Any]) -> dict[str, Any]:
    """Placeholder -> value for every per-account and derived value.

    ``params`` are the DAG run's Params (by Param name), ``variables`` the Airflow Variables (by
    Variable name, absent or None when unset). Raises one ``MissingValuesError`` naming every value
    found nowhere.
    """
    resolved: dict[str, Any] = {}
    missing: list[InfraValue] = []
    for value in VALUES:
        raw = params.get(value.param)
        if _is_empty(raw):
            raw = variables.get(value.variable)
        if _is_empty(raw):
            raw = value.default
        if _is_empty(raw) and value.derived:
            continue  # computed below, once the values it comes from are known
        if _is_empty(raw) and not value.optional:
            missing.append(value)
            continue
        if _is_empty(raw):
            resolved[value.placeholder] = value.empty
        elif value.is_list:
            resolved[value.placeholder] = parse_list(raw)
        else:
            resolved[value.placeholder] = "" if raw is None else str(raw).strip()
    if missing:
        raise MissingValuesError(missing)
    if not resolved.get("MAINTENANCE_IMAGE"):
        resolved["MAINTENANCE_IMAGE"] = maintenance_image_for(resolved["WORKER_IMAGE"])
    bucket, prefix = split_s3_uri(resolved["OUTPUT_URI"])
    resolved["OUTPUT_BUCKET"] = bucket
    resolved["OUTPUT_PREFIX"] = prefix
    resolved["DEAD_LETTER_QUEUE_NAME"] = f"{resolved['QUEUE_NAME']}-dlq"
    return resolved


def example_params() -> dict[str, Any]:
    """Every Param with its example value: what the README and the demo show. The optional KMS keys
    are left out: an account without SSE-KMS buckets (the common case) sets neither."""
    return {v.param: v.example for v in VALUES if v not in KMS_VALUES}
