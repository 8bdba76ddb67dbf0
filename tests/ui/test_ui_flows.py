"""What a data engineer does in the real Airflow UI, in a real browser, against the whole product.

In file order, on one product (see conftest.py): trigger ``face_infra_bootstrap`` from its form with
only ``dry_run`` turned off; upload photos and trigger ``face_indexing`` with its defaults; read the
``plan``, ``worker_logs`` and ``report`` task logs in the UI; run ``face_table`` and then
``face_search`` with a photo, and read the match table in its log; forget an image, then another only
after approving it in Required Actions (the receipt names the approver); answer a ``face_identities``
review task in Required Actions and find the merge in the persons tables; have the form refuse a bad
Param; and backfill two days of ``face_reindex`` from the Backfill form. Every test asserts on what the page
shows and on what moto holds. Screenshots go to ``ui-output/`` (``FACEIDX_SCREENSHOTS``).
"""

from __future__ import annotations

import io
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from faceidx.common.constants import FACE_TABLE_ASSET_URI
from faceidx_dev.local.airflow_stack import quote_id
from faceidx_dev.local.product import INPUT_BUCKET, OUTPUT_BUCKET, LocalProduct
from faceidx_worker.events import MessageKind, parse_body
from tests.ui.pages import (
    field,
    new_run,
    open_task_log,
    open_trigger_form,
    pick_datetime,
    runs,
    set_configuration_json,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.assets, pytest.mark.timeout(600)]

# two photos of Rob Lowe and a second of Obama: the identities review needs persons of two faces or more
PHOTOS = (
    "t1.jpg",
    "obama.jpg",
    "biden.jpg",
    "two_people.jpg",
    "no_face.png",
    "obama_small.jpg",
    "lfw_Rob_Lowe_0001.jpg",
    "lfw_Rob_Lowe_0002.jpg",
)
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
BACKFILL_DAYS = [TODAY - timedelta(days=3), TODAY - timedelta(days=2)]


def _wait_success(product: LocalProduct, dag_id: str, run_id: str, timeout: float) -> None:
    assert product.stack is not None
    state = product.stack.wait_run(dag_id, run_id, timeout)
    assert state == "success", product.stack.task_states(dag_id, run_id)


def _index_rows(product: LocalProduct) -> list[dict]:
    import pyarrow.parquet as pq

    assert product.moto is not None
    s3 = product.moto.client("s3")
    rows: list[dict] = []
    for item in s3.list_objects_v2(Bucket=OUTPUT_BUCKET).get("Contents", []):
        if item["Key"].endswith(".parquet"):
            body = s3.get_object(Bucket=OUTPUT_BUCKET, Key=item["Key"])["Body"].read()
            rows.extend(pq.read_table(io.BytesIO(body)).to_pylist())
    return rows


def _drain(sqs, url: str) -> list[str]:
    """Receive and delete every visible message; returns their bodies."""
    bodies: list[str] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
        "Messages", []
    ):
        bodies.extend(m["Body"] for m in batch)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    return bodies


def test_bootstrap_from_its_form_with_only_dry_run_off(page, product, shots):
    assert product.moto is not None
    dialog = open_trigger_form(page, product, "face_infra_bootstrap")
    dry_run = field(dialog, "dry_run")
    assert dry_run.is_checked(), "dry_run is on by default"
    dialog.locator("label:has([name='element_dry_run'])").click()  # the switch a user clicks
    assert not dry_run.is_checked()
    trigger = dialog.get_by_role("button", name="Trigger")
    assert trigger.is_enabled(), "the form must accept the default Params"
    before = {r["dag_run_id"] for r in runs(product, "face_infra_bootstrap")}
    trigger.click()
    run_id = new_run(product, "face_infra_bootstrap", before)
    _wait_success(product, "face_infra_bootstrap", run_id, timeout=300)

    # what the bootstrap created, as moto holds it
    sqs = product.moto.client("sqs")
    queues = sqs.list_queues().get("QueueUrls", [])
    assert any(url.endswith("/faceidx-work") for url in queues)
    assert any(url.endswith("/faceidx-work-dlq") for url in queues)
    batch = product.moto.client("batch")
    assert {q["jobQueueName"] for q in batch.describe_job_queues()["jobQueues"]} == {
        "face-recognition-primary-queue",
        "face-recognition-secondary-queue",
        "face-recognition-maintenance-queue",
    }
    notification = product.moto.client("s3").get_bucket_notification_configuration(Bucket=INPUT_BUCKET)
    assert notification["QueueConfigurations"], "the input bucket notifies the work queue"

    # the grid shows the run's tasks as succeeded
    page.goto(f"{product.url}/dags/face_infra_bootstrap/runs/{run_id}")
    page.get_by_text("summary", exact=True).first.wait_for()
    page.get_by_text(re.compile("success", re.I)).first.wait_for()
    page.screenshot(path=str(shots / "bootstrap-run.png"))


