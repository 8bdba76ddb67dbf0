"""Our own checks of the rendered specs: the things AWS accepts but that cannot work. Pure.

Each finding says what is wrong, why, and how to fix it. Errors stop the bootstrap before any AWS
call; warnings are logged.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from faceidx.common.constants import WORKER_EXIT_STALLED
from faceidx.infra.instance_types import (
    CPU,
    GPU,
    MEMORY_MARGIN,
    MEMORY_OPTIMISED_FAMILIES,
    InstanceType,
    expand,
)

ERROR = "error"
WARNING = "warning"

# Strategies AWS Batch can change in place (an "infrastructure update"); see docs/infrastructure.md.
IN_PLACE_STRATEGIES = ("BEST_FIT_PROGRESSIVE", "SPOT_CAPACITY_OPTIMIZED", "SPOT_PRICE_CAPACITY_OPTIMIZED")
SPOT_ONLY_STRATEGIES = ("SPOT_CAPACITY_OPTIMIZED", "SPOT_PRICE_CAPACITY_OPTIMIZED")
MAX_QUEUE_ENVIRONMENTS = 3
SERVICE_LINKED_ROLE_PATH = ":role/aws-service-role/batch.amazonaws.com/"
FAMILY_MEMORY_EXAMPLE_MIB = 15000

# The GPU AMI faceidx runs on. Amazon Linux 2 ECS AMIs (ECS_AL2, ECS_AL2_NVIDIA) lose support on
# June 30, 2026; an environment with no ec2Configuration was given AL2 if created before January 12, 2026.
GPU_IMAGE_TYPE = "ECS_AL2023_NVIDIA"
CPU_IMAGE_TYPE = "ECS_AL2023"  # the maintenance environment: no GPU driver needed
IMAGE_TYPE = {GPU: GPU_IMAGE_TYPE, CPU: CPU_IMAGE_TYPE}
AL2_IMAGE_TYPES = frozenset({"ECS_AL2", "ECS_AL2_NVIDIA"})

# jobStateTimeLimitActions: the statusReason values AWS Batch can act on (its user guide, "Automatic
# remediation with jobStateTimeLimitActions"); SERVICE_ROLE_PERMISSIONS, ACTION_REQUIRED and
# UNDETERMINED are not among them. botocore's model types `reason` only as a string.
TIME_LIMIT_REASONS = frozenset(
    {
        "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
        "MISCONFIGURATION:EC2_INSTANCE_CONFIGURATION_UNSUPPORTED",
    }
)
TIME_LIMIT_SECONDS = (600, 86_400)  # the bounds AWS documents for maxTimeSeconds


@dataclass(frozen=True)
class Finding:
    severity: str
    resource: str
    problem: str
    fix: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        return f"[{self.severity}] {self.resource}: {self.problem} Fix: {self.fix}"


@dataclass(frozen=True)
class JobResources:
    vcpus: float | None
    memory_mib: int | None
    gpus: int
    deprecated: tuple[str, ...]


def job_resources(job_definition: dict[str, Any]) -> JobResources:
    """VCPU / MEMORY / GPU of a job definition, from ``resourceRequirements`` or the deprecated
    ``containerProperties.vcpus`` / ``memory``."""
    container = job_definition.get("containerProperties") or {}
    requirements = {str(r.get("type")): r.get("value") for r in container.get("resourceRequirements") or []}
    deprecated = tuple(k for k in ("vcpus", "memory") if k in container)
    vcpus = requirements.get("VCPU", container.get("vcpus"))
    memory = requirements.get("MEMORY", container.get("memory"))
    return JobResources(
        vcpus=float(vcpus) if vcpus is not None else None,
        memory_mib=int(memory) if memory is not None else None,
        gpus=int(requirements.get("GPU", 0) or 0),
        deprecated=deprecated,
    )


def is_service_linked_role(arn: str) -> bool:
    return SERVICE_LINKED_ROLE_PATH in arn


def _ce_types(ce: dict[str, Any], name: str, findings: list[Finding]) -> list[InstanceType]:
    allowed: list[InstanceType] = []
    for entry in (ce.get("computeResources") or {}).get("instanceTypes") or []:
        rows = expand(entry)
        if rows is None:
            findings.append(
                Finding(
                    ERROR,
                    name,
                    f"instance type {entry!r} is not in faceidx's instance table, so the job cannot be "
                    "checked against it.",
                    "Use a listed type (g4dn/g5/g6 for GPU, r7i/r6i/r5 for maintenance), or add the type "
                    "(vCPUs, GPUs, installed MiB) to INSTANCE_TYPES in "
                    "plugins/faceidx/infra/instance_types.py.",
                )
            )
        else:
            allowed.extend(rows)
    return allowed


def check_job_on_environment(
    job_name: str, job: JobResources, ce_name: str, ce: dict[str, Any], hardware: str = GPU
) -> list[Finding]:
    """Memory, GPU and vCPUs of the job against every instance type the environment allows. A CPU
    workload on GPU types is reported by ``check_cpu_instance_types`` instead."""
    findings: list[Finding] = []
    resource = f"job definition {job_name} on {ce_name}"
    types = _ce_types(ce, ce_name, findings)
    if job.memory_mib is None:
        findings.append(
            Finding(
                ERROR,
                f"job definition {job_name}",
                "asks for no memory.",
                f'Add {{"type": "MEMORY", "value": "{FAMILY_MEMORY_EXAMPLE_MIB}"}} to '
                "containerProperties.resourceRequirements.",
            )
        )
    elif types:
        tightest = min(types, key=lambda t: t.allocatable_mib)
        if job.memory_mib > tightest.allocatable_mib:
            findings.append(
                Finding(
                    ERROR,
                    resource,
                    f"asks for {job.memory_mib} MiB of memory, but a {tightest.name} has about "
                    f"{tightest.allocatable_mib} MiB allocatable ({tightest.memory_mib} MiB installed, less "
                    f"the {MEMORY_MARGIN:.1%} the ECS agent does not register). The job would never be "
                    "placed and would sit in RUNNABLE forever.",
                    f"Ask for at most {tightest.allocatable_mib} MiB in the MEMORY resourceRequirement "
                    f"(faceidx uses {FAMILY_MEMORY_EXAMPLE_MIB}), or drop {tightest.name} from "
                    "instanceTypes.",
                )
            )
    gpu_types = [t for t in types if t.gpus > 0]
    if hardware == GPU and gpu_types and job.gpus == 0:
        findings.append(
            Finding(
                ERROR,
                resource,
                f"runs on GPU instance types ({', '.join(sorted({t.name for t in gpu_types}))}) but asks for "
                "no GPU: the container would get no GPU and inference would silently run on the CPU.",
                'Add {"type": "GPU", "value": "1"} to containerProperties.resourceRequirements.',
            )
        )
    for t in types:
        if job.gpus > t.gpus:
            findings.append(
                Finding(
                    ERROR,
                    resource,
                    f"asks for {job.gpus} GPUs; a {t.name} has {t.gpus}.",
                    f"Ask for at most {t.gpus} GPU, or drop {t.name} from instanceTypes.",
                )
            )
            break
    if job.vcpus is None:
        findings.append(
            Finding(
                ERROR,
                f"job definition {job_name}",
                "asks for no vCPUs.",
                'Add {"type": "VCPU", "value": "4"} to containerProperties.resourceRequirements.',
            )
        )
    else:
        for t in types:
            if job.vcpus > t.vcpus:
                findings.append(
                    Finding(
                        ERROR,
                        resource,
                        f"asks for {job.vcpus:g} vCPUs; a {t.name} has {t.vcpus}.",
                        f"Ask for at most {t.vcpus} vCPUs, or drop {t.name} from instanceTypes.",
                    )
                )
                break
        max_vcpus = (ce.get("computeResources") or {}).get("maxvCpus")
        if isinstance(max_vcpus, int) and max_vcpus < job.vcpus:
            findings.append(
                Finding(
                    ERROR,
                    ce_name,
                    f"maxvCpus is {max_vcpus}, less than one job's {job.vcpus:g} vCPUs: no job could start.",
                    f"Raise computeResources.maxvCpus to at least {job.vcpus:g}.",
                )
            )
    return findings


def check_cpu_instance_types(name: str, ce: dict[str, Any]) -> list[Finding]:
    """A CPU (maintenance) environment lists memory-optimised types without a GPU only."""
    findings: list[Finding] = []
    families = ", ".join(sorted(MEMORY_OPTIMISED_FAMILIES))
    for entry in (ce.get("computeResources") or {}).get("instanceTypes") or []:
        rows = expand(entry) or []
        if any(t.gpus > 0 for t in rows):
            findings.append(
                Finding(
                    ERROR,
                    name,
                    f"instance type {entry!r} has a GPU, but this environment runs the index maintenance "
                    "jobs, which ask for none: a GPU instance would cost several times a memory-optimised "
                    "one and take the GPU spot quota the workers need.",
                    f"Drop {entry!r} from maintenance_instance_types; use memory-optimised CPU types "
                    f"({families}).",
                )
            )
        elif rows and not all(t.memory_optimised for t in rows):
            findings.append(
                Finding(
                    ERROR,
                    name,
                    f"instance type {entry!r} is not memory-optimised: the maintenance steps (vector index "
                    "build, re-cluster, compaction) are bound by memory, 8 GiB per vCPU.",
                    f"Use memory-optimised types ({families}).",
                )
            )
    return findings


def check_compute_environment(name: str, ce: dict[str, Any], hardware: str = GPU) -> list[Finding]:
    """Allocation strategy, bid, scale-to-zero, AMI and service role of one compute environment; its
    instance types when it is a CPU environment."""
    findings: list[Finding] = []
    resources = ce.get("computeResources") or {}
    kind = resources.get("type")
    strategy = resources.get("allocationStrategy", "BEST_FIT")
    if kind == "SPOT" and strategy not in IN_PLACE_STRATEGIES:
        findings.append(
            Finding(
                ERROR,
                name,
                f"allocationStrategy {strategy} (BEST_FIT is the default when absent) cannot be updated in "
                "place: changing instance types, subnets or the strategy later would mean replacing the "
                "environment. BEST_FIT also waits for its one instance type and needs a spotIamFleetRole.",
                f"Set allocationStrategy to one of {', '.join(IN_PLACE_STRATEGIES)} "
                "(SPOT_PRICE_CAPACITY_OPTIMIZED is AWS's recommendation for SPOT).",
            )
        )
    if kind in ("EC2", "FARGATE") and strategy in SPOT_ONLY_STRATEGIES:
        findings.append(
            Finding(
                ERROR,
                name,
                f"allocationStrategy {strategy} is valid only for SPOT compute resources, not {kind}.",
                "Use BEST_FIT_PROGRESSIVE for EC2, or set computeResources.type to SPOT.",
            )
        )
    bid = resources.get("bidPercentage")
    if kind == "SPOT" and bid is not None and not 1 <= int(bid) <= 100:
        findings.append(
            Finding(
                ERROR,
                name,
                f"bidPercentage {bid} is outside 1-100 (a % of the On-Demand price).",
                "Use 100: you still pay the market price, never more than On-Demand.",
            )
        )
    if int(resources.get("minvCpus", 0) or 0) > 0:
        findings.append(
            Finding(
                WARNING,
                name,
                f"minvCpus is {resources['minvCpus']}: instances stay up (and billed) with no work.",
                "Set minvCpus to 0 so the environment scales to zero when the workers exit.",
            )
        )
    images = [str(c.get("imageType")) for c in resources.get("ec2Configuration") or []]
    image_type = IMAGE_TYPE[hardware]
    if ce.get("type", "MANAGED") == "MANAGED" and images != [image_type]:
        on_al2 = not images or any(i in AL2_IMAGE_TYPES for i in images)
        findings.append(
            Finding(
                ERROR,
                name,
                f"ec2Configuration imageType is {', '.join(images) or 'not set'}"
                + (
                    ": Amazon Linux 2 ECS AMIs lose support on June 30, 2026, and an environment created "
                    "without ec2Configuration may run AL2."
                    if on_al2
                    else f", not the {hardware.upper()} AMI faceidx is built and tested on ({image_type})."
                ),
                f'Set computeResources.ec2Configuration to [{{"imageType": "{image_type}"}}].',
            )
        )
    role = ce.get("serviceRole")
    if role and not is_service_linked_role(str(role)):
        findings.append(
            Finding(
                WARNING,
                name,
                f"uses the custom service role {role}. AWS then refuses in-place infrastructure updates: a "
                "later change of instance types, subnets, security groups, allocation strategy or "
                "bidPercentage will be reported as needs-replacement.",
                "On AWS leave the service_role_arn Param empty so Batch uses its service-linked role "
                "(AWSServiceRoleForBatch).",
            )
        )
    if hardware == CPU:
        findings.extend(check_cpu_instance_types(name, ce))
    return findings


def check_job_queue(name: str, queue: dict[str, Any], environment_names: set[str]) -> list[Finding]:
    findings: list[Finding] = []
    order = queue.get("computeEnvironmentOrder") or []
    for item in order:
        env = str(item.get("computeEnvironment", "")).rsplit("/", 1)[-1]
        if env not in environment_names:
            findings.append(
                Finding(
                    ERROR,
                    name,
                    f"names compute environment {env!r}, which no spec under infra/batch defines.",
                    f"Use one of: {', '.join(sorted(environment_names)) or '(none defined)'}.",
                )
            )
    if len(order) > MAX_QUEUE_ENVIRONMENTS:
        findings.append(
            Finding(
                ERROR,
                name,
                f"has {len(order)} compute environments; a job queue takes at most {MAX_QUEUE_ENVIRONMENTS}.",
                "Remove the extra entries from computeEnvironmentOrder.",
            )
        )
    findings.extend(check_time_limit_actions(name, queue.get("jobStateTimeLimitActions") or []))
    orders = [item.get("order") for item in order]
    if len(set(orders)) != len(orders):
        findings.append(
            Finding(
                ERROR,
                name,
                f"computeEnvironmentOrder repeats an order value ({orders}).",
                "Give each compute environment its own order (1, 2, 3).",
            )
        )
    return findings


def check_time_limit_actions(name: str, actions: list[dict[str, Any]]) -> list[Finding]:
    """Each action names a reason AWS Batch acts on, within 600..86400 s; every reason at most once."""
    findings: list[Finding] = []
    low, high = TIME_LIMIT_SECONDS
    reasons = [str(a.get("reason")) for a in actions]
    for action in actions:
        reason, seconds = str(action.get("reason")), action.get("maxTimeSeconds")
        if reason not in TIME_LIMIT_REASONS:
            findings.append(
                Finding(
                    ERROR,
                    name,
                    f"jobStateTimeLimitActions reason {reason!r} is not one AWS Batch acts on: jobs stuck "
                    "for it would never be cancelled.",
                    f"Use one of {', '.join(sorted(TIME_LIMIT_REASONS))}.",
                )
            )
        if not isinstance(seconds, int) or not low <= seconds <= high:
            findings.append(
                Finding(
                    ERROR,
                    name,
                    f"jobStateTimeLimitActions maxTimeSeconds for {reason} is {seconds!r}; AWS takes "
                    f"{low} to {high}.",
                    f"Give a whole number of seconds from {low} (10 min) to {high} (24 h).",
                )
            )
    repeated = sorted({r for r in reasons if reasons.count(r) > 1})
    if repeated:
        findings.append(
            Finding(
                ERROR,
                name,
                f"jobStateTimeLimitActions names {', '.join(repeated)} more than once.",
                "Keep one action per reason.",
            )
        )
    return findings


def check_job_definition(
    name: str, job_definition: dict[str, Any], job: JobResources, hardware: str = GPU
) -> list[Finding]:
    findings: list[Finding] = []
    if hardware == CPU and job.gpus:
        findings.append(
            Finding(
                ERROR,
                f"job definition {name}",
                f"asks for {job.gpus} GPU(s), but it runs the index maintenance steps on CPU instance "
                "types: the job would never be placed and would sit in RUNNABLE.",
                'Remove {"type": "GPU", ...} from containerProperties.resourceRequirements.',
            )
        )
    if job.deprecated:
        findings.append(
            Finding(
                WARNING,
                f"job definition {name}",
                f"sets containerProperties.{'/'.join(job.deprecated)}, which AWS Batch deprecates.",
                "Move them to containerProperties.resourceRequirements (VCPU, MEMORY).",
            )
        )
    retries = (job_definition.get("retryStrategy") or {}).get("evaluateOnExit") or []
    spot_retry = any(
        str(rule.get("onStatusReason", "")).startswith("Host EC2")
        and str(rule.get("action")).upper() == "RETRY"
        for rule in retries
    )
    if not spot_retry:
        findings.append(
            Finding(
                WARNING,
                f"job definition {name}",
                "has no retry for spot reclaims (statusReason 'Host EC2*'): a reclaimed worker fails "
                "its job.",
                'Add retryStrategy {"attempts": 3, "evaluateOnExit": [{"onStatusReason": "Host EC2*", '
                '"action": "RETRY"}, {"onReason": "*", "action": "EXIT"}]}.',
            )
        )
    stalled_retry = any(
        str(rule.get("onExitCode", "")) == str(WORKER_EXIT_STALLED)
        and str(rule.get("action")).upper() == "RETRY"
        for rule in retries
    )
    # Exit code 4 is the GPU worker's stalled-lane exit; a maintenance step has no such exit.
    if hardware == GPU and not stalled_retry:
        findings.append(
            Finding(
                WARNING,
                f"job definition {name}",
                f"does not retry exit code {WORKER_EXIT_STALLED}: a worker whose inference stalled "
                "(PROGRESS_TIMEOUT_SECONDS) fails its job instead of trying again on a fresh container.",
                f'Add {{"onExitCode": "{WORKER_EXIT_STALLED}", "action": "RETRY"}} to '
                "retryStrategy.evaluateOnExit, before the catch-all EXIT rule.",
            )
        )
    return findings


def check_job_role(name: str, template: dict[str, Any], placeholder: str) -> list[Finding]:
    """The job definition's template runs as the role its workload names (``${placeholder}``)."""
    held = (template.get("containerProperties") or {}).get("jobRoleArn")
    expected = f"${{{placeholder}}}"
    if held == expected:
        return []
    return [
        Finding(
            ERROR,
            f"job definition {name}",
            f"containerProperties.jobRoleArn is {held!r}, not {expected}: the job would run with another "
            "role's permissions (or none).",
            f'Set containerProperties.jobRoleArn to "{expected}".',
        )
    ]


