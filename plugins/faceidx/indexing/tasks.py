"""The bodies of ``face_indexing``'s Python tasks: read AWS through hooks, decide with pure functions,
and log every decision as a table. The DAG file only wires these together."""

from __future__ import annotations

import logging
import re
from typing import Any, TypedDict

from faceidx.aws.parsing import QueueDepth
from faceidx.common.constants import DEFAULT_SPOT_PRICE_PER_HOUR, JOB_NAME_PREFIX
from faceidx.common.tables import format_table
from faceidx.indexing.planning import ScalingPlan, ScalingPolicy, plan_submissions

log = logging.getLogger(__name__)

ROLES = ("primary", "secondary")
BRANCH_NOTHING = "nothing_to_submit"
# A submit whose recount found the target met by another run's workers: a success, nothing submitted.
FILLED = "FILLED BY ANOTHER RUN"


def count_active_jobs(params: dict[str, Any], aws_conn_id: str) -> dict[str, Any]:
    """Active workers on both Batch queues. Any AWS error fails the task: never guess zero."""
    from faceidx.aws.batch import BatchJobsHook

    hook = BatchJobsHook(aws_conn_id=aws_conn_id)
    counts = {role: hook.count_active_jobs(params[f"{role}_job_queue"]) for role in ROLES}
    log.info(
        "%s",
        format_table(
            ("role", "job queue", "active workers", "array parents", "by state"),
            [
                (
                    role,
                    c.job_queue,
                    c.workers,
                    c.array_parents,
                    ", ".join(f"{k}={v}" for k, v in c.by_state.items() if v) or "none",
                )
                for role, c in counts.items()
            ],
            title="Active AWS Batch jobs (array jobs counted by unfinished children)",
        ),
    )
    return {role: c.to_dict() for role, c in counts.items()}


def job_name(role: str, run_id: str) -> str:
    """A Batch job name for this run (letters, digits, - and _ only; at most 128 characters)."""
    return f"{JOB_NAME_PREFIX}-{role}-{re.sub(r'[^A-Za-z0-9_-]', '-', run_id)}"[:128]


def check_queue_health(
    params: dict[str, Any], queue_url: str, aws_conn_id: str, context: Any
) -> dict[str, Any]:
    """Oldest message age and DLQ depth; warnings go to the log and the optional callback."""
    from faceidx.indexing.health import assess_queue_health
    from faceidx.indexing.monitoring import read_queue_health

    if queue_url:
        health = read_queue_health(queue_url, int(params["max_message_age_seconds"]), aws_conn_id)
    else:
        health = assess_queue_health(
            None,
            None,
            None,
            int(params["max_message_age_seconds"]),
            ["no queue URL configured (see sense_depth)"],
        )
    age = health.oldest_message_age_seconds
    rows: list[tuple[str, Any]] = [
        ("oldest message age (s)", "unknown" if age is None else round(age)),
        ("max_message_age_seconds", health.max_message_age_seconds),
        ("dead-letter queue", health.dlq_url or "none configured"),
        ("dead-letter depth", health.dlq_depth),
    ]
    rows += [("note", note) for note in health.notes]
    log.info("%s", format_table(("item", "value"), rows, title="Queue health"))
    for warning in health.warnings:
        log.warning("queue health: %s: %s", warning["check"], warning["message"])
    callback_path = params.get("queue_health_callback") or ""
    if health.warnings and callback_path:
        from airflow.sdk.module_loading import import_string

        log.info("calling queue_health_callback %s", callback_path)
        import_string(callback_path)(health=health.to_dict(), context=context)
    return health.to_dict()


def decision_table(
    plan: ScalingPlan,
    depth: QueueDepth,
    policy: ScalingPolicy,
    dry_run: bool,
    health: dict[str, Any] | None = None,
) -> str:
    rows: list[tuple[str, Any]] = [
        ("depth: visible", depth.visible),
        ("depth: in flight", depth.in_flight),
        ("depth: delayed", depth.delayed),
        ("active: primary", plan.active_primary),
        ("active: secondary", plan.active_secondary),
        ("policy: min_depth", policy.min_depth),
        ("policy: secondary_threshold", policy.secondary_threshold),
        ("policy: secondary_max_array", policy.secondary_max_array),
        ("policy: primary capacity", f"{policy.primary_capacity} jobs ({policy.primary_max_vcpus} vCPU)"),
        (
            "policy: secondary capacity",
            f"{policy.secondary_capacity} jobs ({policy.secondary_max_vcpus} vCPU)",
        ),
        ("target: primary", plan.primary_target),
        ("target: secondary", plan.secondary_target),
    ]
    for role in ROLES:
        sub = getattr(plan, role)
        rows.append((f"decision: {role}", sub.shape if sub else "nothing"))
    if health:
        age = health.get("oldest_message_age_seconds")
        rows.append(("queue: oldest message age (s)", "unknown" if age is None else round(age)))
        rows.append(("queue: dead-letter depth", health.get("dlq_depth")))
        rows.extend(("queue: WARNING", w["message"]) for w in health.get("warnings", []))
    if dry_run:
        rows.append(("dry_run", "yes: nothing will be submitted"))
    for reason in plan.reasons:
        rows.append(("reason", reason))
    return format_table(("item", "value"), rows, title="face_indexing scaling decision")