@pytest.fixture(scope="module")
def indexing_run(product: LocalProduct, assets_dir: Path) -> dict:
    """Filled by the indexing test, read by the log tests."""
    return {}


def test_indexing_from_its_form_with_defaults_indexes_the_uploads(
    page, product, assets_dir, shots, indexing_run
):
    keys = product.upload([assets_dir / "images" / name for name in PHOTOS])
    assert product.wait_queue(len(keys)) >= len(keys), "S3 notifications fill the work queue"
    dialog = open_trigger_form(page, product, "face_indexing")
    dialog.screenshot(path=str(shots / "indexing-trigger-form.png"))
    trigger = dialog.get_by_role("button", name="Trigger")
    assert trigger.is_enabled(), "the form must accept the default Params"
    before = {r["dag_run_id"] for r in runs(product, "face_indexing")}
    trigger.click()
    run_id = new_run(product, "face_indexing", before)
    _wait_success(product, "face_indexing", run_id, timeout=300)
    indexing_run["run_id"] = run_id

    rows = _index_rows(product)
    assert {r["image_key"] for r in rows} == set(keys), "every upload is in the index"
    faces = {r["image_key"]: 0 for r in rows}
    for row in rows:
        if row["status"] == "ok" and row["face_index"] is not None:
            faces[row["image_key"]] += 1
    expected = json.loads((assets_dir / "expected.json").read_text())["images"]
    assert faces["photos/t1.jpg"] == expected["t1.jpg"]["faces"]
    assert faces["photos/no_face.png"] == 0

    page.goto(f"{product.url}/dags/face_indexing/runs/{run_id}")
    page.get_by_text("worker_logs", exact=True).first.wait_for()
    page.screenshot(path=str(shots / "indexing-run-grid.png"))


@pytest.mark.parametrize(
    ("task_id", "expected", "shot"),
    [
        ("plan", ["face_indexing scaling decision", "primary", "secondary"], "log-plan-decision-table.png"),
        (
            "worker_logs",
            ["Workers (one row per plain job or array child", "images/s"],
            "log-worker-table.png",
        ),
        ("report", ["face_indexing run summary", "images indexed"], "log-run-summary.png"),
    ],
)
def test_task_logs_show_the_tables(page, product, indexing_run, shots, task_id, expected, shot):
    if "run_id" not in indexing_run:
        pytest.fail("the indexing test did not leave a run to read (it failed first)")
    open_task_log(page, product, "face_indexing", indexing_run["run_id"], task_id)
    for text in expected:
        page.get_by_text(text, exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / shot))


