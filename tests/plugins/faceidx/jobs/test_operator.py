"""IndexStepOperator against moto: a retry waits for its earlier try's job, a failed job says why."""

from __future__ import annotations

import pytest

from faceidx.common.constants import MAINTENANCE_JOB_DEFINITION, MAINTENANCE_JOB_QUEUE
from faceidx.jobs.operator import IndexJobFailed, IndexStepOperator, job_name_for, summary_rows
from faceidx.store.location import IndexLocation
from tests.support.batch import HELD_PREFIX, create_maintenance_queue, hold_jobs


def _operator(tmp_path, **kwargs) -> IndexStepOperator:
    return IndexStepOperator(
        task_id="sync_vectors",
        step="sync_vectors",
        output_uri=str(tmp_path / "out"),
        job_queue=MAINTENANCE_JOB_QUEUE,
        **kwargs,
    )


def _jobs(moto) -> list[dict]:
    batch = moto.client("batch")
    return [
        summary
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
        for summary in batch.list_jobs(jobQueue=MAINTENANCE_JOB_QUEUE, jobStatus=status)["jobSummaryList"]
    ]


def test_a_retry_waits_for_the_job_its_earlier_try_left_running(moto, tmp_path):
    create_maintenance_queue(moto)
    name = f"{HELD_PREFIX}face-index-sync_vectors-face_vectors-manual__1"
    with hold_jobs("RUNNING"):
        earlier = moto.client("batch").submit_job(
            jobName=name, jobQueue=MAINTENANCE_JOB_QUEUE, jobDefinition=MAINTENANCE_JOB_DEFINITION
        )["jobId"]
        operator = _operator(tmp_path)
        operator.job_name = name
        operator.submit_job({})
        assert operator.job_id == earlier
        assert [job["jobId"] for job in _jobs(moto)] == [earlier]  # nothing submitted a second time
        operator.job_name = f"{HELD_PREFIX}another-run"
        assert operator._active_job_named(operator.job_name) is None


def test_a_failed_job_fails_the_task_with_its_own_error_and_what_to_do(moto, tmp_path):
    create_maintenance_queue(moto)
    location = IndexLocation(output_uri=str(tmp_path / "out"))
    job_id = moto.client("batch").submit_job(
        jobName="face-index-sync_vectors-x",
        jobQueue=MAINTENANCE_JOB_QUEUE,
        jobDefinition=MAINTENANCE_JOB_DEFINITION,
    )["jobId"]
    location.write_json(
        location.job_result_uri(job_id),
        {"job_id": job_id, "step": "sync_vectors", "status": "failed", "error": "LeaseLost: another writer"},
    )
    with pytest.raises(IndexJobFailed, match="LeaseLost: another writer") as failure:
        _operator(tmp_path)._outcome(location, job_id, success=False)
    assert "clear the task" in str(failure.value)
    # a job that left no outcome (killed before its end) says so
    with pytest.raises(IndexJobFailed, match="did not succeed"):
        _operator(tmp_path)._outcome(location, "no-such-job", success=False)


def test_job_names_are_what_batch_accepts():
    name = job_name_for("sync_vectors", "face_vectors", "manual__2026-12-06T13:39:53.903094+00:00")
    assert name == "face-index-sync_vectors-face_vectors-manual__2026-12-06T13-39-53-903094-00-00"
    assert len(job_name_for("x", "d", "r" * 300)) == 128


def test_the_summary_reads_as_rows():
    rows = dict(summary_rows({"files": 3, "rejected": ["a", "b"], "versions": {"v1": 10}}))
    assert rows == {"files": 3, "rejected": "2 item(s)", "versions": "v1=10"}
