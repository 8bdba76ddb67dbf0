"""Is an image indexed? ``FaceTable.indexed_images`` on a real (local) face table, and the query's rule."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from faceidx.store import indexed as indexed_module
from faceidx.store.indexed import IndexedModel, IndexedQuery
from faceidx.store.location import IndexLocation
from faceidx.store.table import FaceTable
from tests.plugins.faceidx.store.table_builders import T0, VERSION, Image, write_landing

OTHER_VERSION = "antelopev2-0123456789ab"


@pytest.fixture
def table(tmp_path) -> FaceTable:
    location = IndexLocation(output_uri=str(tmp_path / "out"))
    write_landing(
        location,
        [
            Image("ok.jpg"),
            Image("quoted.jpg", etag='"e1"'),
            Image("no-face.jpg", faces=0),  # processed, no face: indexed
            Image("failed.jpg", status="error"),
            Image("overwritten.jpg", etag="old"),
            Image("ok.jpg", bucket="elsewhere"),
            Image("it's.jpg"),
        ],
    )
    write_landing(location, [Image("new-model.jpg", version=OTHER_VERSION)])
    write_landing(location, [Image("long-ago.jpg", at=T0 - timedelta(days=30))])
    FaceTable.open(location).ingest()
    return FaceTable.open(location)


KEYS = frozenset(
    {"ok.jpg", "quoted.jpg", "no-face.jpg", "failed.jpg", "overwritten.jpg", "it's.jpg", "new-model.jpg"}
    | {"long-ago.jpg", "never.jpg"}
)


@pytest.mark.parametrize(
    ("model", "since", "expected"),
    [
        (
            IndexedModel(model_version=VERSION),
            None,
            {"ok.jpg", "quoted.jpg", "no-face.jpg", "overwritten.jpg", "it's.jpg", "long-ago.jpg"},
        ),
        (IndexedModel(model_version=OTHER_VERSION), None, {"new-model.jpg"}),
        (
            IndexedModel(),
            None,
            {"ok.jpg", "quoted.jpg", "no-face.jpg", "overwritten.jpg", "it's.jpg", "long-ago.jpg"}
            | {"new-model.jpg"},
        ),
        (IndexedModel(model_pack="test-pack"), None, KEYS - {"failed.jpg", "never.jpg"}),
        (IndexedModel(model_pack="antelopev2"), None, set()),
        # only the indexed_date partitions from `since` on are read
        (
            IndexedModel(model_version=VERSION),
            T0.date() - timedelta(days=1),
            KEYS - {"failed.jpg", "never.jpg", "new-model.jpg", "long-ago.jpg"},
        ),
    ],
)
def test_only_ok_rows_of_the_model_count(table, model, since, expected):
    query = IndexedQuery(bucket="photos", keys=KEYS, model=model, since=since)
    found = table.indexed_images(query)
    assert {key for key, _ in found} == expected
    etags = dict(found)
    if "quoted.jpg" in etags:
        assert etags["quoted.jpg"] == "e1"  # quotes normalised
    if "overwritten.jpg" in etags:
        assert etags["overwritten.jpg"] == "old"  # the caller compares it with the object's ETag


def test_an_error_row_and_another_bucket_do_not_count(table):
    query = IndexedQuery(bucket="elsewhere", keys=frozenset({"ok.jpg", "failed.jpg"}))
    assert table.indexed_images(query) == {("ok.jpg", "e1")}


def test_many_keys_are_asked_a_chunk_at_a_time(table, monkeypatch):
    monkeypatch.setattr(indexed_module, "KEYS_PER_QUERY", 2)
    query = IndexedQuery(bucket="photos", keys=KEYS, model=IndexedModel(model_version=OTHER_VERSION))
    assert len(list(query.chunks())) == 5
    assert table.indexed_images(query) == {("new-model.jpg", "e1")}


def test_the_predicate_names_partitions_first_and_quotes_values():
    query = IndexedQuery(
        bucket="b",
        keys=frozenset({"it's.jpg"}),
        model=IndexedModel(model_version="v'1"),
        since=date(2026, 11, 19),
    )
    assert query.predicate(query.keys) == (
        "model_version = 'v''1' AND indexed_date >= '2026-11-19' AND status = 'ok' "
        "AND image_bucket = 'b' AND image_key IN ('it''s.jpg')"
    )


def test_a_reader_creates_no_table(tmp_path):
    location = IndexLocation(output_uri=str(tmp_path / "out"))
    assert FaceTable.open_if_exists(location) is None
    assert not (tmp_path / "out").exists()