def _xcom(product: LocalProduct, dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
    assert product.stack is not None
    entry = product.stack.api(
        "GET",
        f"/dags/{dag_id}/dagRuns/{quote_id(run_id)}/taskInstances/{task_id}/xcomEntries/{key}",
        expect=(200, 404),
    )
    value = entry.get("value")
    return json.loads(value) if isinstance(value, str) and value[:1] in "{[" else value


def _primary_jobs_of(product: LocalProduct, run_ids: set[str]) -> list[dict]:
    """The primary-queue jobs moto holds that one of ``run_ids`` submitted (by the dag_run tag)."""
    assert product.moto is not None
    batch = product.moto.client("batch")
    ids = [
        s["jobId"]
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
        for s in batch.list_jobs(jobQueue="face-recognition-primary-queue", jobStatus=status)[
            "jobSummaryList"
        ]
        if ":" not in s["jobId"]
    ]
    jobs = batch.describe_jobs(jobs=ids)["jobs"] if ids else []
    return [j for j in jobs if j.get("tags", {}).get("dag_run") in run_ids]


def test_a_trigger_that_meets_another_run_is_green_and_says_who_submitted(
    page, product, assets_dir, indexing_run, shots
):
    """A run triggered from the form while another run (here: one started through the REST API, as a
    scheduled tick is) is planning for the same backlog: both runs succeed, Batch holds one primary job
    for the two, and the run whose recount found the job already there says so in its submit log and in
    report. The two runs plan side by side, so the second submit usually meets the first's job; if the
    scheduler happens to order them so that no recount is needed, the pair is tried again."""
    if "run_id" not in indexing_run:
        pytest.fail(
            "the indexing test did not leave a bootstrapped, unpaused face_indexing (it failed first)"
        )
    assert product.stack is not None
    filled = None
    for attempt in range(3):
        keys = product.upload([assets_dir / "images" / "no_face.png"] * 2, prefix=f"overlap-{attempt}/")
        product.wait_queue(len(set(keys)))
        dialog = open_trigger_form(page, product, "face_indexing")
        before = {r["dag_run_id"] for r in runs(product, "face_indexing")}
        dialog.get_by_role("button", name="Trigger").click()
        tick = product.stack.trigger("face_indexing")
        found = product.stack.wait_for(
            "the form's run",
            lambda: [
                r["dag_run_id"]
                for r in runs(product, "face_indexing", "manual")
                if r["dag_run_id"] not in before | {tick}
            ],
            timeout=60,
            interval=1.0,
        )
        pair = {str(found[0]), tick}
        for run_id in pair:
            _wait_success(product, "face_indexing", run_id, timeout=300)
        assert len(_primary_jobs_of(product, pair)) == 1, "one primary job for the two runs"
        for run_id in pair:
            recount = _xcom(product, "face_indexing", run_id, "submit_primary", "recount")
            if recount and recount.get("submitting") == 0:
                filled = run_id
        if filled:
            break
    assert filled, "in 3 tries no run's submit met the other's job (the scheduler serialised the plans)"

    states = product.stack.task_states("face_indexing", filled)
    assert states["submit_primary"] == "success"
    assert states["wait_primary"] == "skipped"
    assert states["report"] == "success"
    open_task_log(page, product, "face_indexing", filled, "submit_primary")
    page.get_by_text("primary: recount before SubmitJob", exact=False).first.wait_for(timeout=60_000)
    page.get_by_text("nothing left to submit", exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "log-submit-recount.png"))
    open_task_log(page, product, "face_indexing", filled, "report")
    page.get_by_text("primary: not submitted", exact=False).first.wait_for(timeout=60_000)
    [other] = pair - {filled}
    page.get_by_text(f"run {other} submitted job", exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "log-report-filled-by-another-run.png"))


