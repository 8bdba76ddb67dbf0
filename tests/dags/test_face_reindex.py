"""face_reindex under real Airflow backfills (Airflow's own backfill code, runs by dag.test) on moto.

What is asserted is what moto holds afterwards: the messages in the queue (keys, ETags, and that the
worker's own parser reads them as S3 events) and the Asset events in Airflow's metadata DB.

The index (landing files and the face table) is a local directory here: delta-rs holds the GIL while it
waits on S3, so it must never talk to the moto server that runs on a thread of this process. The same
lookup on S3 is tested in ``tests/plugins/faceidx/reindex/test_lookup_s3.py`` (moto in its own process).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pendulum
import pytest

from faceidx.common.constants import REINDEX_ASSET_URI
from faceidx.store.location import IndexLocation
from faceidx.store.table import FaceTable
from faceidx_worker.events import MessageKind, parse_body
from tests.support.airflow_dags import load_dag, run_dag
from tests.support.reindex_backfill import forget_runs, run_backfill, task_states, xcom_value
from tests.support.reindex_moto import (
    INPUT_BUCKET,
    MODEL_VERSION,
    backdate,
    create_resources,
    day_uploads,
    drain,
    put,
    write_local_index,
)

TODAY = pendulum.today("UTC")
DAYS = [TODAY.subtract(days=n) for n in (6, 5, 4)]  # the backfilled days, oldest first
BEFORE, AFTER = TODAY.subtract(days=7), TODAY.subtract(days=3)  # uploaded, never in the backfill


@pytest.fixture
def dag(airflow_db):
    forget_runs("face_reindex")  # the metadata DB lives for the whole test session
    return load_dag("face_reindex")


@pytest.fixture
def queue_url(moto):
    return create_resources(moto)


@pytest.fixture
def uploads(moto, queue_url):
    """Three days of uploads plus a day before and after; returns {day: (images, skipped keys)}."""
    seeded = {day.date(): day_uploads(moto, day.date()) for day in [BEFORE, *DAYS, AFTER]}
    assert drain(moto, queue_url) == []  # no S3 notification configured: the queue starts empty
    return seeded


@pytest.fixture
def output_dir(tmp_path):
    """The worker's OUTPUT_URI: landing files under faces/, the face table under table/faces/."""
    return tmp_path / "index"


@pytest.fixture
def conf(queue_url, output_dir):
    """The backfill's dag_run_conf, with Params overridden by keyword."""

    def make(**overrides):
        values = {
            "bucket": INPUT_BUCKET,
            "prefix": "uploads/{{ ds }}/",
            "queue_url": queue_url,
            "output_uri": str(output_dir),
        }
        values.update(overrides)
        return values

    return make


def _images(bodies):
    """(bucket, key, etag, size) of every image the worker's parser finds in the bodies."""
    found = []
    for body in bodies:
        import json

        parsed = parse_body(json.dumps(body))
        assert parsed.kind == MessageKind.IMAGES, parsed.reason
        assert len(parsed.images) == 1, "one image per message"
        image = parsed.images[0]
        found.append((image.bucket, image.key, image.etag, image.size))
    return found


def _backfill(dag, first, last, conf, **kwargs):
    return run_backfill(dag, first, last, conf=conf, **kwargs)


def test_three_day_backfill_queues_exactly_the_images_of_its_days(dag, moto, queue_url, uploads, conf):
    runs = _backfill(dag, DAYS[0], DAYS[-1], conf())

    # one backfill run per interval, each with its day as data interval
    assert [(r.data_interval_start, r.data_interval_end) for r in runs] == [
        (day, day.add(days=1)) for day in DAYS
    ]
    assert all(str(r.run_type) == "backfill" for r in runs)
    for run in runs:
        assert task_states(run) == {"queue_images": "success", "signal_indexing": "success"}

    bodies = drain(moto, queue_url)
    expected = sorted((INPUT_BUCKET, u.key, u.etag, u.size) for day in DAYS for u in uploads[day.date()][0])
    assert sorted(_images(bodies)) == expected

    # every message is traceable to the run of its day
    by_run = {r.run_id: r for r in runs}
    for body in bodies:
        origin = body["faceidx"]
        assert origin["dag_id"] == "face_reindex"
        run = by_run[origin["run_id"]]
        assert body["Records"][0]["s3"]["object"]["key"].startswith(
            f"uploads/{run.data_interval_start:%Y-%m-%d}/"
        )

    # the log summary adds up: found = skipped + queued, by reason
    for run in runs:
        summary = xcom_value(run, "queue_images")
        assert summary["queued"] == 3
        assert summary["found"] == 7
        assert summary["skipped"] == {
            "not_an_image": 2,  # notes.txt and the folder marker "uploads/<day>/"
            "empty_object": 1,  # the empty .png
            "archived": 1,
        }


