"""face_table and face_identities with a maintenance queue: the heavy steps run as Batch jobs.

moto holds the queue and the job definition; the local Batch stand-in runs each submitted job as its
own process (``python -m faceidx.jobs STEP ...``), as Batch would run the maintenance image. The index
is a local folder both processes share. What is checked is what the user gets: the table and the
vector index hold the faces, the jobs ran on the maintenance queue with the memory their estimate
asked for, each left its outcome, and a run without the queue does the same in the task.
"""

from __future__ import annotations

import json
from pathlib import Path

import pendulum
import pytest

from faceidx.common.constants import MAINTENANCE_JOB_QUEUE, VAR_MAINTENANCE_JOB_QUEUE
from faceidx.store.location import IndexLocation
from faceidx.store.table import FaceTable
from faceidx.store.vectors import VectorIndex
from faceidx_dev.local.batch_compute import LocalBatchCompute
from tests.plugins.faceidx.store.table_builders import Image, later, write_landing
from tests.support.airflow_dags import load_dag, xcom
from tests.support.batch import create_maintenance_queue
from tests.support.reindex_backfill import forget_runs

REPO = Path(__file__).resolve().parents[2]
DAY = pendulum.datetime(2026, 11, 20, 10, tz="UTC")


@pytest.fixture
def batch(moto, monkeypatch):
    create_maintenance_queue(moto)
    monkeypatch.setenv(f"AIRFLOW_VAR_{VAR_MAINTENANCE_JOB_QUEUE.upper()}", MAINTENANCE_JOB_QUEUE)
    monkeypatch.setenv("FACEIDX_BATCH_POLL_SECONDS", "1")
    compute = LocalBatchCompute(moto.url, REPO / "worker", {}, max_parallel=1).install()
    yield compute
    compute.terminate()
    compute.uninstall()


def _seed(location: IndexLocation) -> None:
    for number in range(4):
        write_landing(location, [Image(f"img-{number}-{i}.jpg", at=later(number)) for i in range(3)])


def _states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_the_heavy_steps_of_face_table_face_vectors_and_face_identities_run_as_batch_jobs(
    airflow_db, batch, tmp_path
):
    for dag_id in ("face_table", "face_vectors", "face_identities"):
        forget_runs(dag_id)
    location = IndexLocation(output_uri=str(tmp_path / "out"), vectors_uri=str(tmp_path / "vectors"))
    _seed(location)
    conf = {"output_uri": location.output_uri, "vectors_uri": location.vectors_uri}

    table_run = load_dag("face_table").test(run_conf=conf, logical_date=DAY)
    vectors_run = load_dag("face_vectors").test(run_conf=conf, logical_date=DAY)
    people_conf = {"output_uri": location.output_uri, "full_recluster": True, "threshold": 0.3}
    people_run = load_dag("face_identities").test(run_conf=people_conf, logical_date=DAY)

    for run in (table_run, vectors_run):
        assert set(_states(run).values()) == {"success"}, _states(run)
    assert _states(people_run)["identities"] == "success", _states(people_run)
    # the jobs the stand-in ran: one per heavy step, on the maintenance queue, each a success
    ran = {r.job_name.split("-face_")[0]: r for r in batch.runs}
    assert set(ran) == {
        "face-index-compact",
        "face-index-vacuum",
        "face-index-sync_vectors",
        "face-index-identities",
    }
    assert all(r.job_queue == MAINTENANCE_JOB_QUEUE and r.exit_code == 0 for r in ran.values())
    # the small ingest stayed in the task; what the jobs did is in the table, the vectors, the persons
    table = FaceTable.open(location)
    assert table.read(columns=["face_id"]).num_rows == 24
    index = VectorIndex(location)
    assert sum(len(index.face_ids(v)) for v in table.model_versions()) == 24
    people = xcom(people_run, "identities")
    assert people["faces seen"] == 24, people
    assert people["mode"].startswith("full"), people
    # each job left its outcome, with the memory it had against what it needed
    outcomes = [json.loads(p.read_text()) for p in sorted((tmp_path / "out" / "jobs").glob("*.json"))]
    assert sorted(o["step"] for o in outcomes) == ["compact", "identities", "sync_vectors", "vacuum"]
    assert all(o["status"] == "succeeded" and o["peak_rss_mib"] > 0 and o["expected_mib"] for o in outcomes)


def test_without_the_maintenance_queue_every_step_stays_in_the_task(airflow_db, moto, tmp_path):
    forget_runs("face_table")
    location = IndexLocation(output_uri=str(tmp_path / "out"), vectors_uri=str(tmp_path / "vectors"))
    _seed(location)
    run = load_dag("face_table").test(
        run_conf={"output_uri": location.output_uri, "vectors_uri": location.vectors_uri}, logical_date=DAY
    )
    assert set(_states(run).values()) == {"success"}
    assert not (tmp_path / "out" / "jobs").exists()
    assert FaceTable.open(location).read(columns=["face_id"]).num_rows == 24


def test_compute_batch_without_a_queue_fails_before_anything_changes_saying_what_to_do(airflow_db, tmp_path):
    forget_runs("face_table")
    location = IndexLocation(output_uri=str(tmp_path / "out"), vectors_uri=str(tmp_path / "vectors"))
    _seed(location)
    conf = {"output_uri": location.output_uri, "vectors_uri": location.vectors_uri, "compute": "batch"}
    run = load_dag("face_table").test(run_conf=conf, logical_date=DAY)
    assert _states(run)["ingest"] == "failed"
    assert FaceTable.open_if_exists(location) is None  # nothing was ingested
    assert len(list(Path(location.landing_uri).rglob("*.parquet"))) == 4


def test_an_erasure_runs_as_a_batch_job_and_a_missing_target_is_refused_once(airflow_db, batch, tmp_path):
    from tests.plugins.faceidx.erasure.test_forget import BUCKET, image_rows, receipts, unit
    from tests.plugins.faceidx.erasure.test_forget import write_landing as write_image_rows

    forget_runs("face_forget")
    location = IndexLocation(output_uri=str(tmp_path / "out"))
    write_image_rows(location, image_rows("a.jpg", unit(1, 2)) + image_rows("b.jpg", unit(2, 1)))
    dag = load_dag("face_forget")
    conf = {"target_type": "image", "output_uri": location.output_uri, "compute": "batch"}

    run = dag.test(run_conf={**conf, "target": f"s3://{BUCKET}/a.jpg", "reason": "ticket 9"})
    assert _states(run)["forget"] == "success", _states(run)
    [receipt] = receipts(location)
    assert xcom(run, "forget") == receipt  # the job's receipt, read back from its outcome
    assert receipt["target"] == {"type": "image", "value": f"s3://{BUCKET}/a.jpg"}
    assert receipt["verification"]["passed"] is True
    assert FaceTable.open(location).read(columns=["image_key"])["image_key"].to_pylist() == ["b.jpg"]

    missing = dag.test(run_conf={**conf, "target": f"s3://{BUCKET}/never.jpg"})
    [forget] = [ti for ti in missing.get_task_instances() if ti.task_id == "forget"]
    assert str(forget.state) == "failed"
    assert forget.try_number == 1  # refused: nothing changed and a retry cannot do better
    assert [r.exit_code for r in batch.runs if "forget" in r.job_name] == [0, 4]
    assert len(receipts(location)) == 1
