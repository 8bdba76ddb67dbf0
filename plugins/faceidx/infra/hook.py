"""``InfraReconcileHook``: faceidx's infrastructure reconciled through one Airflow AWS connection.

``hook.reconcile(kind, spec)`` applies one ``ResourceKind`` record (``kinds_*``) with the generic
``faceidx.infra.reconcile.reconcile`` (STYLE.md section 6): describe; create when absent; otherwise
diff the fields the spec sets, update only what differs, describe again, and report ``created``,
``updated``, ``unchanged`` or ``needs-replacement`` with the differences found. ``dry_run=True``
computes the same report and calls no mutating API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faceidx.infra.hook_base import InfraHookBase
from faceidx.infra.reconcile import InfraReconcileError, ResourceKind, reconcile
from faceidx.infra.results import ResourceResult

__all__ = ["InfraReconcileError", "InfraReconcileHook"]


class InfraReconcileHook(InfraHookBase):
    """IAM, SQS, S3 notification and AWS Batch reconcile through one Airflow AWS connection."""

    def reconcile(
        self,
        kind: ResourceKind,
        spec: dict[str, Any],
        dry_run: bool = False,
        context: Mapping[str, Any] | None = None,
    ) -> ResourceResult:
        return reconcile(self, kind, spec, dry_run=dry_run, context=context)