def test_search_by_photo_from_the_forms_after_face_table(page, product, assets_dir, indexing_run, shots):
    """face_table with its defaults moves the indexed photos into the table (compaction as a Batch job of
    the maintenance queue, shown in its log), its commit's Asset event starts face_vectors, whose sync
    runs as a Batch job too; the Assets view shows the chain; then face_search, given only a photo the
    index has never seen, logs the match table."""
    if "run_id" not in indexing_run:
        pytest.fail("the indexing test did not leave an index to search (it failed first)")
    assert product.stack is not None
    product.stack.unpause("face_vectors")  # scheduled on the face table's Asset: the commit starts it
    synced_before = {r["dag_run_id"] for r in runs(product, "face_vectors")}
    dialog = open_trigger_form(page, product, "face_table")
    before = {r["dag_run_id"] for r in runs(product, "face_table", "manual")}
    dialog.get_by_role("button", name="Trigger").click()
    run_id = new_run(product, "face_table", before)
    _wait_success(product, "face_table", run_id, timeout=300)
    open_task_log(page, product, "face_table", run_id, "ingest")
    page.get_by_text("ingest into", exact=False).first.wait_for(timeout=60_000)
    # compaction ran as a Batch job on the maintenance queue: the end of its log (the viewer keeps the
    # last lines in the page) has the job's outcome, read back from the job, and what it did
    open_task_log(page, product, "face_table", run_id, "compact")
    page.get_by_text("compact: the Batch job's outcome", exact=False).first.wait_for(timeout=60_000)
    page.get_by_text("face-index-compact-face_table-", exact=False).first.wait_for(timeout=60_000)
    page.get_by_text("compact: what the job did", exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "log-compact-batch-job.png"))

    # the ingest's commit emitted the face table's Asset event, which started face_vectors by itself
    vectors_run = product.stack.wait_for(
        "face_vectors started by the face table's Asset event",
        lambda: [
            r["dag_run_id"]
            for r in runs(product, "face_vectors", "asset_triggered")
            if r["dag_run_id"] not in synced_before
        ],
        timeout=120,
        interval=2.0,
    )[0]
    _wait_success(product, "face_vectors", vectors_run, timeout=300)
    open_task_log(page, product, "face_vectors", vectors_run, "sync_vectors")
    page.get_by_text("the Batch job's outcome", exact=False).first.wait_for(timeout=60_000)
    page.get_by_text("what the job did", exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "log-sync-vectors-batch-job.png"))
    # the Assets view shows the chain: face_table produces the asset, face_vectors and face_identities
    # consume it
    page.goto(f"{product.url}/assets")
    page.get_by_text(FACE_TABLE_ASSET_URI, exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "assets-face-table.png"))
    page.get_by_text(FACE_TABLE_ASSET_URI, exact=False).first.click()
    for dag_id in ("face_table", "face_vectors", "face_identities"):
        page.get_by_text(dag_id, exact=True).first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "asset-face-table-chain.png"))

    dialog = open_trigger_form(page, product, "face_search")
    field(dialog, "photo").fill(str(assets_dir / "images" / "obama2.jpg"))
    dialog.screenshot(path=str(shots / "search-trigger-form.png"))
    trigger = dialog.get_by_role("button", name="Trigger")
    assert trigger.is_enabled(), "a photo is all the form needs"
    before = {r["dag_run_id"] for r in runs(product, "face_search", "manual")}
    trigger.click()
    run_id = new_run(product, "face_search", before)
    _wait_success(product, "face_search", run_id, timeout=300)
    open_task_log(page, product, "face_search", run_id, "search")
    page.get_by_text("query face 0 of", exact=False).first.wait_for(timeout=60_000)
    page.get_by_text(re.compile(r"s3://\S+/photos/obama\.jpg")).first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "log-search-matches.png"))
    # what the log shows is the task's result: the best match of the new photo is Obama, in one of the
    # indexed photos that show him (expected.json)
    assert product.stack is not None
    entry = product.stack.api(
        "GET", f"/dags/face_search/dagRuns/{quote_id(run_id)}/taskInstances/search/xcomEntries/return_value"
    )
    result = entry["value"] if isinstance(entry["value"], dict) else json.loads(entry["value"])
    [face] = result["faces"]
    expected = json.loads((assets_dir / "expected.json").read_text())["images"]
    with_obama = {name for name in PHOTOS if "obama" in expected[name].get("ids", [])}
    assert face["matches"][0]["image"].rsplit("/", 1)[-1] in with_obama, face["matches"][:2]


def _search_result(product: LocalProduct, run_id: str) -> dict:
    assert product.stack is not None
    entry = product.stack.api(
        "GET", f"/dags/face_search/dagRuns/{quote_id(run_id)}/taskInstances/search/xcomEntries/return_value"
    )
    return entry["value"] if isinstance(entry["value"], dict) else json.loads(entry["value"])


def _receipts(product: LocalProduct) -> list[dict]:
    assert product.moto is not None
    s3 = product.moto.client("s3")
    items = s3.list_objects_v2(Bucket=OUTPUT_BUCKET).get("Contents", [])
    return [
        json.loads(s3.get_object(Bucket=OUTPUT_BUCKET, Key=item["Key"])["Body"].read())
        for item in items
        if "/receipts/forget/" in f"/{item['Key']}"
    ]


