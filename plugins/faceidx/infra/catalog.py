"""The ``infra/`` spec files: which AWS request each one is, which ensure_* applies it, in what order.

Each spec file is the JSON body of one AWS API request (``aws <service> <operation>
--generate-cli-skeleton``) with ``${NAME}`` placeholders. Policy documents (IAM trust and inline
policies, SQS ``Policy`` and ``RedrivePolicy``) are written as JSON objects for readability; rendering
turns them into the JSON strings the API takes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPEC_DIR_ENV = "FACEIDX_INFRA_DIR"

# Steps run in this order; each is one task of face_infra_bootstrap.
STEP_SQS = "sqs"
STEP_IAM = "iam"
STEP_NOTIFICATION = "bucket_notification"
STEP_COMPUTE = "compute_environments"
STEP_JOB_QUEUES = "job_queues"
STEP_JOB_DEFINITION = "job_definition"
STEPS = (STEP_SQS, STEP_IAM, STEP_NOTIFICATION, STEP_COMPUTE, STEP_JOB_QUEUES, STEP_JOB_DEFINITION)


@dataclass(frozen=True)
class SpecEntry:
    """One spec file and how it is applied."""

    key: str  # path under infra/ without ".json"
    step: str
    service: str  # botocore service name
    operation: str  # botocore operation name of the request the file is shaped like
    kind: str  # what the summary table calls it
    name_field: str  # the request field that names the resource
    ensure: str  # InfraReconcileHook method
    outputs: dict[str, str] = field(default_factory=dict)  # result output -> placeholder

    @property
    def filename(self) -> str:
        return f"{self.key}.json"


SPECS: tuple[SpecEntry, ...] = (
    SpecEntry(
        "sqs/dead-letter-queue",
        STEP_SQS,
        "sqs",
        "CreateQueue",
        "sqs queue",
        "QueueName",
        "ensure_queue",
        {"url": "DLQ_URL", "arn": "DLQ_ARN"},
    ),
    SpecEntry(
        "sqs/work-queue",
        STEP_SQS,
        "sqs",
        "CreateQueue",
        "sqs queue",
        "QueueName",
        "ensure_queue",
        {
            "url": "QUEUE_URL",
            "arn": "QUEUE_ARN",
            "account_id": "ACCOUNT_ID",
            "partition": "PARTITION",
            "region": "REGION",
        },
    ),
    SpecEntry(
        "sqs/work-queue-policy",
        STEP_SQS,
        "sqs",
        "SetQueueAttributes",
        "sqs queue policy",
        "QueueUrl",
        "ensure_queue_policy",
    ),
    SpecEntry(
        "iam/instance-role",
        STEP_IAM,
        "iam",
        "CreateRole",
        "iam role",
        "RoleName",
        "ensure_role",
        {"arn": "INSTANCE_ROLE_ARN"},
    ),
    SpecEntry(
        "iam/instance-role-policy",
        STEP_IAM,
        "iam",
        "AttachRolePolicy",
        "iam managed policy attachment",
        "RoleName",
        "ensure_role_managed_policy",
    ),
    SpecEntry(
        "iam/instance-profile",
        STEP_IAM,
        "iam",
        "CreateInstanceProfile",
        "iam instance profile",
        "InstanceProfileName",
        "ensure_instance_profile",
        {"arn": "INSTANCE_PROFILE_ARN"},
    ),
    SpecEntry(
        "iam/instance-profile-role",
        STEP_IAM,
        "iam",
        "AddRoleToInstanceProfile",
        "iam instance profile role",
        "InstanceProfileName",
        "ensure_instance_profile_role",
    ),
    SpecEntry(
        "iam/job-role",
        STEP_IAM,
        "iam",
        "CreateRole",
        "iam role",
        "RoleName",
        "ensure_role",
        {"arn": "JOB_ROLE_ARN"},
    ),
    SpecEntry(
        "iam/job-role-policy",
        STEP_IAM,
        "iam",
        "PutRolePolicy",
        "iam inline policy",
        "RoleName",
        "ensure_role_inline_policy",
    ),
    SpecEntry(
        "s3/input-bucket-notification",
        STEP_NOTIFICATION,
        "s3",
        "PutBucketNotificationConfiguration",
        "s3 bucket notification",
        "Bucket",
        "ensure_bucket_notification",
    ),
    SpecEntry(
        "batch/compute-environment-primary",
        STEP_COMPUTE,
        "batch",
        "CreateComputeEnvironment",
        "batch compute environment",
        "computeEnvironmentName",
        "ensure_compute_environment",
    ),
    SpecEntry(
        "batch/compute-environment-secondary",
        STEP_COMPUTE,
        "batch",
        "CreateComputeEnvironment",
        "batch compute environment",
        "computeEnvironmentName",
        "ensure_compute_environment",
    ),
    SpecEntry(
        "batch/job-queue-primary",
        STEP_JOB_QUEUES,
        "batch",
        "CreateJobQueue",
        "batch job queue",
        "jobQueueName",
        "ensure_job_queue",
    ),
    SpecEntry(
        "batch/job-queue-secondary",
        STEP_JOB_QUEUES,
        "batch",
        "CreateJobQueue",
        "batch job queue",
        "jobQueueName",
        "ensure_job_queue",
    ),
    SpecEntry(
        "batch/job-definition",
        STEP_JOB_DEFINITION,
        "batch",
        "RegisterJobDefinition",
        "batch job definition",
        "jobDefinitionName",
        "ensure_job_definition",
    ),
)

SPECS_BY_KEY: dict[str, SpecEntry] = {entry.key: entry for entry in SPECS}


class SpecFileError(ValueError):
    """A spec file is missing or is not valid JSON."""


def default_spec_dir() -> Path:
    """``$FACEIDX_INFRA_DIR``, else ``infra/`` at the repository root (beside ``plugins/``)."""
    override = os.environ.get(SPEC_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "infra"


def entries_for(step: str) -> list[SpecEntry]:
    return [entry for entry in SPECS if entry.step == step]


def load_templates(spec_dir: Path | str | None = None) -> dict[str, Any]:
    """Every spec file as parsed JSON (placeholders still in), by catalog key."""
    root = Path(spec_dir) if spec_dir else default_spec_dir()
    templates: dict[str, Any] = {}
    problems: list[str] = []
    for entry in SPECS:
        path = root / entry.filename
        try:
            templates[entry.key] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            problems.append(f"{path}: missing. Restore it from the repository or set ${SPEC_DIR_ENV}.")
        except json.JSONDecodeError as err:
            problems.append(f"{path}: not valid JSON ({err}). Fix the file.")
    if problems:
        raise SpecFileError("Cannot read the infra specs:\n  - " + "\n  - ".join(problems))
    return templates
