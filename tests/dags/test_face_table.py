"""face_table run by ``dag.test()`` on local paths: what the table holds afterwards."""

from __future__ import annotations

from pathlib import Path

import pendulum
import pytest

from faceidx.common.constants import FACE_TABLE_ASSET_URI
from faceidx.store.location import IndexLocation
from faceidx.store.table import DEFAULT_RETENTION_HOURS, DEFAULT_TARGET_FILE_BYTES, FaceTable
from tests.plugins.faceidx.store.table_builders import Image, later, write_landing
from tests.support.airflow_dags import load_dag, xcom
from tests.support.reindex_backfill import forget_runs

TASKS = ["ingest", "compact", "vacuum", "announce", "report"]
DAY = pendulum.datetime(2026, 11, 20, 10, tz="UTC")  # the landing rows' indexed_at day


@pytest.fixture
def dag(airflow_db):
    forget_runs("face_table")  # the metadata DB lives for the whole test session
    return load_dag("face_table")


def _run(dag, conf, logical_date):
    run = dag.test(run_conf=conf, logical_date=logical_date)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    return run, states


def _seed(location: IndexLocation) -> None:
    for number in range(6):  # six worker flushes of the same day
        write_landing(location, [Image(f"img-{number}-{i}.jpg", at=later(number)) for i in range(3)])
    write_landing(location, [Image("img-0-0.jpg", job="job:redelivered", at=later(30))])


def test_dag_defaults_match_the_table():
    from dags import face_table as module

    assert module.DEFAULT_RETENTION_HOURS == DEFAULT_RETENTION_HOURS
    assert module.DEFAULT_TARGET_FILE_MB * 1024 * 1024 == DEFAULT_TARGET_FILE_BYTES


def test_dag_shape(dag):
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert {t.task_id for t in dag.tasks} == set(TASKS)
    assert dag.get_task("compact").upstream_task_ids == {"ingest"}
    assert dag.get_task("announce").upstream_task_ids == {"ingest"}
    assert [str(outlet.uri) for outlet in dag.get_task("announce").outlets] == [FACE_TABLE_ASSET_URI]


def _table_events() -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == FACE_TABLE_ASSET_URI)
            .order_by(AssetEvent.id)
        )
        return [dict(event.extra or {}) for event in rows]


def test_a_run_ingests_compacts_announces_and_a_rerun_changes_nothing(dag, tmp_path: Path):
    location = IndexLocation(output_uri=str(tmp_path / "out"), vectors_uri=str(tmp_path / "vectors"))
    _seed(location)
    conf = {"output_uri": location.output_uri, "vectors_uri": location.vectors_uri, "max_files": 1}

    run, states = _run(dag, conf, DAY)
    assert states == dict.fromkeys(TASKS, "success")
    table = FaceTable.open(location)
    assert table.read(columns=["face_id"]).num_rows == 36  # 18 images x 2 faces, the re-delivery dropped
    assert list(Path(location.landing_uri).rglob("*.parquet")) == []
    ingested = xcom(run, "ingest")
    assert ingested["files_ingested"] == 7
    assert ingested["rounds"] == 8  # one file per commit, then an empty listing
    assert ingested["duplicates_dropped"] == 2
    (partition,) = xcom(run, "compact")["partitions"]
    assert partition["indexed_date"] == "2026-11-20"
    assert partition["files_after"] < partition["files_before"]
    assert partition["result"] == "compacted"
    assert len(table.file_uris()) == 1
    # the commit is announced: one Asset event, carrying the table version the sync and people read
    events_before = len(_table_events())
    assert xcom(run, "announce")["table_version"] == ingested["version_after"]
    version = table.version()
    faces = sorted(table.read(columns=["face_id"]).column("face_id").to_pylist())

    rerun, states = _run(dag, conf, DAY.add(hours=1))
    assert states == {**dict.fromkeys(TASKS, "success"), "announce": "skipped"}
    assert len(_table_events()) == events_before  # nothing committed: no event, nothing downstream starts
    assert _table_events()[-1]["table_version"] == ingested["version_after"]
    assert xcom(rerun, "ingest")["noop"] is True
    assert xcom(rerun, "compact")["partitions"][0]["result"] == "already compact"
    assert table.version() == version
    assert sorted(table.read(columns=["face_id"]).column("face_id").to_pylist()) == faces


def test_a_failed_compaction_leaves_the_table_readable_and_identical(dag, tmp_path: Path):
    location = IndexLocation(output_uri=str(tmp_path / "out"), vectors_uri=str(tmp_path / "vectors"))
    table = FaceTable.open(location)
    for number in range(4):
        write_landing(location, [Image(f"img-{number}.jpg", at=later(number))])
        table.ingest()
    version, files = table.version(), sorted(table.file_uris())
    rows = sorted(table.read(columns=["face_id"]).column("face_id").to_pylist())
    # the next commit's log entry cannot be written: optimize writes its new file, then its commit fails
    (Path(location.table_uri) / "_delta_log" / f"{version + 1:020d}.json").mkdir()
    with pytest.raises(Exception, match=r"(?i)commit"):
        table.compact("2026-11-20")
    written = [p for p in Path(location.table_uri).rglob("*.parquet") if "_change_data" not in p.parts]
    assert len(written) == len(files) + 1  # the compacted file exists, but no version references it

    reopened = FaceTable.open(location)
    assert reopened.version() == version
    assert sorted(reopened.file_uris()) == files
    assert sorted(reopened.read(columns=["face_id"]).column("face_id").to_pylist()) == rows
