"""
### face_infra_bootstrap: create or update faceidx's AWS side, safely, as many times as you like

Manual only (no schedule, so nothing to backfill). It reconciles the specs under `infra/`: each
resource is described, created when absent, updated where it differs, and reported as `created`,
`updated`, `unchanged` or `needs-replacement` (never replaced by this DAG).

1. **validate**: fills the specs with this run's Params (else the Airflow Variables
   `faceidx_<param>`, else defaults), checks each against botocore's model of its API request, and
   checks what AWS would accept but cannot work (job memory, GPU and vCPUs on every listed instance
   type, maxvCpus, allocation strategy, job-queue references). Any problem fails here, before any
   AWS call.
2. **ensure_sqs**: dead-letter queue, work queue (30 min visibility, redrive after 5 receives),
   and a queue policy that lets only the input bucket send.
3. **ensure_iam**: instance role + instance profile (ECS-for-EC2 policy); job role with a
   least-privilege inline policy (read input, write the output prefix, work the queue); the
   maintenance job role (read, write and delete the index under the output prefix only).
4. **ensure_bucket_notification**: object-created events for .jpg/.jpeg/.png go to the work queue.
5. **ensure_compute_environments**: primary (0-16 vCPUs) and secondary (0-256 vCPUs) SPOT
   environments over a list of GPU instance types (the `instance_types` Param: g4dn.xlarge first,
   g5/g6 as fall-backs) on the Amazon Linux 2023 NVIDIA ECS AMI (`ECS_AL2023_NVIDIA`); waits for
   VALID with the provider's `compute_env_ready` waiter, creates an environment again while IAM
   propagates its instance profile, and repairs one that is INVALID although it matches its spec.
   A third, CPU environment (0-32 vCPUs, memory-optimised r7i/r6i/r5 spot, `ECS_AL2023`) runs the
   index maintenance jobs (`python -m faceidx.jobs`).
6. **ensure_job_queues**: priority 100 and 50; the maintenance queue on its own environment.
7. **ensure_job_definition**: the GPU worker's and the maintenance job's; each registers a new
   revision only when its content changed.
8. **publish_variables**: sets `faceidx_queue_url` and `faceidx_output_uri` for face_indexing, and
   `faceidx_maintenance_job_queue` for the index steps that run as Batch jobs.
9. **summary**: one table: resource, name, action, ARN and difference.

**Params**: the per-account values (bucket, output URI, subnets, security groups, worker image,
names) and `dry_run` (on by default): a dry run validates and prints the plan, changing nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from faceidx.common.constants import DEFAULT_AWS_CONN_ID
from faceidx.common.params import optional_list_param, optional_param
from faceidx.infra.values import DRY_RUN_PARAM, VALUES, InfraValue


def _describe(value: InfraValue) -> str:
    fallback = f"Empty: the Airflow Variable {value.variable}"
    if value.derived:
        return f"{value.description} {fallback}, else {value.derived}."
    if value.default:
        return f"{value.description} {fallback}, else {value.default!r}."
    if value.optional:
        return f"{value.description} {fallback}, else left out."
    return f"{value.description} {fallback}; one of the two must be set (the run fails at validate)."


PARAMS: dict[str, Param] = {
    value.param: (optional_list_param if value.is_list else optional_param)(_describe(value))
    for value in VALUES
}
PARAMS[DRY_RUN_PARAM] = Param(
    True, type="boolean", description="Validate and print the plan only; change nothing in AWS."
)


def _hook() -> Any:
    from faceidx.infra.hook_base import InfraReconcileHook

    return InfraReconcileHook(aws_conn_id=DEFAULT_AWS_CONN_ID)


@dag(
    dag_id="face_infra_bootstrap",
    doc_md=__doc__,
    schedule=None,
    allowed_run_types=["manual"],  # no schedule, and no backfill either
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["faceidx", "infrastructure", "aws-batch"],
    default_args={
        "owner": "faceidx",
        "retries": 1,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(minutes=30),
    },
    params=PARAMS,
)
def face_infra_bootstrap() -> None:
    # A spec problem is not transient: retrying cannot help.
    @task(retries=0)
    def validate(**context: Any) -> dict[str, Any]:
        from faceidx.infra.tasks import read_variables, validate_step

        return validate_step(context["params"], read_variables())

    @task
    def ensure_sqs(config: dict[str, Any]) -> dict[str, Any]:
        from faceidx.infra.tasks import run_step

        return run_step("sqs", config, _hook())

    @task
    def ensure_iam(config: dict[str, Any], sqs: dict[str, Any]) -> dict[str, Any]:
        from faceidx.infra.tasks import run_step

        return run_step("iam", config, _hook(), [sqs])

    @task
    def ensure_bucket_notification(config: dict[str, Any], sqs: dict[str, Any]) -> dict[str, Any]:
        from faceidx.infra.tasks import run_step

        return run_step("bucket_notification", config, _hook(), [sqs])

    @task
    def ensure_compute_environments(config: dict[str, Any], iam: dict[str, Any]) -> dict[str, Any]:
        from faceidx.infra.tasks import run_step

        return run_step("compute_environments", config, _hook(), [iam])

    @task
    def ensure_job_queues(config: dict[str, Any], environments: dict[str, Any]) -> dict[str, Any]:
        from faceidx.infra.tasks import run_step

        return run_step("job_queues", config, _hook(), [environments])

    @task
    def ensure_job_definition(
        config: dict[str, Any], sqs: dict[str, Any], iam: dict[str, Any]
    ) -> dict[str, Any]:
        from faceidx.infra.tasks import run_step

        return run_step("job_definition", config, _hook(), [sqs, iam])

    @task
    def publish_variables(config: dict[str, Any], sqs: dict[str, Any]) -> dict[str, str]:
        from faceidx.infra.tasks import publish_variables as publish

        return publish(config, sqs)

    @task
    def summary(config: dict[str, Any], *steps: dict[str, Any]) -> dict[str, Any]:
        from faceidx.infra.tasks import summarize

        return summarize(config, steps)

    config = validate()
    sqs = ensure_sqs(config)
    iam = ensure_iam(config, sqs)
    notification = ensure_bucket_notification(config, sqs)
    environments = ensure_compute_environments(config, iam)
    queues = ensure_job_queues(config, environments)
    job_definition = ensure_job_definition(config, sqs, iam)
    published = publish_variables(config, sqs)
    [notification, queues, job_definition] >> published
    published >> summary(config, sqs, iam, notification, environments, queues, job_definition)


face_infra_bootstrap()