def check_queue_environments(
    name: str, queue: dict[str, Any], allowed: set[str], job_definition: str
) -> list[Finding]:
    """A job queue names only the compute environments of its workload (no GPU environment behind the
    maintenance queue, no CPU environment behind a worker queue)."""
    findings: list[Finding] = []
    for item in queue.get("computeEnvironmentOrder") or []:
        env = str(item.get("computeEnvironment", "")).rsplit("/", 1)[-1]
        if env not in allowed:
            findings.append(
                Finding(
                    ERROR,
                    name,
                    f"names compute environment {env!r}, but the jobs submitted to it ({job_definition}) "
                    f"run only on {', '.join(sorted(allowed))}.",
                    f"Name only {', '.join(sorted(allowed))} in computeEnvironmentOrder.",
                )
            )
    return findings


BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# An IAM policy grants on a key ARN; a key id, an alias or an alias ARN matches no key there.
KMS_KEY_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")


def check_values(values: dict[str, Any]) -> list[Finding]:
    """The per-account values that have a recognisable form (ids, bucket names, image)."""
    findings: list[Finding] = []
    for placeholder, param, prefix in (
        ("SUBNETS", "subnets", "subnet-"),
        ("SECURITY_GROUP_IDS", "security_group_ids", "sg-"),
    ):
        wrong = [item for item in values.get(placeholder, []) if not str(item).startswith(prefix)]
        if wrong:
            findings.append(
                Finding(
                    ERROR,
                    f"Param {param}",
                    f"{', '.join(map(repr, wrong))} {'is' if len(wrong) == 1 else 'are'} "
                    f"not {prefix}... id(s).",
                    f"Give the {prefix}... ids from your VPC (console: VPC > {param.replace('_', ' ')}).",
                )
            )
    for placeholder, param in (("INPUT_BUCKET", "input_bucket"), ("OUTPUT_BUCKET", "output_uri")):
        bucket = str(values.get(placeholder, ""))
        if not BUCKET_NAME.match(bucket) or ".." in bucket:
            findings.append(
                Finding(
                    ERROR,
                    f"Param {param}",
                    f"{bucket!r} is not a valid S3 bucket name.",
                    "Use the bucket's name only (3-63 lower-case letters, digits, dots or hyphens), "
                    "without s3:// for input_bucket.",
                )
            )
    for placeholder, param in (
        ("INPUT_KMS_KEY_ARN", "input_kms_key_arn"),
        ("OUTPUT_KMS_KEY_ARN", "output_kms_key_arn"),
    ):
        key = str(values.get(placeholder) or "")
        if key and not KMS_KEY_ARN.match(key):
            findings.append(
                Finding(
                    ERROR,
                    f"Param {param}",
                    f"{key!r} is not a KMS key ARN: an IAM policy on a key id or an alias grants nothing.",
                    "Give the key's ARN, arn:<partition>:kms:<region>:<account>:key/<key id> "
                    "(aws kms describe-key --key-id <alias or id> --query KeyMetadata.Arn).",
                )
            )
    for placeholder, param, example in (
        ("WORKER_IMAGE", "worker_image", "faceidx-worker:0.1.0"),
        ("MAINTENANCE_IMAGE", "maintenance_image", "faceidx-worker:0.1.0-maintenance"),
    ):
        image = str(values.get(placeholder, ""))
        if any(c.isspace() for c in image):
            findings.append(
                Finding(
                    ERROR,
                    f"Param {param}",
                    f"{image!r} contains whitespace.",
                    f"Give the image URI, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/{example}.",
                )
            )
    return findings