class PlanXCom(TypedDict):
    """The ``plan`` task's XCom: flat, one key per fact (``multiple_outputs`` exposes each key)."""

    visible: int
    in_flight: int
    delayed: int
    dry_run: bool
    reasons: list[str]
    health: dict[str, Any] | None
    primary_active: int
    primary_target: int
    primary_workers: int  # 0: nothing to submit
    primary_array_properties: dict[str, int] | None  # None: a plain job
    primary_job_name: str
    primary_job_queue: str
    secondary_active: int
    secondary_target: int
    secondary_workers: int
    secondary_array_properties: dict[str, int] | None
    secondary_job_name: str
    secondary_job_queue: str


def plan_run(
    depth: dict[str, int],
    active: dict[str, Any],
    params: dict[str, Any],
    run_id: str,
    health: dict[str, Any] | None = None,
) -> PlanXCom:
    """Apply the scaling rule; log the decision table; return the flat plan for XCom."""
    snapshot = QueueDepth.from_dict(depth)
    policy = ScalingPolicy.from_mapping(params)
    plan = plan_submissions(
        visible=snapshot.visible,
        in_flight=snapshot.in_flight,
        active_primary=int(active["primary"]["workers"]),
        active_secondary=int(active["secondary"]["workers"]),
        policy=policy,
    )
    dry_run = bool(params.get("dry_run"))
    log.info("%s", decision_table(plan, snapshot, policy, dry_run, health))
    primary, secondary = plan.primary, plan.secondary
    return PlanXCom(
        visible=snapshot.visible,
        in_flight=snapshot.in_flight,
        delayed=snapshot.delayed,
        dry_run=dry_run,
        reasons=list(plan.reasons),
        health=health,
        primary_active=plan.active_primary,
        primary_target=plan.primary_target,
        primary_workers=primary.workers if primary else 0,
        primary_array_properties=primary.array_properties if primary else None,
        primary_job_name=job_name("primary", run_id),
        primary_job_queue=str(params["primary_job_queue"]),
        secondary_active=plan.active_secondary,
        secondary_target=plan.secondary_target,
        secondary_workers=secondary.workers if secondary else 0,
        secondary_array_properties=secondary.array_properties if secondary else None,
        secondary_job_name=job_name("secondary", run_id),
        secondary_job_queue=str(params["secondary_job_queue"]),
    )


def choose_branches(decision: dict[str, Any]) -> list[str]:
    """Task ids to follow: the submits the plan asks for, or ``nothing_to_submit``."""
    if decision.get("dry_run"):
        log.info("dry_run: the plan above is not submitted")
        return [BRANCH_NOTHING]
    chosen = [f"submit_{role}" for role in ROLES if decision.get(f"{role}_workers")]
    log.info("following %s", ", ".join(chosen) if chosen else BRANCH_NOTHING)
    return chosen or [BRANCH_NOTHING]


