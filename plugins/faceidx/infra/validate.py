"""Offline validation of the ``infra/`` specs: the first task of ``face_infra_bootstrap``. Pure.

1. Every placeholder is one faceidx knows, and every per-account value is supplied.
2. Each rendered spec matches its operation's input shape in botocore's model (``shape``).
3. Our own checks (``checks``): memory/GPU/vCPU fit, maxvCpus, allocation strategy, queue references,
   each per Batch workload (``catalog.WORKLOADS``): the GPU workers' job definition against the GPU
   environments, the maintenance job definition against the CPU one, each with its own job role.

Values that exist only after a resource is created (queue URL, role ARNs) are rendered as stand-ins
here; the real ones are filled in by the step that needs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceidx.infra.catalog import SPECS, SPECS_BY_KEY, WORKLOADS, load_templates
from faceidx.infra.checks import (
    ERROR,
    WARNING,
    Finding,
    check_compute_environment,
    check_job_definition,
    check_job_on_environment,
    check_job_queue,
    check_job_role,
    check_queue_environments,
    check_values,
    job_resources,
)
from faceidx.infra.checks_sqs import check_dead_letter_retention
from faceidx.infra.instance_types import GPU
from faceidx.infra.render import render, unknown_placeholders
from faceidx.infra.shape import shape_errors
from faceidx.infra.values import OUTPUT_PLACEHOLDERS, resolve_values


class InfraSpecError(ValueError):
    """The specs cannot work. Raised before any AWS call; lists every error with its fix."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        errors = [f for f in findings if f.severity == ERROR]
        lines = [f"{len(errors)} problem(s) in the infra specs; nothing was sent to AWS:"]
        lines.extend(f"  - {f.resource}: {f.problem}\n    Fix: {f.fix}" for f in errors)
        super().__init__("\n".join(lines))


@dataclass
class ValidationResult:
    values: dict[str, Any]
    rendered: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]


def stand_in(placeholder: str) -> str:
    return f"<{placeholder} known after create>"


def stand_in_outputs() -> dict[str, str]:
    return {name: stand_in(name) for name in OUTPUT_PLACEHOLDERS}


def _name(key: str, spec: Any) -> str:
    entry = SPECS_BY_KEY[key]
    value = spec.get(entry.name_field) if isinstance(spec, dict) else None
    return f"{entry.kind} {value}" if value else entry.key


def validate_rendered(rendered: Mapping[str, Any]) -> list[Finding]:
    """Shape and our own checks over rendered specs (catalog key -> request)."""
    findings: list[Finding] = []
    for entry in SPECS:
        spec = rendered.get(entry.key)
        if spec is None:
            continue
        for problem in shape_errors(entry.service, entry.operation, spec):
            findings.append(
                Finding(
                    ERROR,
                    f"{_name(entry.key, spec)} (infra/{entry.filename})",
                    f"does not match botocore's {entry.service} {entry.operation} request shape: {problem}.",
                    f"Edit infra/{entry.filename} to match `aws {entry.service} "
                    f"{_cli(entry.operation)} --generate-cli-skeleton`.",
                )
            )
    environment_keys = {
        key: spec
        for key, spec in rendered.items()
        if SPECS_BY_KEY[key].operation == "CreateComputeEnvironment" and "computeEnvironmentName" in spec
    }
    environments = {spec["computeEnvironmentName"]: spec for spec in environment_keys.values()}
    hardware_of = {key: w.hardware for w in WORKLOADS for key in w.environments}
    workload_of = {w.job_definition: w for w in WORKLOADS}
    for key, ce in environment_keys.items():
        name = ce["computeEnvironmentName"]
        findings.extend(
            check_compute_environment(f"compute environment {name}", ce, hardware_of.get(key, GPU))
        )
    for key, spec in rendered.items():
        operation = SPECS_BY_KEY[key].operation
        if operation == "CreateJobQueue":
            findings.extend(check_job_queue(f"job queue {spec.get('jobQueueName')}", spec, set(environments)))
        elif operation == "RegisterJobDefinition":
            name = str(spec.get("jobDefinitionName"))
            resources = job_resources(spec)
            workload = workload_of.get(key)
            hardware = workload.hardware if workload else GPU
            findings.extend(check_job_definition(name, spec, resources, hardware))
            # A job definition outside every workload is checked against every environment.
            runs_on = (
                {k: environment_keys[k] for k in workload.environments if k in environment_keys}
                if workload
                else environment_keys
            )
            for ce in runs_on.values():
                ce_name = ce["computeEnvironmentName"]
                findings.extend(
                    check_job_on_environment(name, resources, f"compute environment {ce_name}", ce, hardware)
                )
    for workload in WORKLOADS:
        job = rendered.get(workload.job_definition) or {}
        allowed = {
            environment_keys[k]["computeEnvironmentName"]
            for k in workload.environments
            if k in environment_keys
        }
        for queue_key in workload.queues:
            queue = rendered.get(queue_key)
            if queue is not None and allowed:
                findings.extend(
                    check_queue_environments(
                        f"job queue {queue.get('jobQueueName')}",
                        queue,
                        allowed,
                        f"job definition {job.get('jobDefinitionName', workload.job_definition)}",
                    )
                )
    work_queue, dead_letter_queue = rendered.get("sqs/work-queue"), rendered.get("sqs/dead-letter-queue")
    if work_queue is not None and dead_letter_queue is not None:
        findings.extend(check_dead_letter_retention(work_queue, dead_letter_queue))
    # The same problem found through two routes is reported once.
    return list(dict.fromkeys(findings))


def _cli(operation: str) -> str:
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in operation).lstrip("-")


def validate_specs(
    params: Mapping[str, Any],
    variables: Mapping[str, Any],
    spec_dir: Path | str | None = None,
) -> ValidationResult:
    """Resolve the values, render every spec and check it. Raises ``MissingValuesError`` (all missing
    names at once) or ``InfraSpecError`` (every error with its fix). Makes no AWS call."""
    templates = load_templates(spec_dir)
    unknown = unknown_placeholders(templates)
    if unknown:
        raise InfraSpecError(
            [
                Finding(
                    ERROR,
                    f"infra/{SPECS_BY_KEY[key].filename}",
                    f"uses placeholder(s) {', '.join(sorted(names))} that no Param or earlier step fills.",
                    "Use a known placeholder (see the Infrastructure section of the README) or a literal.",
                )
                for key, names in unknown.items()
            ]
        )
    values = resolve_values(params, variables)
    context = {**stand_in_outputs(), **values}
    rendered = {key: render(template, context, f"infra/{key}.json") for key, template in templates.items()}
    findings = check_values(values) + validate_rendered(rendered)
    for workload in WORKLOADS:
        template = templates.get(workload.job_definition)
        if isinstance(template, dict):
            name = str(template.get("jobDefinitionName", workload.job_definition))
            findings.extend(check_job_role(name, template, workload.job_role))
    result = ValidationResult(values=values, rendered=rendered, findings=findings)
    if result.errors:
        raise InfraSpecError(result.findings)
    return result
