"""``SqsQueueDepthSensor``: gates a DAG on SQS backlog without consuming a single message;
``BatchJobWaitSensor``: waits for a submitted Batch job as long as the job itself may take.

The provider's ``SqsSensor`` receives messages (and deletes them by default), so it cannot be used to
measure depth: the work would vanish from the GPU workers. This sensor only calls
GetQueueAttributes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.sensors.batch import BatchSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk import PokeReturnValue
from airflow.sdk.exceptions import AirflowSkipException

from faceidx.aws.sqs import SqsWorkQueueHook
from faceidx.common.tables import format_pairs
from faceidx.indexing.triggers import SqsQueueDepthTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class SqsQueueDepthSensorError(RuntimeError):
    """The depth could not be read. Not an AirflowException, so soft_fail never hides it as a skip."""


class SqsQueueDepthSensor(AwsBaseSensor[SqsWorkQueueHook]):
    """Succeed once ``ApproximateNumberOfMessages >= min_depth``; return the depth snapshot as XCom.

    When nothing arrives before ``timeout`` the task is skipped (soft fail), never failed: an empty
    queue is not an error. Errors reading the queue (missing queue, access denied) fail the task.

    :param queue_url: URL of the work queue (templated).
    :param min_depth: visible messages needed to succeed (templated; default 1).
    :param wait_timeout: seconds to wait before skipping (templated, so a DAG Param can set it);
        overrides ``timeout`` when given.
    :param deferrable: wait in the triggerer with the async client (default True). When False the
        sensor runs in ``reschedule`` mode, so it never holds a worker slot either.
    """

    aws_hook_class = SqsWorkQueueHook
    template_fields: Sequence[str] = aws_template_fields("queue_url", "min_depth", "wait_timeout")

    def __init__(
        self,
        *,
        queue_url: str,
        min_depth: int | str = 1,
        wait_timeout: int | str | None = None,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("soft_fail", True)
        kwargs.setdefault("mode", "poke" if deferrable else "reschedule")
        kwargs.setdefault("poke_interval", 30)
        kwargs.setdefault("timeout", timedelta(minutes=4))
        super().__init__(**kwargs)
        self.queue_url = queue_url
        self.min_depth = min_depth
        self.wait_timeout = wait_timeout
        self.deferrable = deferrable

    def _log_depth(self, depth: dict[str, int], verdict: str) -> None:
        self.log.info(
            "%s",
            format_pairs(
                [
                    ("queue", self.queue_url),
                    ("visible (ApproximateNumberOfMessages)", depth["visible"]),
                    ("in flight (…NotVisible)", depth["in_flight"]),
                    ("delayed (…Delayed)", depth["delayed"]),
                    ("min_depth", int(self.min_depth)),
                    ("verdict", verdict),
                ],
                title="SQS queue depth (read with GetQueueAttributes; no message received)",
            ),
        )

    def poke(self, context: Context) -> PokeReturnValue:
        depth = self.hook.get_queue_depth(self.queue_url)
        ready = depth.visible >= int(self.min_depth)
        self._log_depth(depth.to_dict(), "enough backlog" if ready else "waiting")
        return PokeReturnValue(is_done=ready, xcom_value=depth.to_dict())

    def execute(self, context: Context) -> Any:
        if not self.queue_url:
            raise SqsQueueDepthSensorError(
                "No SQS queue URL: set the queue_url Param, or run face_infra_bootstrap, which stores the "
                "work queue's URL in the Airflow Variable faceidx_queue_url."
            )
        if self.wait_timeout not in (None, ""):
            self.timeout = float(self.wait_timeout)  # type: ignore[arg-type]
        if not self.deferrable:
            return super().execute(context)
        # One synchronous read first: no deferral round trip when the backlog is already there.
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        self.defer(
            trigger=SqsQueueDepthTrigger(
                queue_url=self.queue_url,
                min_depth=int(self.min_depth),
                poke_interval=float(self.poke_interval),
                deadline=time.time() + float(self.timeout),
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) + 60),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        if not event:
            raise SqsQueueDepthSensorError("SqsQueueDepthTrigger returned no event")
        status = event.get("status")
        if status == "success":
            self._log_depth(event["depth"], "enough backlog")
            return event["depth"]
        if status == "timeout":
            self._log_depth(event["depth"], "timed out: skipping this run")
            raise AirflowSkipException(f"Nothing to index: {event['message']}")
        raise SqsQueueDepthSensorError(event.get("message", f"unexpected trigger event {event}"))


class BatchJobWaitSensor(BatchSensor):
    """``BatchSensor`` (deferrable) for a job a submit task returned, bounded by the job's own limits.

    Before deferring it describes the job and its queue and waits as long as the job may take
    (``faceidx.indexing.waits.job_wait_bound``: the queue's RUNNABLE time limit plus attempts x the
    attempt timeout, plus a margin), logged as a table. A submit task that submitted nothing (the
    recount found the deficit filled, see ``BatchDeficitSubmitOperator``) leaves no job id: the wait is
    skipped, saying so.
    """

    def __init__(self, *, role: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.role = role

    def execute(self, context: Context) -> None:
        from faceidx.indexing.waits import job_wait_bound

        if not self.job_id or str(self.job_id) == "None":
            raise AirflowSkipException(
                f"{self.role}: this run submitted no job (the submit task's recount found the target met "
                "by another run's workers): nothing to wait for. report shows which run submitted."
            )
        job = self.hook.get_job_description(self.job_id)
        client: Any = self.hook.client
        queue_name = job.get("jobQueue")
        queues = client.describe_job_queues(jobQueues=[queue_name]).get("jobQueues", []) if queue_name else []
        definition = None
        if not job.get("timeout") or not job.get("retryStrategy"):
            # DescribeJobs carries the job's effective values; where it leaves one out, the job
            # definition's own value applies
            definitions = client.describe_job_definitions(jobDefinitions=[job["jobDefinition"]]).get(
                "jobDefinitions", []
            )
            definition = definitions[0] if definitions else None
        bound = job_wait_bound(job, queues[0] if queues else None, definition=definition)
        self.max_retries = bound.polls(self.poke_interval)
        limit = self.execution_timeout.total_seconds() if self.execution_timeout else None
        if limit is not None and bound.seconds > limit:
            self.log.warning(
                "%s: job %s may take up to %d s, but this task's execution_timeout is %d s (derived from "
                "infra/batch/job-definition.json when the DAG was parsed): the wait stops first. Make the "
                "job definition the DAG uses and infra/batch/job-definition.json agree.",
                self.role,
                self.job_id,
                bound.seconds,
                limit,
            )
        self.log.info(
            "%s",
            format_pairs(
                [
                    ("job", f"{self.job_id} ({job.get('jobName')}, {job.get('status')})"),
                    ("job queue", queue_name),
                    *bound.rows(),
                    ("polls", f"{self.max_retries} every {int(self.poke_interval)} s"),
                ],
                title=f"{self.role}: how long this task waits for the Batch job",
            ),
        )
        super().execute(context)
