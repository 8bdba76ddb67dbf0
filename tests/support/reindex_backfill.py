"""Run an Airflow backfill in-process: created by Airflow's own backfill code, run with ``dag.test()``.

``airflow.models.backfill._create_backfill`` is what ``POST /api/v2/backfills`` and the UI call: it
creates one queued run per interval of the DAG's timetable (with that interval's data interval and the
backfill's ``dag_run_conf``). A scheduler would then run them; here each run is run by ``dag.test()``,
told to use the backfill's run instead of creating a manual one, so the tasks see the real backfill
run (its run id, run type, data interval and conf).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from unittest import mock


def sync_dags_to_db() -> None:
    """Write the dags folder's DAGs to the metadata DB, as the DAG processor (or ``dag.test``) does."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        assert not bag.import_errors, bag.import_errors
        sync_bag_to_db(bag, bundle.name, bundle.version)


@contextmanager
def _use_existing_run(run_id: str) -> Iterator[None]:
    """Make ``dag.test()`` pick up the backfill's run ``run_id`` (set to running) instead of a new one."""
    from airflow.models.dagrun import DagRun
    from airflow.sdk import timezone
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    def existing(*, dag: Any, session: Any, **_: Any) -> Any:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id))
        assert run is not None, f"backfill run {run_id} vanished"
        run.state = DagRunState.RUNNING
        run.start_date = timezone.utcnow()
        session.commit()
        run.dag = dag
        return run

    with mock.patch("airflow.models.dagrun.get_or_create_dagrun", side_effect=existing):
        yield


def run_backfill(
    dag: Any,
    from_date: datetime,
    to_date: datetime,
    *,
    conf: dict[str, Any] | None = None,
    reprocess_behavior: str = "none",
) -> list[Any]:
    """Create a backfill with Airflow's own code, run each of its runs to the end, mark it complete.

    Returns the backfill's DagRuns (refreshed) in backfill order.
    """
    from airflow.models.backfill import Backfill, BackfillDagRun, ReprocessBehavior, _create_backfill
    from airflow.models.dagrun import DagRun
    from airflow.sdk import timezone
    from airflow.utils.session import create_session
    from sqlalchemy import select

    sync_dags_to_db()
    backfill = _create_backfill(
        dag_id=dag.dag_id,
        from_date=from_date,
        to_date=to_date,
        max_active_runs=1,
        reverse=False,
        dag_run_conf=conf,
        triggering_user_name="pytest",
        reprocess_behavior=ReprocessBehavior(reprocess_behavior),
    )
    with create_session() as session:
        run_ids = list(
            session.scalars(
                select(DagRun.run_id)
                .join(BackfillDagRun, BackfillDagRun.dag_run_id == DagRun.id)
                .where(BackfillDagRun.backfill_id == backfill.id)
                .order_by(BackfillDagRun.sort_ordinal)
            )
        )
    for run_id in run_ids:
        with create_session() as session:
            logical_date = session.scalar(select(DagRun.logical_date).where(DagRun.run_id == run_id))
        with _use_existing_run(run_id):
            dag.test(logical_date=logical_date)
    with create_session() as session:
        stored = session.get(Backfill, backfill.id)
        stored.completed_at = timezone.utcnow()  # what the scheduler does once all runs finished
        session.commit()
        runs = list(session.scalars(select(DagRun).where(DagRun.run_id.in_(run_ids))))
        session.expunge_all()
    order = {run_id: position for position, run_id in enumerate(run_ids)}
    return sorted(runs, key=lambda run: order[run.run_id])


def forget_runs(dag_id: str) -> None:
    """Delete a DAG's runs and backfills (the test DB lives for the whole session)."""
    from airflow.models.asset import AssetDagRunQueue, AssetEvent
    from airflow.models.backfill import Backfill, BackfillDagRun
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    with create_session() as session:
        backfills = select(Backfill.id).where(Backfill.dag_id == dag_id)
        session.execute(delete(BackfillDagRun).where(BackfillDagRun.backfill_id.in_(backfills)))
        session.execute(delete(TaskInstance).where(TaskInstance.dag_id == dag_id))
        session.execute(delete(DagRun).where(DagRun.dag_id == dag_id))
        session.execute(delete(Backfill).where(Backfill.dag_id == dag_id))
        session.execute(delete(AssetEvent).where(AssetEvent.source_dag_id == dag_id))
        session.execute(delete(AssetDagRunQueue))


def task_states(run: Any) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.task_id, TaskInstance.state).where(
                TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id
            )
        )
        return {task_id: str(state) for task_id, state in rows}


def xcom_value(run: Any, task_id: str) -> Any:
    """The task's return value in ``run`` (``None`` when it returned nothing or did not run)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalar(
            select(XComModel).where(
                XComModel.dag_id == run.dag_id,
                XComModel.run_id == run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == "return_value",
            )
        )
        return None if row is None else XComModel.deserialize_value(row)
