"""``InfraReconcileHook``: every idempotent ensure_* operation of faceidx's infrastructure in one hook.

Each ensure_* follows STYLE.md section 6: describe; create when absent; otherwise diff the fields the
spec sets, update only what differs, and report ``created``, ``updated``, ``unchanged`` or
``needs-replacement`` with the differences found. ``dry_run=True`` computes the same report and
changes nothing. The operations live in one mixin per service.
"""

from __future__ import annotations

from faceidx.infra.hook_base import InfraReconcileError
from faceidx.infra.reconcile_batch import BatchReconcileMixin
from faceidx.infra.reconcile_compute import ComputeEnvironmentReconcileMixin
from faceidx.infra.reconcile_iam import IamReconcileMixin
from faceidx.infra.reconcile_s3 import S3ReconcileMixin
from faceidx.infra.reconcile_sqs import SqsReconcileMixin

__all__ = ["InfraReconcileError", "InfraReconcileHook"]


class InfraReconcileHook(
    IamReconcileMixin,
    SqsReconcileMixin,
    S3ReconcileMixin,
    ComputeEnvironmentReconcileMixin,
    BatchReconcileMixin,
):
    """IAM, SQS, S3 notification and AWS Batch reconcile through one Airflow AWS connection."""
