"""The real Airflow, driven only through its REST API: a two-day backfill of face_reindex on moto.

Nothing here runs Airflow code in-process: the api-server, scheduler, dag-processor and triggerer run
as subprocesses (LocalExecutor, sqlite), the test talks HTTP to the api-server and reads what moto
holds. On failure the components' logs are attached to the report.
"""

from __future__ import annotations

import json

import pendulum
import pytest

from faceidx.common.constants import REINDEX_ASSET_URI
from faceidx_dev.local.airflow_stack import quote_id
from faceidx_worker.events import MessageKind, parse_body
from tests.support.reindex_moto import create_resources, day_uploads, drain

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TODAY = pendulum.today("UTC")
DAYS = [TODAY.subtract(days=4), TODAY.subtract(days=3)]


def _backfill_runs(stack):
    """The DAG's backfill runs (unpausing it also starts a scheduled run for yesterday: not ours)."""
    runs = stack.api("GET", "/dags/face_reindex/dagRuns", params={"run_type": "backfill", "limit": 50})
    assert all(r["run_type"] == "backfill" for r in runs["dag_runs"])
    return runs["dag_runs"]


def test_two_day_backfill_through_the_rest_api(airflow_stack, moto):
    stack = airflow_stack
    queue_url = create_resources(moto)
    assert stack.env()["AIRFLOW_VAR_FACEIDX_QUEUE_URL"] == queue_url
    expected = sorted(u.key for day in DAYS for u in day_uploads(moto, day.date())[0])
    day_uploads(moto, TODAY.subtract(days=5).date())  # the day before: must not be queued

    # the dag-processor has parsed and serialized the DAG (a backfill needs the serialized DAG)
    stack.wait_for(
        "face_reindex to be parsed and serialized",
        lambda: stack.api("GET", "/dags/face_reindex/details", expect=(200, 404)).get("dag_id"),
        timeout=90,
    )
    backfill = stack.api(
        "POST",
        "/backfills",
        retry_post=True,  # sqlite: a 503 "database is locked" was rolled back; Airflow asks to retry
        json={
            "dag_id": "face_reindex",
            "from_date": DAYS[0].isoformat(),
            "to_date": DAYS[-1].isoformat(),
            "max_active_runs": 2,
            "reprocess_behavior": "none",
            # bucket, queue_url and output_uri come from the Airflow Variables (empty Params)
            "dag_run_conf": {"prefix": "uploads/{{ ds }}/"},
        },
    )
    # the runs wait, queued, until the DAG is unpaused: tasks of paused DAGs never run
    stack.api("PATCH", "/dags/face_reindex", json={"is_paused": False})
    assert backfill["dag_id"] == "face_reindex"

    # the runs appear, one per day, with that day as data interval, and succeed
    runs = stack.wait_for(
        "two backfill runs to finish",
        lambda: (
            runs
            if len(runs := _backfill_runs(stack)) == 2
            and all(r["state"] in ("success", "failed") for r in runs)
            else None
        ),
        timeout=180,
    )
    runs.sort(key=lambda r: r["data_interval_start"])
    assert [r["state"] for r in runs] == ["success", "success"], runs
    assert [pendulum.parse(r["data_interval_start"]) for r in runs] == DAYS
    assert [pendulum.parse(r["data_interval_end"]) for r in runs] == [d.add(days=1) for d in DAYS]

    # moto holds exactly the two days' images, as S3 events the worker parses
    bodies = drain(moto, queue_url)
    parsed = [parse_body(json.dumps(body)) for body in bodies]
    assert all(p.kind == MessageKind.IMAGES for p in parsed)
    assert sorted(p.images[0].key for p in parsed) == expected
    assert {body["faceidx"]["run_id"] for body in bodies} == {r["dag_run_id"] for r in runs}

    # each run told face_indexing through the Asset
    events = stack.api("GET", "/assets/events", params={"source_dag_id": "face_reindex"})["asset_events"]
    assert sorted(e["source_run_id"] for e in events) == sorted(r["dag_run_id"] for r in runs)
    assert all(e["uri"] == REINDEX_ASSET_URI and e["extra"]["queued"] == 3 for e in events)

    # one task's log, read back through the API: the run's table of found / skipped / queued
    run_id = quote_id(runs[0]["dag_run_id"])
    instances = stack.api("GET", f"/dags/face_reindex/dagRuns/{run_id}/taskInstances")
    states = {ti["task_id"]: ti["state"] for ti in instances["task_instances"]}
    assert states == {"queue_images": "success", "signal_indexing": "success"}
    log = stack.api(
        "GET",
        f"/dags/face_reindex/dagRuns/{run_id}/taskInstances/queue_images/logs/1",
        params={"full_content": "true"},
        headers={"Accept": "application/json"},
    )
    text = json.dumps(log["content"])
    assert "skipped: not_an_image" in text
    assert f"uploads/{DAYS[0]:%Y-%m-%d}/" in text
    print(f"timings: {stack.timings}")
