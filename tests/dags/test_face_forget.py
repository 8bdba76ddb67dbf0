"""face_forget run by ``dag.test()`` on local paths: the receipt it returns and logs, what the index
holds afterwards; and the ObjectRemoved path through face_table's ingest step."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from faceidx.store.location import IndexLocation
from faceidx.store.table import FaceTable
from tests.plugins.faceidx.erasure.test_forget import (
    BUCKET,
    T0,
    TOMBSTONE_ACTOR,
    image_rows,
    receipts,
    tombstone_row,
    unit,
    write_landing,
)
from tests.support.airflow_dags import load_dag, xcom
from tests.support.reindex_backfill import forget_runs


@pytest.fixture
def dag(airflow_db):
    forget_runs("face_forget")
    return load_dag("face_forget")


@pytest.fixture
def location(tmp_path: Path) -> IndexLocation:
    index = IndexLocation(output_uri=str(tmp_path / "out"))
    write_landing(index, image_rows("a.jpg", unit(1, 2)) + image_rows("b.jpg", unit(2, 1)))
    return index


def _conf(location, **overrides):
    return {"target_type": "image", "output_uri": location.output_uri, **overrides}


def test_dag_shape(dag):
    assert dag.max_active_runs == 1
    assert sorted(t.task_id for t in dag.tasks) == ["approve", "forget", "preview"]
    from faceidx.common.constants import WRITER_POOL

    assert dag.get_task("forget").pool == WRITER_POOL
    assert dag.get_task("approve").pool != WRITER_POOL, "waiting for a human never holds the writers' pool"
    assert dag.get_task("approve").response_timeout is not None
    assert dag.get_task("approve").defaults == ["Reject"], "unanswered: nothing deleted"
    assert dag.params["require_approval"] is False
    from faceidx.erasure.forget import TARGET_TYPES

    assert dag.params.get_param("target_type").schema["enum"] == list(TARGET_TYPES)


def test_a_run_forgets_the_image_and_returns_its_receipt(dag, location, caplog):
    caplog.set_level("INFO")  # the task logs its receipt table at INFO, whatever an earlier test set
    run = dag.test(run_conf=_conf(location, target=f"s3://{BUCKET}/a.jpg", reason="ticket 9"))
    assert {ti.task_id: str(ti.state) for ti in run.get_task_instances()} == {
        "preview": "success",
        "approve": "skipped",
        "forget": "success",
    }
    receipt = xcom(run, "forget")
    assert receipt["approver"] == "", "no approval was required"
    assert receipt["target"] == {"type": "image", "value": f"s3://{BUCKET}/a.jpg"}
    assert receipt["reason"] == "ticket 9"
    assert receipt["verification"]["passed"] is True
    assert receipts(location) == [receipt]
    assert FaceTable.open(location).read(columns=["image_key"])["image_key"].to_pylist() == ["b.jpg"]
    assert f"face_forget receipt {receipt['id']}" in caplog.text


@pytest.mark.parametrize(
    "conf",
    [
        {"target": "s3://photos/never.jpg"},
        {"target": None},
        {"target_type": "face", "target": "0" * 32},
    ],
    ids=["unknown image", "no target", "unknown face"],
)
def test_a_target_that_is_not_there_fails_and_changes_nothing(dag, location, conf, caplog):
    run = dag.test(run_conf=_conf(location, **conf))
    assert {ti.task_id: str(ti.state) for ti in run.get_task_instances()}["forget"] == "failed"
    assert receipts(location) == []
    if conf.get("target"):  # found nothing: the log says so in a table, with what to do
        assert "face_forget refused" in caplog.text
        assert "nothing was forgotten" in caplog.text
        assert "then trigger again" in caplog.text


def test_with_require_approval_a_target_not_there_fails_before_anyone_is_asked(dag, location, caplog):
    run = dag.test(run_conf=_conf(location, target="s3://photos/never.jpg", require_approval=True))
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["preview"] == "failed"
    assert states["approve"] != "success"
    assert receipts(location) == []


def test_object_removed_through_the_face_table_ingest_step(location):
    """The worker's tombstone row for a deleted image -> face_table's ingest step -> a receipt."""
    from faceidx.maintenance.tasks import ingest_task

    ingest_task(location, max_files=500)
    write_landing(location, [tombstone_row("a.jpg", T0 + timedelta(hours=1))])
    summary = ingest_task(location, max_files=500)
    assert summary["receipts"] == 1
    (receipt,) = receipts(location)
    assert receipt["actor"] == TOMBSTONE_ACTOR
    assert receipt["target"]["value"] == f"s3://{BUCKET}/a.jpg"
    assert receipt["verification"]["passed"] is True
    assert FaceTable.open(location).read(columns=["image_key"])["image_key"].to_pylist() == ["b.jpg"]