def _trigger_forget(page, product: LocalProduct, target: str, reason: str) -> str:
    dialog = open_trigger_form(page, product, "face_forget")
    field(dialog, "target").fill(target)
    field(dialog, "reason").fill(reason)
    before = {r["dag_run_id"] for r in runs(product, "face_forget", "manual")}
    dialog.get_by_role("button", name="Trigger").click()
    return new_run(product, "face_forget", before)


def test_forget_from_the_form_erases_an_image_and_search_no_longer_finds_it(
    page, product, assets_dir, indexing_run, shots
):
    """face_forget: a target that is not indexed fails with what to do and writes nothing; the image the
    search found first is forgotten with a receipt, and the same search no longer returns it."""
    assert product.stack is not None
    searched = [r for r in runs(product, "face_search", "manual") if r["state"] == "success"]
    if not searched:
        pytest.fail("the search test did not leave a search run (it failed first)")
    [face] = _search_result(product, searched[0]["dag_run_id"])["faces"]
    image = face["matches"][0]["image"]
    assert image.startswith("s3://"), image
    receipts_before = _receipts(product)

    missing = f"s3://{INPUT_BUCKET}/photos/never-uploaded.jpg"
    run_id = _trigger_forget(page, product, missing, "erasure request 41")
    assert product.stack.wait_run("face_forget", run_id, 300) == "failed"
    open_task_log(page, product, "face_forget", run_id, "forget")
    page.get_by_text("is not in the index: nothing was forgotten", exact=False).first.wait_for(timeout=60_000)
    page.get_by_text("face_forget refused", exact=False).first.wait_for(timeout=60_000)
    page.get_by_text("and its target_type, then trigger again", exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "log-forget-not-found.png"))
    assert _receipts(product) == receipts_before

    run_id = _trigger_forget(page, product, image, "erasure request 42")
    _wait_success(product, "face_forget", run_id, timeout=300)
    open_task_log(page, product, "face_forget", run_id, "forget")
    page.get_by_text("face_forget receipt", exact=False).first.wait_for(timeout=60_000)
    page.get_by_text("verify: forgotten faces found", exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "log-forget-receipt.png"))
    [receipt] = [r for r in _receipts(product) if r not in receipts_before]
    assert receipt["target"] == {"type": "image", "value": image}
    assert receipt["reason"] == "erasure request 42"
    assert receipt["verification"]["passed"] is True
    assert receipt["verification"]["table_rows_left"] == 0
    assert sum(receipt["removed"]["table_rows"].values()) >= 1

    dialog = open_trigger_form(page, product, "face_search")
    field(dialog, "photo").fill(str(assets_dir / "images" / "obama2.jpg"))
    before = {r["dag_run_id"] for r in runs(product, "face_search", "manual")}
    dialog.get_by_role("button", name="Trigger").click()
    run_id = new_run(product, "face_search", before)
    _wait_success(product, "face_search", run_id, timeout=300)
    [face] = _search_result(product, run_id)["faces"]
    assert face["matches"], "the other photos of Obama are still indexed"
    assert image not in {m["image"] for m in face["matches"]}, face["matches"][:3]


def _hitl(product: LocalProduct, dag_id: str, run_id: str) -> list[dict]:
    """The run's Human-in-the-loop requests (Required Actions), answered or not."""
    assert product.stack is not None
    found = product.stack.api("GET", f"/dags/{dag_id}/dagRuns/{quote_id(run_id)}/hitlDetails")
    return list(found.get("hitl_details", []))


PAUSE_SETTLE_SECONDS = 5


def _waiting(product: LocalProduct, dag_id: str, run_id: str, task_id: str, count: int = 1) -> list[dict]:
    """The ``count`` pending requests of ``task_id`` (all map indexes), once they are all there."""
    assert product.stack is not None

    def pending() -> list[dict]:
        found = [
            d
            for d in _hitl(product, dag_id, run_id)
            if d["task_instance"]["task_id"] == task_id and not d.get("response_received")
        ]
        return sorted(found, key=lambda d: d["task_instance"]["map_index"]) if len(found) == count else []

    found = list(product.stack.wait_for(f"{count} required action(s) of {task_id}", pending, timeout=300))
    # The request exists before its task process has paused and exited. Airflow 3.3's scheduler fails
    # a task whose answer re-queued it before the executor's event for that exit was processed ("state
    # changed externally"), so the test answers as a person would: not within the same second.
    time.sleep(PAUSE_SETTLE_SECONDS)
    return found