def _land(output_dir, images, *, indexed_at, **model):
    """The worker's flush: one landing file of ``(key, etag, status)`` rows under ``faces/``."""
    return write_local_index(output_dir, images, indexed_at=indexed_at, **model)


def _ingest(output_dir):
    """face_table's ingest: the landing files move into the face table and are deleted."""
    report = FaceTable.open(IndexLocation(output_uri=str(output_dir))).ingest()
    assert report.files_rejected == {}
    assert list((output_dir / "faces").rglob("*.parquet")) == []
    return report


def _queued_keys(moto, queue_url):
    return sorted(key for _, key, _, _ in _images(drain(moto, queue_url)))


def test_second_backfill_after_face_table_ingested_queues_none(
    dag, moto, queue_url, uploads, conf, output_dir
):
    """The workers' rows land, the face_table DAG ingests them (and deletes the landing files): a second
    backfill over the same days asks the face table, and queues nothing."""
    _backfill(dag, DAYS[0], DAYS[-1], conf())
    queued = _images(drain(moto, queue_url))
    assert len(queued) == 9

    # the workers index what the queue received: one flush per day, on the day after the upload
    for day in DAYS:
        rows = [(key, etag, "ok") for _, key, etag, _ in queued if key.startswith(f"uploads/{day:%Y-%m-%d}/")]
        assert len(rows) == 3
        _land(output_dir, rows, indexed_at=day.add(days=1, hours=2))

    table_dag = load_dag("face_table")
    forget_runs("face_table")
    vectors = output_dir.parent / "vectors"
    _, states = run_dag(
        table_dag, {"output_uri": str(output_dir), "vectors_uri": str(vectors)}, logical_date=TODAY
    )
    assert states["ingest"] == "success", states
    assert list((output_dir / "faces").rglob("*.parquet")) == []  # ingested, then deleted
    table = FaceTable.open(IndexLocation(output_uri=str(output_dir)))
    in_table = table.read(columns=["image_key", "image_etag", "status"]).to_pylist()
    assert {(r["image_key"], r["image_etag"]) for r in in_table} == {
        (key, etag) for _, key, etag, _ in queued
    }

    runs = _backfill(dag, DAYS[0], DAYS[-1], conf(), reprocess_behavior="completed")
    assert len(runs) == 3
    assert drain(moto, queue_url) == []
    for run in runs:
        assert task_states(run) == {"queue_images": "success", "signal_indexing": "skipped"}
        summary = xcom_value(run, "queue_images")
        assert summary["queued"] == 0
        assert summary["skipped"]["already_indexed"] == 3
        assert summary["index_files_read"] == 0  # no landing file left: the face table answered
        assert summary["table_version"] == table.version()
        assert summary["indexed_for"] == f"model_version {MODEL_VERSION}"


def test_landing_files_not_yet_ingested_count_beside_the_table(
    dag, moto, queue_url, uploads, conf, output_dir
):
    day = DAYS[1]
    in_table, landed, failed = uploads[day.date()][0]
    _land(output_dir, [(in_table.key, in_table.etag, "ok")], indexed_at=day.add(days=1))
    _ingest(output_dir)
    # written by the workers after the last ingest: face_table has not seen them yet
    _land(
        output_dir,
        [(landed.key, landed.etag, "ok"), (failed.key, failed.etag, "error")],
        indexed_at=day.add(days=1, hours=1),
    )

    (run,) = _backfill(dag, day, day, conf())
    assert _queued_keys(moto, queue_url) == [failed.key]  # an error row: the image is tried again
    summary = xcom_value(run, "queue_images")
    assert summary["skipped"]["already_indexed"] == 2
    assert summary["index_files_read"] == 1


