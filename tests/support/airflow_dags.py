"""Run DAGs in-process with ``dag.test()`` and read back task states."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

# face_indexing Params that keep dag.test() short: an empty queue is skipped after 1 s.
FAST = {"sensor_timeout_seconds": 1}


def load_dag(dag_id: str, dag_file: str | None = None) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / (dag_file or f"{dag_id}.py")))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"{dag_id} not found"
    return dag


def run_dag(dag: Any, conf: dict[str, Any] | None = None, **kwargs: Any) -> tuple[Any, dict[str, str]]:
    """Run one DagRun to the end; returns the run and ``{task_id: state}``."""
    run = dag.test(run_conf=conf or {}, **kwargs)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    return run, states


def xcom(run: Any, task_id: str, key: str = "return_value") -> Any:
    for ti in run.get_task_instances():
        if ti.task_id == task_id:
            return ti.xcom_pull(task_ids=task_id, key=key)
    raise KeyError(task_id)
