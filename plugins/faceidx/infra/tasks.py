"""The bodies of ``face_infra_bootstrap``'s tasks. The DAG file only wires these together.

Each step renders its specs with the values from ``validate`` and the outputs of earlier steps (queue
URL, role ARNs), applies each with its catalog entry's ``ResourceKind`` record through
``faceidx.infra.reconcile.reconcile`` on an ``InfraReconcileHook`` and returns
``{"step", "results", "outputs"}`` for XCom. ``run_bootstrap`` runs them all in order in one process
(tests and scripts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from faceidx.common.constants import VAR_MAINTENANCE_JOB_QUEUE, VAR_OUTPUT_URI, VAR_QUEUE_URL
from faceidx.common.tables import format_table
from faceidx.infra.catalog import (
    MAINTENANCE_QUEUE_KEY,
    STEP_SQS,
    STEPS,
    default_spec_dir,
    entries_for,
    load_templates,
)
from faceidx.infra.reconcile import reconcile
from faceidx.infra.render import render
from faceidx.infra.report import findings_table, results_table, values_table
from faceidx.infra.results import Action, ResourceResult
from faceidx.infra.validate import stand_in, stand_in_outputs, validate_specs
from faceidx.infra.values import DRY_RUN_PARAM, VALUES

log = logging.getLogger(__name__)

STEP_TITLES = {
    "sqs": "SQS: dead-letter queue, work queue, queue policy",
    "iam": "IAM: instance role and profile, the worker and maintenance job roles and their policies",
    "bucket_notification": "S3: input bucket notification to the work queue",
    "compute_environments": "AWS Batch: compute environments (GPU workers, CPU maintenance)",
    "job_queues": "AWS Batch: job queues",
    "job_definition": "AWS Batch: job definitions (GPU worker, index maintenance)",
}


def read_variables() -> dict[str, Any]:
    """The Airflow Variables that may supply each value (``faceidx_<param>``); None when unset."""
    from airflow.sdk import Variable

    return {v.variable: Variable.get(v.variable, default=None) for v in VALUES}


def validate_step(
    params: Mapping[str, Any], variables: Mapping[str, Any], spec_dir: Path | str | None = None
) -> dict[str, Any]:
    """Offline validation (no AWS call). Returns the run's config for every later task."""
    directory = Path(spec_dir) if spec_dir else default_spec_dir()
    result = validate_specs(params, variables, directory)
    dry_run = bool(params.get(DRY_RUN_PARAM, False))
    log.info("%s", values_table(result.values))
    warnings = [f.to_dict() for f in result.warnings]
    if warnings:
        log.warning("%s", findings_table(warnings, "Warnings (the bootstrap goes on)"))
    log.info(
        "All %d specs in %s are valid%s.",
        len(result.rendered),
        directory,
        "; dry run: the next tasks only plan" if dry_run else "",
    )
    return {"values": result.values, "spec_dir": str(directory), "dry_run": dry_run, "warnings": warnings}


def merged_outputs(upstream: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for step in upstream:
        outputs.update((step or {}).get("outputs", {}))
    return outputs


def run_step(
    step: str, config: Mapping[str, Any], hook: Any, upstream: Sequence[Mapping[str, Any] | None] = ()
) -> dict[str, Any]:
    """Apply every spec of ``step``; ``upstream`` are earlier steps' return values."""
    dry_run = bool(config["dry_run"])
    outputs = merged_outputs(upstream)
    templates = load_templates(config["spec_dir"])
    results: list[ResourceResult] = []
    for entry in entries_for(step):
        known = {k: v for k, v in outputs.items() if v is not None}
        values = {**(stand_in_outputs() if dry_run else {}), **config["values"], **known}
        spec = render(templates[entry.key], values, f"infra/{entry.filename}")
        # Another spec a record reads (the compute environment's updatePolicy is sized to the job
        # definition's attempt timeout, a literal in its template).
        context = {name: templates[key] for name, key in entry.reads.items()}
        result = reconcile(hook, entry.resource_kind, spec, dry_run=dry_run, context=context)
        for field, placeholder in entry.outputs.items():
            value = result.outputs.get(field)
            outputs[placeholder] = (
                value if value is not None else (stand_in(placeholder) if dry_run else None)
            )
        results.append(result)
    title = STEP_TITLES[step] + (" (dry run: plan only)" if dry_run else "")
    log.info("%s", results_table(results, title))
    return {"step": step, "results": [r.to_dict() for r in results], "outputs": outputs}


def publish_variables(
    config: Mapping[str, Any],
    sqs: Mapping[str, Any],
    setter: Callable[[str, str, str], None] | None = None,
) -> dict[str, str]:
    """After a real run, set the Variables face_indexing and the index steps read, so they need no more
    configuration: the work queue's URL, the output URI, and the maintenance job queue's name (the
    index steps submit their Batch jobs there; while it is unset they run in their Airflow task)."""
    maintenance_queue = load_templates(config["spec_dir"])[MAINTENANCE_QUEUE_KEY]["jobQueueName"]
    values = {
        VAR_QUEUE_URL: str(sqs["outputs"]["QUEUE_URL"]),
        VAR_OUTPUT_URI: str(config["values"]["OUTPUT_URI"]),
        VAR_MAINTENANCE_JOB_QUEUE: str(maintenance_queue),
    }
    if config["dry_run"]:
        log.info("dry run: Airflow Variables %s are not set", ", ".join(values))
        return {}
    if setter is None:
        from airflow.sdk import Variable

        def setter(key: str, value: str, description: str) -> None:
            Variable.set(key, value, description=description)

    for key, value in values.items():
        setter(key, value, "Set by face_infra_bootstrap")
    log.info("%s", format_table(("Airflow Variable", "value"), sorted(values.items()), title="Variables set"))
    return values


def summarize(config: Mapping[str, Any], steps: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The last task: one table of every resource, its ARN and the action taken (or planned)."""
    results = [ResourceResult.from_dict(r) for step in steps for r in step.get("results", [])]
    dry_run = bool(config["dry_run"])
    title = (
        "face_infra_bootstrap plan (dry run: nothing was changed)"
        if dry_run
        else "face_infra_bootstrap summary"
    )
    log.info("%s", results_table(results, title))
    replace = [r for r in results if r.action is Action.NEEDS_REPLACEMENT]
    for r in replace:
        log.warning(
            "%s %s needs replacement: %s %s", r.kind, r.name, "; ".join(c.path for c in r.changes), r.note
        )
    counts = {str(a): sum(1 for r in results if r.action is a) for a in Action}
    log.info("%s", format_table(("action", "resources"), sorted(counts.items()), title="Totals"))
    return {
        "dry_run": dry_run,
        "counts": counts,
        "resources": [
            {"kind": r.kind, "name": r.name, "arn": r.arn, "action": str(r.action)} for r in results
        ],
        "needs_replacement": [f"{r.kind} {r.name}" for r in replace],
    }


def run_bootstrap(
    params: Mapping[str, Any],
    variables: Mapping[str, Any],
    hook_factory: Callable[[], Any],
    spec_dir: Path | str | None = None,
) -> dict[str, Any]:
    """Every step in dependency order in this process. The hook is built only after validation, so
    an invalid spec fails before any AWS call."""
    config = validate_step(params, variables, spec_dir)
    hook = hook_factory()
    steps: list[dict[str, Any]] = []
    for step in STEPS:
        steps.append(run_step(step, config, hook, steps))
    sqs = next(s for s in steps if s["step"] == STEP_SQS)
    return {"config": config, "steps": steps, "summary": summarize(config, steps), "sqs": sqs}