def test_only_missing_queues_errors_changed_and_unindexed_images(
    dag, moto, queue_url, uploads, conf, output_dir
):
    day = DAYS[1]
    images = uploads[day.date()][0]
    ok_quoted, errored, changed = images  # three images that day
    rows = [
        (ok_quoted.key, f'"{ok_quoted.etag}"', "ok"),  # quoted ETag: still the same object
        (errored.key, errored.etag, "error"),  # failed last time: try again
        (changed.key, "0" * 32, "ok"),  # indexed, then overwritten with new content
    ]
    write_local_index(output_dir, rows, indexed_at=day.add(days=1))
    # the same key and ETag indexed from another bucket says nothing about this one
    write_local_index(
        output_dir, [(errored.key, errored.etag, "ok")], indexed_at=day.add(days=1), bucket="elsewhere"
    )
    _ingest(output_dir)

    _backfill(dag, day, day, conf())
    assert _queued_keys(moto, queue_url) == sorted([errored.key, changed.key])


def test_an_image_indexed_only_with_another_model_is_queued(dag, moto, queue_url, uploads, conf, output_dir):
    """Per model version: the run's model_pack, else the current version (the one search uses)."""
    from faceidx.store.registry import ModelRegistry

    day = DAYS[0]
    images = uploads[day.date()][0]
    new_pack, new_version = "antelopev2", "antelopev2-0123456789ab"
    _land(output_dir, [(u.key, u.etag, "ok") for u in images], indexed_at=day.add(days=1))
    _land(
        output_dir,
        [(images[0].key, images[0].etag, "ok")],
        indexed_at=day.add(days=2),
        pack=new_pack,
        version=new_version,
    )
    _ingest(output_dir)
    missing_for_new = sorted(u.key for u in images[1:])

    # a re-index with the new pack queues what the new pack has not indexed, whatever the old one did
    (run,) = _backfill(dag, day, day, conf(model_pack=new_pack))
    bodies = drain(moto, queue_url)
    assert sorted(key for _, key, _, _ in _images(bodies)) == missing_for_new
    assert {body["model_pack"] for body in bodies} == {new_pack}
    assert xcom_value(run, "queue_images")["indexed_for"] == f"model_pack {new_pack} (any of its versions)"

    # two versions and none chosen: the run cannot tell which one it indexes with, so it refuses
    dag = load_dag("face_reindex")  # dag.test() leaves the last run's Params on the DAG object it ran
    (run,) = _backfill(dag, day, day, conf(), reprocess_behavior="completed")
    assert task_states(run) == {"queue_images": "failed", "signal_indexing": "upstream_failed"}
    assert drain(moto, queue_url) == []

    registry = ModelRegistry(IndexLocation(output_uri=str(output_dir)))
    registry.use(new_version, actor="test")
    _backfill(dag, day, day, conf(), reprocess_behavior="completed")
    assert _queued_keys(moto, queue_url) == missing_for_new

    registry.use(MODEL_VERSION, actor="test")
    _backfill(dag, day, day, conf(), reprocess_behavior="completed")
    assert drain(moto, queue_url) == []


def test_without_only_missing_everything_is_queued_again(dag, moto, queue_url, uploads, conf, output_dir):
    day = DAYS[0]
    _land(output_dir, [(u.key, u.etag, "ok") for u in uploads[day.date()][0]], indexed_at=day.add(days=1))
    _ingest(output_dir)
    _backfill(dag, day, day, conf(only_missing=False))
    assert len(_images(drain(moto, queue_url))) == 3


def _set_paused(dag_id, paused):
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=paused))


@pytest.fixture
def face_indexing_unpaused(dag):
    """Airflow queues Asset-triggered runs only for unpaused DAGs."""
    from tests.support.reindex_backfill import sync_dags_to_db

    sync_dags_to_db()
    _set_paused("face_indexing", False)
    yield
    _set_paused("face_indexing", True)


