"""Fixtures shared by the face_indexing DAG tests."""

from __future__ import annotations

import pytest

from tests.support.airflow_dags import load_dag
from tests.support.batch import create_batch_queues
from tests.support.sqs import create_queue


@pytest.fixture
def indexing_dag(airflow_db):
    # loaded per test: dag.test() keeps the run_conf of a run in the DAG's params
    return load_dag("face_indexing")


@pytest.fixture
def queue_url(moto):
    """The work queue, with both Batch job queues and the job definition beside it."""
    create_batch_queues(moto)
    return create_queue(moto)
