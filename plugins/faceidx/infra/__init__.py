"""Infrastructure as code for faceidx: the ``infra/`` JSON specs, rendered, validated offline and
reconciled against AWS by ``face_infra_bootstrap``.

Modules, in the order a run uses them:

- ``values``: the per-account values (DAG Params, then Airflow Variables, then defaults).
- ``catalog``: which spec file is which AWS request and which ``ResourceKind`` record applies it, in
  dependency order.
- ``render``: fills ``${NAME}`` placeholders (pure).
- ``validate`` (with ``shape``, ``checks``, ``instance_types``): offline validation (pure).
- ``diff`` / ``compute_environment``: what differs and how it can change (pure).
- ``reconcile``: the ``ResourceKind`` record and the one generic, idempotent reconcile
  (describe -> create, or diff -> update -> describe again; dry run plans only).
- ``kinds_sqs`` / ``kinds_iam`` / ``kinds_s3`` / ``kinds_batch`` / ``kinds_compute``: one record per
  resource kind (see docs/contributing-resource-kind.md to add one).
- ``hook_base``: ``InfraReconcileHook``, AWS access through the Airflow connection: calls, errors,
  waiters.
- ``results``: what a reconcile reports, and ``InfraReconcileError``.
- ``tasks`` / ``report``: the bodies of the DAG's tasks and their tables.

Importing this package imports nothing heavy: the DAG file reads ``values`` at parse time.
"""
