"""The bodies of ``face_indexing``'s Python tasks: read AWS through hooks, decide with pure functions,
and log every decision as a table. The DAG file only wires these together."""

from __future__ import annotations

import logging
from typing import Any

from faceidx.planning import ScalingPlan, ScalingPolicy, plan_submissions
from faceidx.queue_depth import QueueDepth
from faceidx.tables import format_table

log = logging.getLogger(__name__)

ROLES = ("primary", "secondary")
BRANCH_NOTHING = "nothing_to_submit"


def count_active_jobs(params: dict[str, Any], aws_conn_id: str) -> dict[str, Any]:
    """Active workers on both Batch queues. Any AWS error fails the task: never guess zero."""
    from faceidx.hooks.batch import BatchActiveJobsHook

    hook = BatchActiveJobsHook(aws_conn_id=aws_conn_id)
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


def decision_table(plan: ScalingPlan, depth: QueueDepth, policy: ScalingPolicy, dry_run: bool) -> str:
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
    if dry_run:
        rows.append(("dry_run", "yes: nothing will be submitted"))
    for reason in plan.reasons:
        rows.append(("reason", reason))
    return format_table(("item", "value"), rows, title="face_indexing scaling decision")


def plan_run(depth: dict[str, int], active: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Apply the scaling rule. Returns the plan plus the two ``array_properties`` values for XCom."""
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
    log.info("%s", decision_table(plan, snapshot, policy, dry_run))
    result = plan.to_dict()
    result["depth"] = snapshot.to_dict()
    result["dry_run"] = dry_run
    result["job_queues"] = {role: params[f"{role}_job_queue"] for role in ROLES}
    for role in ROLES:
        sub = getattr(plan, role)
        result[f"{role}_array_properties"] = sub.array_properties if sub else None
    return result


def choose_branches(decision: dict[str, Any]) -> list[str]:
    """Task ids to follow: the submits the plan asks for, or ``nothing_to_submit``."""
    if decision.get("dry_run"):
        log.info("dry_run: the plan above is not submitted")
        return [BRANCH_NOTHING]
    chosen = [f"submit_{role}" for role in ROLES if decision.get(role)]
    log.info("following %s", ", ".join(chosen) if chosen else BRANCH_NOTHING)
    return chosen or [BRANCH_NOTHING]


def report_submissions(decision: dict[str, Any], ti: Any) -> dict[str, Any]:
    """Log and return what this run submitted (job ids from the BatchOperators' XCom)."""
    submitted: dict[str, Any] = {}
    rows = []
    for role in ROLES:
        sub = decision.get(role)
        job_id = ti.xcom_pull(task_ids=f"submit_{role}") if sub else None
        if sub and job_id:
            submitted[role] = {
                "job_id": job_id,
                "job_queue": decision["job_queues"][role],
                "array_size": sub.get("array_size"),
                "workers": sub["workers"],
            }
        rows.append(
            (
                role,
                decision["job_queues"][role],
                (f"array of {sub['array_size']}" if sub.get("array_size") else "plain job") if sub else "-",
                job_id or ("dry run" if sub and decision.get("dry_run") else "-"),
            )
        )
    log.info("%s", format_table(("role", "job queue", "submitted", "job id"), rows, title="Submitted"))
    return {"depth": decision["depth"], "submitted": submitted, "dry_run": decision.get("dry_run", False)}