def _required_action_page(page, product: LocalProduct, dag_id: str, run_id: str, task_id: str, index: int):
    mapped = f"/mapped/{index}" if index >= 0 else ""
    page.goto(f"{product.url}/dags/{dag_id}/runs/{quote_id(run_id)}/tasks/{task_id}{mapped}/required_actions")
    return page


def test_forget_with_require_approval_waits_for_an_approval_in_the_ui_and_names_the_approver(
    page, product, indexing_run, shots
):
    """require_approval: the run counts what would go and waits in Required Actions, deleting nothing;
    the signed-in user approves on the task's form, and the receipt names that user as approver."""
    if "run_id" not in indexing_run:
        pytest.fail("the indexing test did not leave an index (it failed first)")
    assert product.stack is not None
    target = f"s3://{INPUT_BUCKET}/photos/no_face.png"
    receipts_before = _receipts(product)
    dialog = open_trigger_form(page, product, "face_forget")
    assert not field(dialog, "require_approval").is_checked(), "off by default"
    dialog.locator("label:has([name='element_require_approval'])").click()
    assert field(dialog, "require_approval").is_checked()
    field(dialog, "target").fill(target)
    field(dialog, "reason").fill("erasure request 43")
    before = {r["dag_run_id"] for r in runs(product, "face_forget", "manual")}
    dialog.get_by_role("button", name="Trigger").click()
    run_id = new_run(product, "face_forget", before)

    [request] = _waiting(product, "face_forget", run_id, "approve")
    assert request["subject"] == f"face_forget: forget image {target}?"
    assert "| images | 1 |" in request["body"]
    assert product.stack.task_states("face_forget", run_id)["forget"] not in {"running", "success"}
    assert _receipts(product) == receipts_before, "nothing is deleted while the approval waits"

    page.goto(f"{product.url}/required_actions?response_received=false")
    page.get_by_text(f"face_forget: forget image {target}?", exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "required-actions-forget.png"))
    _required_action_page(page, product, "face_forget", run_id, "approve", -1)
    page.get_by_text("faces (and their vectors)", exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "forget-approval-form.png"))
    page.get_by_test_id("hitl-option-Approve").click()
    _wait_success(product, "face_forget", run_id, timeout=300)

    [receipt] = [r for r in _receipts(product) if r not in receipts_before]
    assert receipt["target"] == {"type": "image", "value": target}
    assert receipt["approver"] == "admin", "the signed-in user who approved"
    assert receipt["verification"]["passed"] is True
    [answered] = [
        d for d in _hitl(product, "face_forget", run_id) if d["task_instance"]["task_id"] == "approve"
    ]
    assert answered["chosen_options"] == ["Approve"]
    open_task_log(page, product, "face_forget", run_id, "forget")
    page.get_by_text("face_forget receipt", exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "log-forget-receipt-approver.png"))


def _answer(product: LocalProduct, run_id: str, request: dict, option: str) -> None:
    """Answer one face_identities request through the REST API (for the requests the test does not
    answer in the browser)."""
    assert product.stack is not None
    ti = request["task_instance"]
    product.stack.api(
        "PATCH",
        f"/dags/face_identities/dagRuns/{quote_id(run_id)}/taskInstances/{ti['task_id']}/"
        f"{ti['map_index']}/hitlDetails",
        json={"chosen_options": [option]},
    )


PEOPLE_TABLES = """
import json, sys
from faceidx.store.location import IndexLocation
from faceidx.store.persons import PeopleStore
store, version = PeopleStore(IndexLocation.from_env()), sys.argv[1]
print(json.dumps({
    "mapping": store.mapping(version),
    "persons": store.read("persons", version).column("person_id").to_pylist(),
    "events": [
        {"kind": e["kind"], "actor": e["actor"]} for e in store.read("person_events", version).to_pylist()
    ],
}))
"""


