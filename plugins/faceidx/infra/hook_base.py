"""``InfraReconcileHook``: faceidx's infrastructure reconciled through one Airflow AWS connection.

The AWS plumbing under ``faceidx.infra.reconcile.reconcile(hook, kind, spec)``, which applies one
``ResourceKind`` record (``kinds_*``): one client per service from the Airflow AWS connection, AWS
errors turned into messages that say what to do (through ``faceidx.aws.errors.explain``), and waiters
(never a sleep loop).

Only an empty describe, or the service's own "not found" code for the one resource asked about
(IAM ``NoSuchEntity``, SQS ``NonExistentQueue``: each ``ResourceKind`` names its ``absent_codes``),
means "absent". Any other ``ClientError`` (AccessDenied, throttling, a missing bucket) is raised with
AWS's code and message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import cached_property
from typing import Any

import botocore.waiter
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.exceptions import ClientError, WaiterError

from faceidx.aws.errors import error_code, explain
from faceidx.common.constants import DEFAULT_AWS_CONN_ID
from faceidx.infra.results import InfraReconcileError

log = logging.getLogger(__name__)


JOB_QUEUE_WAITERS: dict[str, Any] = {
    "version": 2,
    "waiters": {
        "JobQueueValid": {
            "operation": "DescribeJobQueues",
            "delay": 10,
            "maxAttempts": 60,
            "acceptors": [
                {
                    "argument": "jobQueues[].status",
                    "expected": "VALID",
                    "matcher": "pathAll",
                    "state": "success",
                },
                {
                    "argument": "jobQueues[].status",
                    "expected": "INVALID",
                    "matcher": "pathAny",
                    "state": "failure",
                },
            ],
        }
    },
}


# Batch has no official waiters for these either. "Settled": the environment has left CREATING /
# UPDATING, VALID or INVALID (the caller reads which). "Deleted": it is no longer listed (or DELETED).
COMPUTE_ENVIRONMENT_WAITERS: dict[str, Any] = {
    "version": 2,
    "waiters": {
        "ComputeEnvironmentSettled": {
            "operation": "DescribeComputeEnvironments",
            "delay": 15,
            "maxAttempts": 80,
            "acceptors": [
                {"argument": "computeEnvironments[].status", "expected": "VALID", "matcher": "pathAll",
                 "state": "success"},
                {"argument": "computeEnvironments[].status", "expected": "INVALID", "matcher": "pathAny",
                 "state": "success"},
                {"argument": "length(computeEnvironments[?status != 'DELETED']) == `0`", "expected": True,
                 "matcher": "path", "state": "failure"},
            ],
        },
        "ComputeEnvironmentDeleted": {
            "operation": "DescribeComputeEnvironments",
            "delay": 15,
            "maxAttempts": 80,
            "acceptors": [
                {"argument": "length(computeEnvironments[?status != 'DELETED']) == `0`", "expected": True,
                 "matcher": "path", "state": "success"},
            ],
        },
    },
}  # fmt: skip


def explain_client_error(err: ClientError, operation: str, resource: str, fix: str | None = None) -> str:
    """``explain`` with bootstrap's advice: nothing more was changed, and a rerun is safe."""
    rerun = "then rerun face_infra_bootstrap (it is safe to repeat)."
    done = "Nothing more was changed for this resource."
    if fix is not None:
        return explain(err, operation, resource, fix=f"{done} {fix}")
    return explain(
        err,
        operation,
        resource,
        fix=f"{done} Fix the cause above, {rerun}",
        fixes={"denied": f"{done} Grant {operation} to the identity of the Airflow AWS connection, {rerun}"},
    )