def test_asset_event_signals_face_indexing(dag, moto, queue_url, uploads, face_indexing_unpaused, conf):
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    (run,) = _backfill(dag, DAYS[2], DAYS[2], conf())
    with create_session() as session:
        events = list(
            session.scalars(
                select(AssetEvent)
                .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
                .where(AssetModel.uri == REINDEX_ASSET_URI)
            )
        )
        assert len(events) == 1
        assert (events[0].source_dag_id, events[0].source_task_id, events[0].source_run_id) == (
            "face_reindex",
            "signal_indexing",
            run.run_id,
        )
        assert events[0].extra["queued"] == 3
        assert events[0].extra["prefix"] == f"uploads/{DAYS[2]:%Y-%m-%d}/"
        # face_indexing is scheduled on the Asset: the event queues a run of it for the scheduler
        waiting = session.scalars(
            select(AssetDagRunQueue.target_dag_id)
            .join(AssetModel, AssetModel.id == AssetDagRunQueue.asset_id)
            .where(AssetModel.uri == REINDEX_ASSET_URI)
        ).all()
        assert waiting == ["face_indexing"]


def test_nothing_queued_emits_no_asset_event(dag, moto, queue_url, face_indexing_unpaused, conf):
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    from faceidx.common.constants import REINDEX_ASSET_URI

    (run,) = _backfill(dag, DAYS[2], DAYS[2], conf())  # an empty day
    assert task_states(run) == {"queue_images": "success", "signal_indexing": "skipped"}
    with create_session() as session:  # face_table's runs in other tests emit their own asset's events
        reindexed = select(AssetModel.id).where(AssetModel.uri == REINDEX_ASSET_URI)
        assert session.scalar(select(func.count()).where(AssetEvent.asset_id.in_(reindexed))) == 0
        assert session.scalar(select(func.count()).where(AssetDagRunQueue.asset_id.in_(reindexed))) == 0


def test_dry_run_sends_nothing_and_signals_nothing(dag, moto, queue_url, uploads, conf):
    (run,) = _backfill(dag, DAYS[0], DAYS[0], conf(dry_run=True))
    assert drain(moto, queue_url) == []
    assert task_states(run) == {"queue_images": "success", "signal_indexing": "skipped"}
    assert xcom_value(run, "queue_images")["queued"] == 3  # would queue


def test_empty_prefix_selects_by_last_modified(dag, moto, queue_url, conf):
    """Objects anywhere in the bucket, picked by LastModified in [start, end)."""
    first, second = DAYS[0], DAYS[1]
    placed = {
        "a/at-start.jpg": first,  # the first instant of the interval belongs to it
        "b/c/midday.png": first.add(hours=12),
        "last-second.jpeg": second.subtract(seconds=1),
        "at-end.jpg": second,  # the end belongs to the next interval
        "too-old.jpg": first.subtract(seconds=1),
        "too-new.jpg": second.add(days=1),
    }
    for key, moment in placed.items():
        put(moto, key)
        backdate(INPUT_BUCKET, key, moment)

    runs = _backfill(dag, first, second, conf(prefix=""))
    bodies = drain(moto, queue_url)
    by_run = Counter(body["faceidx"]["run_id"] for body in bodies)
    assert sorted(key for _, key, _, _ in _images(bodies)) == sorted(
        ["a/at-start.jpg", "b/c/midday.png", "last-second.jpeg", "at-end.jpg"]
    )
    assert [by_run[r.run_id] for r in runs] == [3, 1]
    assert xcom_value(runs[0], "queue_images")["skipped"]["outside_interval"] == 3
    assert timedelta(days=1) == runs[0].data_interval_end - runs[0].data_interval_start


def test_a_run_without_data_interval_fails_at_once(dag, moto, queue_url, conf):
    """Triggered with no logical date there is no interval to select: fail, do not retry, say why."""
    from tests.support.airflow_dags import run_dag

    run, states = run_dag(dag, conf(), logical_date=None)
    assert states == {"queue_images": "failed", "signal_indexing": "upstream_failed"}
    (ti,) = [ti for ti in run.get_task_instances() if ti.task_id == "queue_images"]
    assert ti.try_number == 1  # AirflowFailException: no retry
    assert drain(moto, queue_url) == []
