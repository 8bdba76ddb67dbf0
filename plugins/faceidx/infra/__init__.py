"""Infrastructure as code for faceidx: the ``infra/`` JSON specs, rendered, validated offline and
reconciled against AWS by ``face_infra_bootstrap``.

Modules, in the order a run uses them:

- ``values``: the per-account values (DAG Params, then Airflow Variables, then defaults).
- ``catalog``: which spec file is which AWS request, in dependency order.
- ``render``: fills ``${NAME}`` placeholders (pure).
- ``validate`` (with ``shape``, ``checks``, ``instance_types``): offline validation (pure).
- ``diff`` / ``compute_environment``: what differs and how it can change (pure).
- ``hook`` (with ``reconcile_*``): the idempotent ``ensure_*`` operations against AWS.
- ``steps`` / ``report``: the bodies of the DAG's tasks and their tables.

Importing this package imports nothing heavy: the DAG file reads ``values`` at parse time.
"""