class InfraReconcileHook(AwsBaseHook):
    """IAM, SQS, S3 notification and AWS Batch calls for ``reconcile``, through one Airflow AWS
    connection. ``client_type`` is ``batch`` so the provider's Batch waiters (``compute_env_ready``) are
    found; other services get their own client."""

    def __init__(
        self,
        aws_conn_id: str | None = DEFAULT_AWS_CONN_ID,
        waiter_delay: int = 15,
        waiter_max_attempts: int = 80,
        **kwargs: Any,
    ) -> None:
        kwargs["client_type"] = "batch"
        super().__init__(aws_conn_id=aws_conn_id, **kwargs)
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self._clients: dict[str, Any] = {}

    @cached_property
    def _boto_session(self) -> Any:
        return self.get_session(region_name=self.region_name)

    def client_for(self, service: str) -> Any:
        """One boto3 client per service, built from the connection (endpoint URL, region, config)."""
        if service not in self._clients:
            self._clients[service] = self._boto_session.client(
                service,
                endpoint_url=self.conn_config.get_service_endpoint_url(service_name=service),
                config=self._get_config(),
                verify=self.verify,
            )
        return self._clients[service]

    def action(self, service: str, operation: str) -> str:
        """``batch:describe_job_queues`` -> ``batch:DescribeJobQueues``, as IAM policies name it."""
        mapping = self.client_for(service).meta.method_to_api_mapping
        return f"{service}:{mapping.get(operation, operation)}"

    def call(self, service: str, operation: str, resource: str, fix: str | None = None, **kwargs: Any) -> Any:
        """``client.<operation>(**kwargs)``; a ClientError becomes an InfraReconcileError."""
        try:
            return getattr(self.client_for(service), operation)(**kwargs)
        except ClientError as err:
            raise InfraReconcileError(
                explain_client_error(err, self.action(service, operation), resource, fix)
            ) from err

    def change(self, service: str, operation: str, resource: str, **kwargs: Any) -> Any:
        """A call that changes the account: logged before it is made."""
        log.info("%s:%s on %s", service, operation, resource)
        return self.call(service, operation, resource, **kwargs)

    def describe(
        self,
        service: str,
        operation: str,
        resource: str,
        absent_codes: Iterable[str] = (),
        fix: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Like ``call``, but returns None when AWS answers with one of ``absent_codes``: the resource
        asked about does not exist. Every other error is raised."""
        try:
            return getattr(self.client_for(service), operation)(**kwargs)
        except ClientError as err:
            if error_code(err) in set(absent_codes):
                return None
            raise InfraReconcileError(
                explain_client_error(err, self.action(service, operation), resource, fix)
            ) from err

    def paginate(self, service: str, operation: str, resource: str, key: str, **kwargs: Any) -> list[Any]:
        items: list[Any] = []
        try:
            for page in self.client_for(service).get_paginator(operation).paginate(**kwargs):
                items.extend(page.get(key, []))
        except ClientError as err:
            raise InfraReconcileError(
                explain_client_error(err, self.action(service, operation), resource)
            ) from err
        return items

    def _wait(
        self, waiter: Any, resource: str, describe: Any, goal: str = "become VALID", **kwargs: Any
    ) -> None:
        try:
            waiter.wait(**kwargs)
        except WaiterError as err:
            error = (err.last_response or {}).get("Error")
            state = f"AWS answered {error.get('Code')}: {error.get('Message')}" if error else describe()
            raise InfraReconcileError(
                f"{resource} did not {goal} ({err.kwargs.get('reason', err)}); {state}. Fix the cause "
                "(often a missing instance profile, subnet or security group) in the Params or infra/, then "
                "rerun face_infra_bootstrap: a changed spec is applied as an update, and an INVALID "
                "compute environment that matches its spec is deleted and created again."
            ) from err

    def _compute_environment_waiter(self, name: str) -> Any:
        model = dict(COMPUTE_ENVIRONMENT_WAITERS["waiters"][name])
        model.update(delay=self.waiter_delay, maxAttempts=self.waiter_max_attempts)
        return botocore.waiter.create_waiter_with_client(
            name,
            botocore.waiter.WaiterModel({"version": 2, "waiters": {name: model}}),
            self.client_for("batch"),
        )

    def describe_compute_environment(self, name: str) -> dict[str, Any] | None:
        """The environment as described now (None when absent or DELETED)."""
        found = self.call(
            "batch",
            "describe_compute_environments",
            f"compute environment {name}",
            computeEnvironments=[name],
        )
        live = [ce for ce in found.get("computeEnvironments", []) if ce.get("status") != "DELETED"]
        return live[0] if live else None

    def wait_compute_environment_settled(self, name: str) -> dict[str, Any]:
        """Wait until the environment is VALID or INVALID (not CREATING/UPDATING); return it."""
        resource = f"compute environment {name}"
        self._wait(
            self._compute_environment_waiter("ComputeEnvironmentSettled"),
            resource,
            lambda: self._status(
                self.call("batch", "describe_compute_environments", name, computeEnvironments=[name]).get(
                    "computeEnvironments", []
                )
            ),
            goal="become VALID or INVALID",
            computeEnvironments=[name],
        )
        found = self.describe_compute_environment(name)
        if found is None:
            raise InfraReconcileError(f"{resource} disappeared while faceidx waited for it.")
        return found

    def wait_compute_environment_deleted(self, name: str) -> None:
        self._wait(
            self._compute_environment_waiter("ComputeEnvironmentDeleted"),
            f"compute environment {name}",
            lambda: self._status(
                self.call("batch", "describe_compute_environments", name, computeEnvironments=[name]).get(
                    "computeEnvironments", []
                )
            ),
            goal="finish deleting",
            computeEnvironments=[name],
        )

    @staticmethod
    def _status(items: list[dict[str, Any]]) -> str:
        return (
            "; ".join(
                f"status {i.get('status')}: {i.get('statusReason') or 'no reason given'}" for i in items
            )
            or "it is not listed any more"
        )

    def wait_compute_environment_valid(self, name: str) -> None:
        """The provider's ``compute_env_ready`` waiter (VALID; fails on INVALID/DELETED)."""
        waiter = self.get_waiter(
            "compute_env_ready",
            client=self.client_for("batch"),
            config_overrides={"delay": self.waiter_delay, "maxAttempts": self.waiter_max_attempts},
        )
        self._wait(
            waiter,
            f"compute environment {name}",
            lambda: self._status(
                self.call("batch", "describe_compute_environments", name, computeEnvironments=[name]).get(
                    "computeEnvironments", []
                )
            ),
            computeEnvironments=[name],
        )

    def wait_job_queue_valid(self, name: str) -> None:
        """A botocore waiter from ``JOB_QUEUE_WAITERS`` (Batch has no official one)."""
        model = dict(JOB_QUEUE_WAITERS["waiters"]["JobQueueValid"])
        model.update(delay=self.waiter_delay, maxAttempts=self.waiter_max_attempts)
        waiter = botocore.waiter.create_waiter_with_client(
            "JobQueueValid",
            botocore.waiter.WaiterModel({"version": 2, "waiters": {"JobQueueValid": model}}),
            self.client_for("batch"),
        )
        self._wait(
            waiter,
            f"job queue {name}",
            lambda: self._status(
                self.call("batch", "describe_job_queues", name, jobQueues=[name]).get("jobQueues", [])
            ),
            jobQueues=[name],
        )

    def wait_iam(self, waiter_name: str, resource: str, **kwargs: Any) -> None:
        """IAM's own ``role_exists`` / ``instance_profile_exists`` waiters after a create."""
        waiter = self.client_for("iam").get_waiter(waiter_name)
        self._wait(
            waiter,
            resource,
            lambda: "it is not visible yet",
            WaiterConfig={"Delay": 2, "MaxAttempts": 30},
            **kwargs,
        )