def _people_tables(product: LocalProduct, version: str) -> dict:
    """The persons tables in moto, read through ``faceidx.store.persons.PeopleStore`` in a child process
    (moto runs in this one: the Delta reader would block it while waiting for its answer)."""
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", PEOPLE_TABLES, version],
        env={**os.environ, **product.cli_environment()},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_identities_review_is_answered_in_required_actions_and_changes_the_persons_tables(
    page, product, indexing_run, shots
):
    """face_identities from its form (full re-cluster, every pair of persons proposed): one review task
    per proposal waits in Required Actions; the first is accepted on its form in the browser, the rest
    skipped; apply_review records the merge (actor review:admin) and the persons tables in moto hold
    one person where there were two."""
    if "run_id" not in indexing_run:
        pytest.fail("the indexing test did not leave an index (it failed first)")
    assert product.stack is not None
    dialog = open_trigger_form(page, product, "face_identities")
    dialog.locator("label:has([name='element_full_recluster'])").click()
    field(dialog, "merge_proposal").fill("-1")
    before = {r["dag_run_id"] for r in runs(product, "face_identities", "manual")}
    dialog.get_by_role("button", name="Trigger").click()
    run_id = new_run(product, "face_identities", before)

    def report_of_this_run() -> dict | None:
        # the run of the latest hourly tick (unpausing starts it) must not hold this one up: its
        # review, if it has one, is answered Skip, as its timeout would
        for other in runs(product, "face_identities"):
            if other["dag_run_id"] != run_id and other["state"] == "running":
                for request in _hitl(product, "face_identities", other["dag_run_id"]):
                    if not request.get("response_received"):
                        _answer(product, other["dag_run_id"], request, "Skip")
        if product.stack.task_states("face_identities", run_id).get("identities") != "success":
            return None
        return _xcom(product, "face_identities", run_id, "identities")

    report = product.stack.wait_for("the identities task's report", report_of_this_run, timeout=300)
    items = report["review"]
    assert items, f"at least two persons, so at least one proposal: {report}"
    assert all(item["kind"] == "merge" for item in items)
    requests = _waiting(product, "face_identities", run_id, "review", count=len(items))
    first = items[0]
    assert requests[0]["subject"].startswith(
        f"Same person? {first['person_id']} and {first['other_person_id']}"
    )
    version = first["model_version"]
    mapping = _people_tables(product, version)["mapping"]
    kept = {f for f, p in mapping.items() if p == first["person_id"]}
    absorbed = {f for f, p in mapping.items() if p == first["other_person_id"]}
    assert kept
    assert absorbed

    page.goto(f"{product.url}/required_actions?response_received=false")
    page.get_by_text("Same person?", exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "required-actions-review.png"))
    _required_action_page(page, product, "face_identities", run_id, "review", 0)
    # the body is Markdown: ids, photo keys and boxes are code elements
    page.get_by_text(f"Same person? {first['person_id']}", exact=False).first.wait_for(timeout=60_000)
    page.locator("code", has_text=first["other_person_id"]).first.wait_for(timeout=60_000)
    page.locator("code", has_text="s3://").first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "identities-review-form.png"))
    page.get_by_test_id("hitl-option-Accept").click()
    for request in requests[1:]:  # the other proposals: decided later (what a timeout also does)
        _answer(product, run_id, request, "Skip")
    _wait_success(product, "face_identities", run_id, timeout=300)

    applied = _xcom(product, "face_identities", run_id, "apply_review")
    assert [(r["kind"], r["actor"]) for r in applied["recorded"]] == [("merge", "review:admin")]
    tables = _people_tables(product, version)
    mapping = tables["mapping"]
    # the two persons are one: every face of the absorbed person is in the kept one; a face of the kept
    # person whose photo also shows one of the absorbed faces goes back to the buffer (one person, one
    # face per photo: the moved face wins)
    assert {mapping[f] for f in absorbed} == {first["person_id"]}
    assert {mapping[f] for f in kept} <= {first["person_id"], None}
    assert first["other_person_id"] not in set(mapping.values())
    assert first["person_id"] in tables["persons"]
    assert first["other_person_id"] not in tables["persons"]
    assert [e["kind"] for e in tables["events"] if e["actor"] == "review:admin"] == ["merge"]
    open_task_log(page, product, "face_identities", run_id, "apply_review")
    page.get_by_text("identities review", exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "log-identities-review.png"))