def collect_worker_logs(
    decision: dict[str, Any] | None,
    params: dict[str, Any],
    aws_conn_id: str,
    job_ids: dict[str, str | None] | None = None,
    recounts: dict[str, dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """Describe the jobs this run's submit tasks returned, read every worker's log stream, and
    estimate the GPU cost. ``job_ids``: role -> the submit task's output (None: not submitted);
    ``recounts``: role -> the submit task's ``recount`` XCom (what it found right before SubmitJob)."""
    from faceidx.aws.batch import BatchJobsHook
    from faceidx.indexing.operators import filled_by
    from faceidx.indexing.worker_runs import WorkerStats, estimate_cost, totals, worker_stats

    if not decision or decision.get("dry_run"):
        return {"jobs": {}, "workers": [], "totals": totals([]), "cost": {}}
    batch = BatchJobsHook(aws_conn_id=aws_conn_id)
    jobs: dict[str, Any] = {}
    workers: list[WorkerStats] = []
    for role in ROLES:
        if not decision.get(f"{role}_workers"):
            continue
        name = decision[f"{role}_job_name"]
        job_id = (job_ids or {}).get(role)
        recount = (recounts or {}).get(role) or {}
        if not job_id and recount and not recount.get("submitting"):
            jobs[role] = {
                "job_name": name,
                "job_id": None,
                "status": FILLED,
                "reason": filled_by(recount),
                "active_jobs": recount.get("active_jobs", []),
            }
            continue
        described = batch.describe_jobs([job_id]) if job_id else []
        if not described:
            jobs[role] = {"job_name": name, "job_id": None, "status": "NOT SUBMITTED", "reason": None}
            continue
        job = described[0]
        jobs[role] = {
            "job_name": name,
            "job_id": job["jobId"],
            "status": job.get("status"),
            "reason": job.get("statusReason"),
        }
        workers.extend(worker_stats(role, w.job, w.messages) for w in batch.worker_logs(job["jobId"]))

    price = float(params.get("spot_price_per_hour", DEFAULT_SPOT_PRICE_PER_HOUR))
    cost = estimate_cost(workers, price)
    log.info(
        "%s",
        format_table(
            ("job", "role", "array index", "status", "images", "faces", "errors", "images/s", "runtime s"),
            [
                (
                    w.job_id,
                    w.role,
                    w.array_index,
                    w.status + (" (no log)" if not w.log_found else " (partial log)" if w.partial else ""),
                    w.images,
                    w.faces,
                    w.errors,
                    None if w.images_per_s is None else round(float(w.images_per_s), 2),
                    None if w.runtime_seconds is None else round(w.runtime_seconds),
                )
                for w in workers
            ],
            title="Workers (one row per plain job or array child; read from CloudWatch Logs)",
        ),
    )
    log.info(
        "%s",
        format_table(
            ("environment", "workers", "instance-seconds", "images", "USD", "USD per 1,000 images"),
            [
                (
                    role,
                    c["workers"],
                    round(c["instance_seconds"]),
                    c["images"],
                    round(c["usd"], 4),
                    None if c["usd_per_1000"] is None else round(c["usd_per_1000"], 4),
                )
                for role, c in cost.items()
            ],
            title=f"Estimated GPU cost at {price} USD per instance-hour (spot_price_per_hour Param)",
        ),
    )
    return {"jobs": jobs, "workers": [w.to_dict() for w in workers], "totals": totals(workers), "cost": cost}


def report_run(decision: dict[str, Any], workers: dict[str, Any] | None) -> dict[str, Any]:
    """The run summary an engineer reads first; also the run's XCom. Fails if a job failed."""
    workers = workers or {"jobs": {}, "totals": {}, "cost": {}}
    jobs = workers.get("jobs", {})
    submitted = {}
    for role in ROLES:
        workers_planned = int(decision.get(f"{role}_workers") or 0)
        if not workers_planned or decision.get("dry_run"):
            continue
        job = jobs.get(role, {})
        array = decision.get(f"{role}_array_properties") or {}
        submitted[role] = {
            "job_id": job.get("job_id"),
            "job_queue": decision[f"{role}_job_queue"],
            "array_size": array.get("size"),
            "workers": workers_planned,
            "status": job.get("status"),
            "reason": job.get("reason"),
        }
    counts = workers.get("totals", {})
    cost = workers.get("cost", {})
    usd = sum(c["usd"] for c in cost.values()) if cost else 0.0
    health = decision.get("health") or {}
    summary = {
        "depth_before": {k: decision[k] for k in ("visible", "in_flight", "delayed")},
        "submitted": submitted,
        "dry_run": bool(decision.get("dry_run")),
        "images": counts.get("images", 0),
        "faces": counts.get("faces", 0),
        "error_rows": counts.get("errors", 0),
        "cost_usd": round(usd, 6),
        "cost_by_environment": cost,
        "oldest_message_age_seconds": health.get("oldest_message_age_seconds"),
        "dlq_depth": health.get("dlq_depth"),
    }
    jobs_cell = ", ".join(
        f"{role}: {'array of ' + str(s['array_size']) if s['array_size'] else 'plain job'} "
        f"on {s['job_queue']} ({s['status'] or 'unknown'})"
        for role, s in submitted.items()
        if s["status"] != FILLED
    ) or ("none (dry run)" if summary["dry_run"] else "none")
    filled_rows = [
        (f"{role}: not submitted", f"the target was already met when this run recounted: {s['reason']}")
        for role, s in submitted.items()
        if s["status"] == FILLED
    ]
    age = summary["oldest_message_age_seconds"]
    log.info(
        "%s",
        format_table(
            ("item", "value"),
            [
                (
                    "depth before (visible / in flight)",
                    f"{decision['visible']:,} / {decision['in_flight']:,}",
                ),
                ("jobs submitted", jobs_cell),
                *filled_rows,
                ("images indexed", summary["images"]),
                ("faces found", summary["faces"]),
                ("error rows", summary["error_rows"]),
                ("estimated GPU cost (USD)", round(usd, 4)),
                ("oldest message age (s)", "unknown" if age is None else round(age)),
                ("dead-letter depth", summary["dlq_depth"]),
            ],
            title="face_indexing run summary",
        ),
    )
    failed = [
        f"{role} job {s['job_id'] or '(not submitted)'} is {s['status']}"
        for role, s in submitted.items()
        if s["status"] in (None, "FAILED", "NOT SUBMITTED")
    ]
    if failed:
        raise RuntimeError(
            "Not every planned Batch job succeeded: "
            + "; ".join(failed)
            + ". Read the submit and wait tasks' logs and the worker table above; the messages of a "
            "failed worker return to the queue after the visibility timeout, so nothing is lost."
        )
    return summary
