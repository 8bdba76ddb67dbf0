"""Counting active Batch jobs: on moto for state, with botocore's Stubber for exact error shapes."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from faceidx.aws.batch import BatchJobCountError, BatchJobsHook
from faceidx.common.constants import PRIMARY_JOB_QUEUE, SECONDARY_JOB_QUEUE
from tests.support.batch import create_batch_queues, hold_jobs, submit_held


@pytest.fixture
def hook(moto):
    create_batch_queues(moto)
    return BatchJobsHook(aws_conn_id="aws_default")


def test_empty_queues_count_zero(hook):
    count = hook.count_active_jobs(PRIMARY_JOB_QUEUE)
    assert count.workers == 0
    assert count.array_parents == 0


def test_finished_jobs_are_not_active(hook, moto):
    moto.client("batch").submit_job(
        jobName="done", jobQueue=PRIMARY_JOB_QUEUE, jobDefinition="face-recognition-job"
    )
    assert hook.count_active_jobs(PRIMARY_JOB_QUEUE).workers == 0


@pytest.mark.parametrize("state", ["RUNNABLE", "RUNNING", "STARTING"])
def test_plain_jobs_count_by_state(hook, moto, state):
    with hold_jobs(state):
        submit_held(moto, PRIMARY_JOB_QUEUE)
        submit_held(moto, PRIMARY_JOB_QUEUE)
    count = hook.count_active_jobs(PRIMARY_JOB_QUEUE)
    assert count.workers == 2
    assert count.by_state[state] == 2
    assert hook.count_active_jobs(SECONDARY_JOB_QUEUE).workers == 0


def test_array_parent_counts_its_unfinished_children(hook, moto):
    with hold_jobs("RUNNABLE"):
        submit_held(moto, SECONDARY_JOB_QUEUE, array_size=6)
    count = hook.count_active_jobs(SECONDARY_JOB_QUEUE)
    assert count.workers == 6
    assert count.array_parents == 1
    assert count.by_state["RUNNABLE"] == 6


def test_array_children_that_finished_are_not_counted(hook, moto):
    with hold_jobs("RUNNING"):
        parent = submit_held(moto, SECONDARY_JOB_QUEUE, array_size=4)
    # finish two children by hand, as Batch would when their workers exit
    from moto.batch.models import batch_backends

    backend = batch_backends["123456789012"]["us-east-1"]
    for index in (0, 1):
        backend.get_job_by_id(f"{parent}:{index}").status = "SUCCEEDED"
    assert hook.count_active_jobs(SECONDARY_JOB_QUEUE).workers == 2


def test_missing_queue_fails_with_advice(moto):
    hook = BatchJobsHook(aws_conn_id="aws_default")
    with pytest.raises(BatchJobCountError, match="run face_infra_bootstrap"):
        hook.count_active_jobs("no-such-queue")


def test_access_denied_fails_and_never_reads_as_zero(moto):
    hook = BatchJobsHook(aws_conn_id="aws_default")
    with Stubber(hook.client) as stub:
        stub.add_client_error(
            "list_jobs",
            service_error_code="AccessDeniedException",
            service_message="User is not authorized to perform: batch:ListJobs",
            http_status_code=403,
        )
        with pytest.raises(BatchJobCountError) as err:
            hook.count_active_jobs(PRIMARY_JOB_QUEUE)
    assert "not authorized to perform: batch:ListJobs" in str(err.value)
    assert "batch:ListJobs and batch:DescribeJobs" in str(err.value)


# --- a just-submitted array parent: Batch's statusSummary is empty, then stale ------------------------


def _stubbed_count(parent: dict, listed_status: str = "PENDING"):
    hook = BatchJobsHook(aws_conn_id="aws_default", region_name="us-east-1")
    client = hook.client
    with Stubber(client) as stub:
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"):
            summaries = (
                [{"jobId": parent["jobId"], "jobName": "face-indexing-secondary", "status": status}]
                if status == listed_status
                else []
            )
            stub.add_response(
                "list_jobs",
                {"jobSummaryList": summaries},
                {"jobQueue": SECONDARY_JOB_QUEUE, "jobStatus": status},
            )
        stub.add_response("describe_jobs", {"jobs": [parent]}, {"jobs": [parent["jobId"]]})
        return hook.count_active_jobs(SECONDARY_JOB_QUEUE)


def _parent(status: str, size: int, summary: dict[str, int] | None) -> dict:
    array: dict = {"size": size}
    if summary is not None:
        array["statusSummary"] = summary
    return {
        "jobId": "8f1c2e9a-0000-4000-8000-000000000001",
        "jobName": "face-indexing-secondary",
        "jobQueue": f"arn:aws:batch:us-east-1:123456789012:job-queue/{SECONDARY_JOB_QUEUE}",
        "status": status,
        "startedAt": 0,
        "jobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/face-recognition-job:1",
        "arrayProperties": array,
    }


@pytest.mark.parametrize(
    ("status", "summary", "expected"),
    [
        ("PENDING", None, 8),  # just submitted: no statusSummary at all yet
        ("PENDING", {}, 8),  # an empty one
        ("PENDING", {"RUNNABLE": 3}, 8),  # stale: 5 children not counted anywhere yet
        ("PENDING", {"RUNNING": 4, "SUCCEEDED": 3, "FAILED": 1}, 4),  # up to date
        ("PENDING", {"SUCCEEDED": 8}, 0),
    ],
)
def test_an_array_parent_counts_size_minus_finished_children(moto, status, summary, expected):
    count = _stubbed_count(_parent(status, 8, summary))
    assert count.workers == expected
    assert count.array_parents == 1


# --- a parent that ListJobs returns but DescribeJobs does not yet (Batch reads are eventually consistent)


def _listed_not_described(summary: dict, listed_status: str = "SUBMITTED"):
    hook = BatchJobsHook(aws_conn_id="aws_default", region_name="us-east-1")
    with Stubber(hook.client) as stub:
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"):
            stub.add_response(
                "list_jobs",
                {"jobSummaryList": [summary] if status == listed_status else []},
                {"jobQueue": SECONDARY_JOB_QUEUE, "jobStatus": status},
            )
        # AWS answers an id it does not know yet with an empty list, not an error
        stub.add_response("describe_jobs", {"jobs": []}, {"jobs": [summary["jobId"]]})
        return hook.count_active_jobs(SECONDARY_JOB_QUEUE)


def test_an_array_parent_not_yet_described_counts_its_size_from_the_listing():
    # ListJobs' JobSummary as AWS returns it for an array parent: arrayProperties.size, no index
    summary = {
        "jobArn": "arn:aws:batch:us-east-1:123456789012:job/5d1f0000-0000-4000-8000-00000000000a",
        "jobId": "5d1f0000-0000-4000-8000-00000000000a",
        "jobName": "face-indexing-secondary-manual__2026-12-06T09-40-00",
        "createdAt": 1796550000000,
        "status": "SUBMITTED",
        "arrayProperties": {"size": 10},
        "jobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/face-recognition-job:1",
    }
    count = _listed_not_described(summary)
    assert count.workers == 10, "the whole array is active, not one plain job"
    assert count.array_parents == 1
    assert count.by_state["SUBMITTED"] == 10
    [job] = count.jobs
    assert (job["workers"], job["source"]) == (10, "listing")

    # so the plan submits nothing more for a secondary target of 10
    from faceidx.indexing.planning import still_open

    assert still_open("secondary", 10, 10, count.workers) is None


def test_a_plain_job_not_yet_described_counts_one():
    summary = {
        "jobArn": "arn:aws:batch:us-east-1:123456789012:job/5d1f0000-0000-4000-8000-00000000000b",
        "jobId": "5d1f0000-0000-4000-8000-00000000000b",
        "jobName": "face-indexing-primary-scheduled__2026-12-06T09-40-00",
        "createdAt": 1796550000000,
        "status": "RUNNABLE",
        "jobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/face-recognition-job:1",
    }
    count = _listed_not_described(summary, "RUNNABLE")
    assert (count.workers, count.array_parents, count.by_state["RUNNABLE"]) == (1, 0, 1)
