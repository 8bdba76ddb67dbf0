"""Two face_indexing runs planned for the same deficit: the second submit finds it filled.

Each submit task runs one at a time across runs (``max_active_tis_per_dag=1``) and counts the queue's
active jobs again right before SubmitJob. Here two runs' plans are made from the same count (both saw
an empty primary queue and a secondary deficit of 4), then their submit tasks run one after the other,
as the scheduler serializes them: Batch (moto) must hold one primary job and 4 secondary workers, not
two of each.
"""

from __future__ import annotations

from faceidx.aws.batch import BatchJobsHook
from faceidx.common.constants import PRIMARY_JOB_QUEUE, SECONDARY_JOB_QUEUE
from tests.support.batch import HELD_PREFIX, hold_jobs


def _submit(dag, role: str, target: int, planned: int, array_size: int | None):
    from faceidx.indexing.operators import BatchDeficitSubmitOperator

    task = dag.get_task(f"submit_{role}")
    operator = BatchDeficitSubmitOperator(
        task_id=f"{task.task_id}_probe",
        role=role,
        target=target,
        planned=planned,
        job_name=f"{HELD_PREFIX}{role}-race",
        job_queue=PRIMARY_JOB_QUEUE if role == "primary" else SECONDARY_JOB_QUEUE,
        job_definition="face-recognition-job",
        array_properties=None if array_size is None else {"size": array_size},
        aws_conn_id="aws_default",
        wait_for_completion=False,
        deferrable=False,
    )
    # the task-instance bits BatchOperator uses to persist its console links, and the XComs it pushes
    ti = _TaskInstance()
    job_id = operator.execute({"ti": ti, "task_instance": ti})
    return job_id, ti.xcoms


class _TaskInstance:
    """Keeps what the operator pushes; accepts the link calls BatchOperator makes."""

    def __init__(self) -> None:
        self.xcoms: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.xcoms[key] = value

    def __getattr__(self, name: str):
        from unittest import mock

        return mock.MagicMock()


def test_submit_tasks_run_one_at_a_time_across_runs(indexing_dag):
    for role in ("primary", "secondary"):
        task = indexing_dag.get_task(f"submit_{role}")
        assert task.max_active_tis_per_dag == 1, "count-then-submit must not overlap between runs"
        assert task.retries == 0


def test_the_second_of_two_racing_runs_submits_nothing_and_succeeds(indexing_dag, queue_url, moto):
    with hold_jobs("RUNNABLE"):  # the jobs stay active, as on AWS while instances start
        first_primary, _ = _submit(indexing_dag, "primary", target=1, planned=1, array_size=None)
        first_secondary, _ = _submit(indexing_dag, "secondary", target=4, planned=4, array_size=4)
        # the second run's submits return (a success) with no job id, and say who met the target
        second_primary, primary_xcoms = _submit(indexing_dag, "primary", target=1, planned=1, array_size=None)
        second_secondary, secondary_xcoms = _submit(
            indexing_dag, "secondary", target=4, planned=4, array_size=4
        )

    hook = BatchJobsHook(aws_conn_id="aws_default")
    assert first_primary
    assert first_secondary
    assert second_primary is None
    assert second_secondary is None
    primary_recount = primary_xcoms["recount"]
    assert primary_recount["submitting"] == 0
    assert [j["job_id"] for j in primary_recount["active_jobs"]] == [first_primary]
    assert [(j["job_id"], j["workers"]) for j in secondary_xcoms["recount"]["active_jobs"]] == [
        (first_secondary, 4)
    ]
    assert hook.count_active_jobs(PRIMARY_JOB_QUEUE).workers == 1
    assert hook.count_active_jobs(SECONDARY_JOB_QUEUE).workers == 4


def test_a_partly_filled_deficit_shrinks_the_array(indexing_dag, queue_url, moto):
    with hold_jobs("RUNNABLE"):
        _submit(indexing_dag, "secondary", target=5, planned=2, array_size=2)  # another run's 2
        _submit(indexing_dag, "secondary", target=5, planned=5, array_size=5)  # planned 5, 3 left
    assert BatchJobsHook(aws_conn_id="aws_default").count_active_jobs(SECONDARY_JOB_QUEUE).workers == 5
