"""The ``infra/`` spec files: which AWS request each one is, which ``ResourceKind`` record applies it
(``kinds_*``), in what order.

Each spec file is the JSON body of one AWS API request (``aws <service> <operation>
--generate-cli-skeleton``) with ``${NAME}`` placeholders. Policy documents (IAM trust and inline
policies, SQS ``Policy`` and ``RedrivePolicy``) are written as JSON objects for readability; rendering
turns them into the JSON strings the API takes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceidx.common.specs import SPEC_DIR_ENV, default_spec_dir
from faceidx.infra import kinds_batch, kinds_compute, kinds_iam, kinds_s3, kinds_sqs
from faceidx.infra.instance_types import CPU, GPU
from faceidx.infra.reconcile import ResourceKind

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
    operation: str  # botocore operation name of the request the file is shaped like
    resource_kind: ResourceKind  # the record that reconciles it
    outputs: dict[str, str] = field(default_factory=dict)  # result output -> placeholder
    reads: dict[str, str] = field(default_factory=dict)  # reconcile context name -> another spec's key

    @property
    def filename(self) -> str:
        return f"{self.key}.json"

    @property
    def service(self) -> str:
        """The botocore service name."""
        return self.resource_kind.service

    @property
    def kind(self) -> str:
        """What the summary table calls it."""
        return self.resource_kind.kind

    @property
    def name_field(self) -> str:
        """The request field that names the resource."""
        return self.resource_kind.name_field


SPECS: tuple[SpecEntry, ...] = (
    SpecEntry(
        "sqs/dead-letter-queue",
        STEP_SQS,
        "CreateQueue",
        kinds_sqs.QUEUE,
        {"url": "DLQ_URL", "arn": "DLQ_ARN"},
    ),
    SpecEntry(
        "sqs/work-queue",
        STEP_SQS,
        "CreateQueue",
        kinds_sqs.QUEUE,
        {
            "url": "QUEUE_URL",
            "arn": "QUEUE_ARN",
            "account_id": "ACCOUNT_ID",
            "partition": "PARTITION",
            "region": "REGION",
        },
    ),
    SpecEntry("sqs/work-queue-policy", STEP_SQS, "SetQueueAttributes", kinds_sqs.QUEUE_POLICY),
    SpecEntry("iam/instance-role", STEP_IAM, "CreateRole", kinds_iam.ROLE, {"arn": "INSTANCE_ROLE_ARN"}),
    SpecEntry("iam/instance-role-policy", STEP_IAM, "AttachRolePolicy", kinds_iam.ROLE_MANAGED_POLICY),
    SpecEntry(
        "iam/instance-profile",
        STEP_IAM,
        "CreateInstanceProfile",
        kinds_iam.INSTANCE_PROFILE,
        {"arn": "INSTANCE_PROFILE_ARN"},
    ),
    SpecEntry(
        "iam/instance-profile-role", STEP_IAM, "AddRoleToInstanceProfile", kinds_iam.INSTANCE_PROFILE_ROLE
    ),
    SpecEntry("iam/job-role", STEP_IAM, "CreateRole", kinds_iam.ROLE, {"arn": "JOB_ROLE_ARN"}),
    SpecEntry("iam/job-role-policy", STEP_IAM, "PutRolePolicy", kinds_iam.ROLE_INLINE_POLICY),
    SpecEntry(
        "iam/maintenance-job-role",
        STEP_IAM,
        "CreateRole",
        kinds_iam.ROLE,
        {"arn": "MAINTENANCE_JOB_ROLE_ARN"},
    ),
    SpecEntry("iam/maintenance-job-role-policy", STEP_IAM, "PutRolePolicy", kinds_iam.ROLE_INLINE_POLICY),
    SpecEntry(
        "s3/input-bucket-notification",
        STEP_NOTIFICATION,
        "PutBucketNotificationConfiguration",
        kinds_s3.BUCKET_NOTIFICATION,
    ),
    SpecEntry(
        "batch/compute-environment-primary",
        STEP_COMPUTE,
        "CreateComputeEnvironment",
        kinds_compute.COMPUTE_ENVIRONMENT,
        reads={"job_definition": "batch/job-definition"},
    ),
    SpecEntry(
        "batch/compute-environment-secondary",
        STEP_COMPUTE,
        "CreateComputeEnvironment",
        kinds_compute.COMPUTE_ENVIRONMENT,
        reads={"job_definition": "batch/job-definition"},
    ),
    SpecEntry(
        "batch/compute-environment-maintenance",
        STEP_COMPUTE,
        "CreateComputeEnvironment",
        kinds_compute.COMPUTE_ENVIRONMENT,
        reads={"job_definition": "batch/job-definition-maintenance"},
    ),
    SpecEntry("batch/job-queue-primary", STEP_JOB_QUEUES, "CreateJobQueue", kinds_batch.JOB_QUEUE),
    SpecEntry("batch/job-queue-secondary", STEP_JOB_QUEUES, "CreateJobQueue", kinds_batch.JOB_QUEUE),
    SpecEntry("batch/job-queue-maintenance", STEP_JOB_QUEUES, "CreateJobQueue", kinds_batch.JOB_QUEUE),
    SpecEntry(
        "batch/job-definition", STEP_JOB_DEFINITION, "RegisterJobDefinition", kinds_batch.JOB_DEFINITION
    ),
    SpecEntry(
        "batch/job-definition-maintenance",
        STEP_JOB_DEFINITION,
        "RegisterJobDefinition",
        kinds_batch.JOB_DEFINITION,
    ),
)


@dataclass(frozen=True)
class BatchWorkload:
    """One kind of Batch job: its job definition, the queues it is submitted to, the compute
    environments those queues use, its hardware and the job role it must run as (spec keys and the
    role's output placeholder). Validation checks each job definition only against its own
    environments, and each environment against its hardware."""

    job_definition: str
    queues: tuple[str, ...]
    environments: tuple[str, ...]
    hardware: str  # GPU or CPU
    job_role: str  # the placeholder the job definition's jobRoleArn must be


MAINTENANCE_QUEUE_KEY = "batch/job-queue-maintenance"  # its name is published as an Airflow Variable

WORKLOADS: tuple[BatchWorkload, ...] = (
    BatchWorkload(
        "batch/job-definition",
        ("batch/job-queue-primary", "batch/job-queue-secondary"),
        ("batch/compute-environment-primary", "batch/compute-environment-secondary"),
        GPU,
        "JOB_ROLE_ARN",
    ),
    BatchWorkload(
        "batch/job-definition-maintenance",
        (MAINTENANCE_QUEUE_KEY,),
        ("batch/compute-environment-maintenance",),
        CPU,
        "MAINTENANCE_JOB_ROLE_ARN",
    ),
)

SPECS_BY_KEY: dict[str, SpecEntry] = {entry.key: entry for entry in SPECS}


class SpecFileError(ValueError):
    """A spec file is missing or is not valid JSON."""


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
