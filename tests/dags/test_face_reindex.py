"""face_reindex under real Airflow backfills (Airflow's own backfill code, runs by dag.test) on moto.

What is asserted is what moto holds afterwards: the messages in the queue (keys, ETags, and that the
worker's own parser reads them as S3 events) and the Asset events in Airflow's metadata DB.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pendulum
import pytest

from faceidx.common.constants import REINDEX_ASSET_URI
from faceidx_worker.events import MessageKind, parse_body
from tests.support.airflow_dags import load_dag
from tests.support.reindex_backfill import forget_runs, run_backfill, task_states, xcom_value
from tests.support.reindex_moto import (
    INPUT_BUCKET,
    OUTPUT_URI,
    backdate,
    create_resources,
    day_uploads,
    drain,
    put,
    write_index,
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


def _conf(queue_url, **overrides):
    conf = {
        "bucket": INPUT_BUCKET,
        "prefix": "uploads/{{ ds }}/",
        "queue_url": queue_url,
        "output_uri": OUTPUT_URI,
    }
    conf.update(overrides)
    return conf


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


def test_three_day_backfill_queues_exactly_the_images_of_its_days(dag, moto, queue_url, uploads):
    runs = _backfill(dag, DAYS[0], DAYS[-1], _conf(queue_url))

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


def test_second_backfill_with_only_missing_queues_none(dag, moto, queue_url, uploads):
    _backfill(dag, DAYS[0], DAYS[-1], _conf(queue_url))
    queued = _images(drain(moto, queue_url))
    assert len(queued) == 9

    # the workers indexed everything (one file per day, on the day after the upload)
    for day in DAYS:
        images = [(u.key, u.etag, "ok") for u in uploads[day.date()][0]]
        write_index(moto, images, indexed_at=day.add(days=1, hours=2))

    runs = _backfill(dag, DAYS[0], DAYS[-1], _conf(queue_url), reprocess_behavior="completed")
    assert len(runs) == 3
    assert drain(moto, queue_url) == []
    for run in runs:
        assert task_states(run) == {"queue_images": "success", "signal_indexing": "skipped"}
        summary = xcom_value(run, "queue_images")
        assert summary["queued"] == 0
        assert summary["skipped"]["already_indexed"] == 3


def test_only_missing_queues_errors_changed_and_unindexed_images(dag, moto, queue_url, uploads):
    day = DAYS[1]
    images = uploads[day.date()][0]
    ok_quoted, errored, changed = images  # three images that day
    write_index(
        moto,
        [
            (ok_quoted.key, f'"{ok_quoted.etag}"', "ok"),  # quoted ETag: still the same object
            (errored.key, errored.etag, "error"),  # failed last time: try again
            (changed.key, "0" * 32, "ok"),  # indexed, then overwritten with new content
        ],
        indexed_at=day.add(days=1),
    )
    # the same key and ETag indexed from another bucket says nothing about this one
    write_index(moto, [(errored.key, errored.etag, "ok")], indexed_at=day.add(days=1), bucket="elsewhere")

    _backfill(dag, day, day, _conf(queue_url))
    assert sorted(key for _, key, _, _ in _images(drain(moto, queue_url))) == sorted(
        [errored.key, changed.key]
    )


def test_without_only_missing_everything_is_queued_again(dag, moto, queue_url, uploads):
    day = DAYS[0]
    write_index(moto, [(u.key, u.etag, "ok") for u in uploads[day.date()][0]], indexed_at=day.add(days=1))
    _backfill(dag, day, day, _conf(queue_url, only_missing=False))
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


def test_asset_event_signals_face_indexing(dag, moto, queue_url, uploads, face_indexing_unpaused):
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    (run,) = _backfill(dag, DAYS[2], DAYS[2], _conf(queue_url))
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


def test_nothing_queued_emits_no_asset_event(dag, moto, queue_url, face_indexing_unpaused):
    from airflow.models.asset import AssetDagRunQueue, AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    (run,) = _backfill(dag, DAYS[2], DAYS[2], _conf(queue_url))  # an empty day
    assert task_states(run) == {"queue_images": "success", "signal_indexing": "skipped"}
    with create_session() as session:
        assert session.scalar(select(func.count()).select_from(AssetEvent)) == 0
        assert session.scalar(select(func.count()).select_from(AssetDagRunQueue)) == 0


def test_dry_run_sends_nothing_and_signals_nothing(dag, moto, queue_url, uploads):
    (run,) = _backfill(dag, DAYS[0], DAYS[0], _conf(queue_url, dry_run=True))
    assert drain(moto, queue_url) == []
    assert task_states(run) == {"queue_images": "success", "signal_indexing": "skipped"}
    assert xcom_value(run, "queue_images")["queued"] == 3  # would queue


def test_empty_prefix_selects_by_last_modified(dag, moto, queue_url):
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

    runs = _backfill(dag, first, second, _conf(queue_url, prefix=""))
    bodies = drain(moto, queue_url)
    by_run = Counter(body["faceidx"]["run_id"] for body in bodies)
    assert sorted(key for _, key, _, _ in _images(bodies)) == sorted(
        ["a/at-start.jpg", "b/c/midday.png", "last-second.jpeg", "at-end.jpg"]
    )
    assert [by_run[r.run_id] for r in runs] == [3, 1]
    assert xcom_value(runs[0], "queue_images")["skipped"]["outside_interval"] == 3
    assert timedelta(days=1) == runs[0].data_interval_end - runs[0].data_interval_start


def test_a_run_without_data_interval_fails_at_once(dag, moto, queue_url):
    """Triggered with no logical date there is no interval to select: fail, do not retry, say why."""
    from tests.support.airflow_dags import run_dag

    run, states = run_dag(dag, _conf(queue_url), logical_date=None)
    assert states == {"queue_images": "failed", "signal_indexing": "upstream_failed"}
    (ti,) = [ti for ti in run.get_task_instances() if ti.task_id == "queue_images"]
    assert ti.try_number == 1  # AirflowFailException: no retry
    assert drain(moto, queue_url) == []
