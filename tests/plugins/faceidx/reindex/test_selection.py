"""The pure selection rules: interval, prefix rendering, skip reasons, the index-partition pruning."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from faceidx.aws.parsing import ListedObject
from faceidx.reindex.selection import (
    Interval,
    ReindexRequestError,
    choose_mode,
    drop_indexed,
    earliest_index_day,
    interval_from_context,
    iter_in_batches,
    normalise_etag,
    normalise_suffixes,
    render_prefix,
    select_objects,
    skip_reason,
    summary_rows,
)

START = datetime(2026, 11, 20, tzinfo=UTC)
DAY = Interval(START, START + timedelta(days=1))
SUFFIXES = (".jpeg", ".jpg", ".png")


def obj(key="a.jpg", *, size=10, at=START + timedelta(hours=1), etag='"e1"', storage="STANDARD"):
    return ListedObject(key=key, etag=etag, size=size, last_modified=at, storage_class=storage)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("uploads/{{ ds }}/", "uploads/2026-11-20/"),
        ("{{ ds_nodash }}/", "20261120/"),
        (
            "y={{ data_interval_start.strftime('%Y') }}/m={{ data_interval_start.strftime('%m') }}/",
            "y=2026/m=11/",
        ),
        ("until-{{ data_interval_end.strftime('%d') }}", "until-21"),
        ("static/prefix/", "static/prefix/"),
        ("", ""),
        ("{% if true %}x/{% endif %}", "x/"),
    ],
)
def test_render_prefix(template, expected):
    assert render_prefix(template, DAY) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("uploads/{{ yesterday_ds }}/", "Available: ds, ds_nodash"),
        ("{{ ds ", "does not render"),
        ("a{{ '\\n' }}b", "line break"),
        ("{{ ''.__class__.__mro__ }}", "does not render"),  # the sandbox refuses
    ],
)
def test_render_prefix_errors_say_what_is_available(template, message):
    with pytest.raises(ReindexRequestError, match=message):
        render_prefix(template, DAY)


@pytest.mark.parametrize(
    ("select_by", "template", "mode"),
    [
        ("auto", "uploads/{{ ds }}/", "prefix"),
        ("auto", "uploads/", "last_modified"),
        ("auto", "", "last_modified"),
        ("prefix", "uploads/", "prefix"),
        ("last_modified", "uploads/{{ ds }}/", "last_modified"),
    ],
)
def test_choose_mode(select_by, template, mode):
    assert choose_mode(select_by, template) == mode


def test_choose_mode_rejects_unknown():
    with pytest.raises(ReindexRequestError, match="not one of auto, prefix, last_modified"):
        choose_mode("newest", "")


@pytest.mark.parametrize(
    ("item", "interval", "reason"),
    [
        (obj("a.jpg"), DAY, None),
        (obj("A.JPG"), DAY, None),
        (obj("dir/b.Png"), DAY, None),
        (obj("c.webp"), DAY, "not_an_image"),
        (obj("photos/"), DAY, "not_an_image"),
        (obj("jpg"), DAY, "not_an_image"),
        (obj("e.jpg", size=0), DAY, "empty_object"),
        (obj("f.jpg", storage="GLACIER"), DAY, "archived"),
        (obj("f.jpg", storage="DEEP_ARCHIVE"), DAY, "archived"),
        (obj("f.jpg", storage="GLACIER_IR"), DAY, None),
        (obj("g.jpg", at=START), DAY, None),  # the start belongs to the interval
        (obj("g.jpg", at=START + timedelta(days=1) - timedelta(microseconds=1)), DAY, None),
        (obj("g.jpg", at=START + timedelta(days=1)), DAY, "outside_interval"),  # the end does not
        (obj("g.jpg", at=START - timedelta(seconds=1)), DAY, "outside_interval"),
        (obj("g.jpg", at=START - timedelta(days=9)), None, None),  # prefix mode: no time filter
    ],
)
def test_skip_reason(item, interval, reason):
    assert skip_reason(item, suffixes=SUFFIXES, interval=interval) == reason


def test_select_objects_accounts_for_every_object_and_keeps_order():
    listing = [
        obj("b.jpg"),
        obj("x.txt"),
        obj("a.png"),
        obj("z.jpg", size=0),
        obj("old.jpg", at=START - timedelta(1)),
    ]
    selection = select_objects(iter(listing), suffixes=SUFFIXES, interval=DAY)
    assert [o.key for o in selection.selected] == ["b.jpg", "a.png"]
    assert selection.found == 5
    assert dict(selection.skipped) == {"not_an_image": 1, "empty_object": 1, "outside_interval": 1}
    assert sum(selection.skipped.values()) + len(selection.selected) == selection.found


@pytest.mark.parametrize(
    ("raw", "bare"),
    [('"abc"', "abc"), ("abc", "abc"), (' "abc-2" ', "abc-2"), ('""', None), ("", None), (None, None)],
)
def test_normalise_etag(raw, bare):
    assert normalise_etag(raw) == bare


def test_drop_indexed_compares_bare_etags_per_key():
    selection = select_objects(
        [obj("a.jpg", etag='"e1"'), obj("b.jpg", etag='"e2"'), obj("c.jpg", etag='"e3"')],
        suffixes=SUFFIXES,
        interval=DAY,
    )
    left = drop_indexed(selection, {("a.jpg", "e1"), ("b.jpg", "old"), ("zzz.jpg", "e3")})
    assert [o.key for o in left.selected] == ["b.jpg", "c.jpg"]
    assert left.skipped["already_indexed"] == 1
    assert left.found == 3


@pytest.mark.parametrize(
    ("uploaded", "earliest"),
    [
        ([datetime(2026, 11, 20, 3, tzinfo=UTC), datetime(2026, 11, 22, tzinfo=UTC)], date(2026, 11, 19)),
        ([datetime(2026, 11, 20, 0, tzinfo=UTC)], date(2026, 11, 19)),
        ([datetime(2026, 11, 20, 23, 59, tzinfo=UTC)], date(2026, 11, 19)),
        ([], None),
    ],
)
def test_the_index_is_read_from_a_day_before_the_oldest_candidate(uploaded, earliest):
    assert earliest_index_day([obj(at=at) for at in uploaded]) == earliest


@pytest.mark.parametrize(
    ("start", "end"),
    [(None, START), (START, None), (None, None)],
)
def test_a_run_without_data_interval_is_refused_with_the_way_out(start, end):
    with pytest.raises(ReindexRequestError, match="Backfill"):
        interval_from_context(start, end)


def test_interval_must_be_aware_and_ordered():
    with pytest.raises(ReindexRequestError, match="timezone-aware"):
        Interval(datetime(2026, 1, 1), datetime(2026, 1, 2))
    with pytest.raises(ReindexRequestError, match="before it starts"):
        Interval(START, START - timedelta(days=1))


def test_normalise_suffixes():
    assert normalise_suffixes([".JPG", ".jpg ", "", ".png"]) == (".jpg", ".png")
    with pytest.raises(ReindexRequestError, match="suffixes is empty"):
        normalise_suffixes(["", " "])


@pytest.mark.parametrize(
    ("count", "sizes"), [(0, []), (1, [1]), (10, [10]), (11, [10, 1]), (25, [10, 10, 5])]
)
def test_iter_in_batches(count, sizes):
    assert [len(b) for b in iter_in_batches(list(range(count)), 10)] == sizes


def test_summary_rows_list_every_reason_and_the_queued_count():
    selection = select_objects([obj("a.jpg"), obj("b.txt")], suffixes=SUFFIXES, interval=DAY)
    rows = dict(summary_rows(selection, queued=1, dry_run=False))
    assert rows["found"] == 2
    assert rows["skipped: not_an_image"] == 1
    assert rows["skipped: already_indexed"] == 0
    assert rows["queued"] == 1
    assert dict(summary_rows(selection, queued=1, dry_run=True))["would queue (dry run)"] == 1