def test_a_bad_param_is_refused_by_the_form(page, product, shots):
    before = runs(product, "face_indexing")
    dialog = open_trigger_form(page, product, "face_indexing")
    # The number field knows the Param's bounds: typing past the maximum is capped when it loses focus.
    box = field(dialog, "secondary_max_array")
    assert box.get_attribute("aria-valuemax") == "10000"
    box.fill("20000")
    box.blur()
    assert box.input_value() == "10000"
    # A value that reaches the form anyway (the run's conf JSON) is refused, with the reason, and no
    # run is created.
    set_configuration_json(page, dialog, {"secondary_max_array": 20000})
    dialog.get_by_role("button", name="Trigger").click()
    message = dialog.get_by_text(
        re.compile(r"secondary_max_array: 20000 is greater than the maximum of 10000")
    )
    message.first.wait_for()
    dialog.screenshot(path=str(shots / "indexing-bad-param-refused.png"))
    page.wait_for_timeout(1000)
    assert runs(product, "face_indexing") == before


def test_backfill_two_days_from_the_form_queues_their_images(page, product, assets_dir, shots):
    from moto.s3.models import s3_backends

    from faceidx_dev.local.moto_server import ACCOUNT_ID

    assert product.moto is not None
    assert product.stack is not None
    # Nothing consumes the queue meanwhile: what the backfill queued stays there to be read.
    product.stack.api("PATCH", "/dags/face_indexing", json={"is_paused": True})
    sqs, url = product.moto.client("sqs"), product.queue_url()
    _drain(sqs, url)
    photo = assets_dir / "images" / "obama.jpg"
    expected: list[str] = []
    bucket = s3_backends[ACCOUNT_ID]["aws"].get_bucket(INPUT_BUCKET)
    for day in [*BACKFILL_DAYS, TODAY - timedelta(days=4)]:
        for key in product.upload([photo], prefix=f"archive/{day:%Y-%m-%d}/"):
            bucket.keys[key].last_modified = (day + timedelta(hours=8)).replace(tzinfo=None)
            if day in BACKFILL_DAYS:
                expected.append(key)
    _drain(sqs, url)  # the uploads' own S3 events: the backfill must queue them again
    product.stack.unpause("face_reindex")

    dialog = open_trigger_form(page, product, "face_reindex")
    dialog.get_by_text("Backfill", exact=True).click()
    pick_datetime(page, dialog, "From", BACKFILL_DAYS[0])
    pick_datetime(page, dialog, "To", BACKFILL_DAYS[-1])
    run_backfill = dialog.get_by_role("button", name="Run Backfill")
    dialog.get_by_text(re.compile(r"2 runs? will be triggered", re.I)).first.wait_for()
    dialog.screenshot(path=str(shots / "reindex-backfill-form.png"))
    assert run_backfill.is_enabled(), "a date range is all the backfill form needs"
    run_backfill.click()

    done = product.stack.wait_for(
        "the two backfill runs to finish",
        lambda: (
            found
            if len(found := runs(product, "face_reindex", "backfill")) == 2
            and all(r["state"] in ("success", "failed") for r in found)
            else None
        ),
        timeout=240,
    )
    assert sorted(r["data_interval_start"][:10] for r in done) == [f"{d:%Y-%m-%d}" for d in BACKFILL_DAYS]
    assert [r["state"] for r in done] == ["success", "success"], done

    bodies = _drain(sqs, url)
    parsed = [parse_body(body) for body in bodies]
    assert all(p.kind == MessageKind.IMAGES for p in parsed)
    assert sorted(p.images[0].key for p in parsed) == sorted(expected), "one message per image of the days"

    page.goto(f"{product.url}/dags/face_reindex")
    page.get_by_text("queue_images", exact=True).first.wait_for()
    page.screenshot(path=str(shots / "reindex-backfill-grid.png"))
