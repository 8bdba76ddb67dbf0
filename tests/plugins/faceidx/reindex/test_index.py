"""The only_missing lookup: worker-written Parquet files, read four columns at a time."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from faceidx.aws import s3 as reindex_hooks
from faceidx.aws.s3 import RangeReader, ReindexS3Hook
from faceidx.reindex.index import (
    indexed_pairs_in_file,
    local_index_files,
    lookup_indexed,
    parse_output_uri,
    partition_day,
)
from faceidx.reindex.selection import ReindexRequestError
from faceidx.store.indexed import IndexedModel, IndexedQuery
from tests.support.reindex_moto import INPUT_BUCKET, OUTPUT_BUCKET, index_file_bytes, write_index

AT = datetime(2026, 11, 21, 3, tzinfo=UTC)


def query(*keys, bucket=INPUT_BUCKET, **model):
    return IndexedQuery(bucket=bucket, keys=frozenset(keys), model=IndexedModel(**model))


@pytest.mark.parametrize(
    ("uri", "bucket", "faces_prefix", "local"),
    [
        ("s3://idx/v1", "idx", "v1/faces/", None),
        ("s3://idx/v1/", "idx", "v1/faces/", None),
        ("s3://idx", "idx", "faces/", None),
        ("/data/index", None, "faces/", Path("/data/index")),
        ("file:///data/index", None, "faces/", Path("/data/index")),
    ],
)
def test_parse_output_uri(uri, bucket, faces_prefix, local):
    location = parse_output_uri(uri)
    assert (location.bucket, location.faces_prefix, location.local_dir) == (bucket, faces_prefix, local)


@pytest.mark.parametrize(
    ("uri", "message"),
    [("", "faceidx_output_uri"), ("s3:///x", "has no bucket"), ("gs://b/x", "only s3://")],
)
def test_parse_output_uri_errors(uri, message):
    with pytest.raises(ReindexRequestError, match=message):
        parse_output_uri(uri)


@pytest.mark.parametrize(
    ("key", "day"),
    [
        ("v1/faces/dt=2026-11-21/part-1.parquet", date(2026, 11, 21)),
        ("faces/dt=2026-01-02/part-x.parquet", date(2026, 1, 2)),
        ("/tmp/out/faces/dt=2026-01-02/part-x.parquet", date(2026, 1, 2)),
        ("v1/faces/part-1.parquet", None),
        ("v1/faces/dt=2026-13-40/part-1.parquet", None),
        ("v1/faces/dt=2026-11-21/part-1.parquet.tmp", None),
    ],
)
def test_partition_day(key, day):
    assert partition_day(key) == day


def test_only_ok_rows_of_the_bucket_and_keys_asked_for_count():
    data = index_file_bytes(
        [("a.jpg", "e1", "ok"), ("b.jpg", "e2", "error"), ("c.jpg", '"e3"', "ok"), ("d.jpg", None, "ok")],
        indexed_at=AT,
    )
    pairs = indexed_pairs_in_file(io.BytesIO(data), query("a.jpg", "b.jpg", "c.jpg", "d.jpg"))
    assert pairs == {("a.jpg", "e1"), ("c.jpg", "e3")}  # quotes normalised; no etag: no match
    assert indexed_pairs_in_file(io.BytesIO(data), query("a.jpg", bucket="other-bucket")) == set()
    assert indexed_pairs_in_file(io.BytesIO(data), query("c.jpg")) == {("c.jpg", "e3")}


@pytest.mark.parametrize(
    ("model", "indexed"),
    [
        ({}, True),
        ({"model_version": "buffalo_l-0123456789ab"}, True),
        ({"model_version": "buffalo_l-fedcba987654"}, False),  # new weights: another version
        ({"model_pack": "buffalo_l"}, True),
        ({"model_pack": "antelopev2"}, False),
    ],
)
def test_a_landing_row_counts_only_for_its_own_model(model, indexed):
    data = index_file_bytes(
        [("a.jpg", "e1", "ok")], indexed_at=AT, pack="buffalo_l", version="buffalo_l-0123456789ab"
    )
    pairs = indexed_pairs_in_file(io.BytesIO(data), query("a.jpg", **model))
    assert pairs == ({("a.jpg", "e1")} if indexed else set())


def test_a_file_not_written_by_the_worker_is_refused():
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table({"image_key": ["a.jpg"]}), buffer)
    buffer.seek(0)
    with pytest.raises(ReindexRequestError, match="lacks column"):
        indexed_pairs_in_file(buffer, query("a.jpg"))


def test_a_damaged_file_is_named():
    data = index_file_bytes([("a.jpg", "e1", "ok")], indexed_at=AT)
    damaged = io.BytesIO(data[: len(data) // 2])
    damaged.name = "s3://idx/v1/faces/dt=2026-11-21/part-1.parquet"
    with pytest.raises(ReindexRequestError, match=r"part-1\.parquet cannot be read as Parquet"):
        indexed_pairs_in_file(damaged, query("a.jpg"))


def test_ranged_reads_fetch_a_small_part_of_a_big_file():
    """2,000 images x 4 faces x 512-d embeddings: the four columns are a tiny share of the bytes."""
    images = [(f"img-{n:05d}.jpg", f"etag{n}", "ok") for n in range(2000)]
    data = index_file_bytes(images, indexed_at=AT, faces=4, dim=512)
    fetched = []

    def fetch(start, end):
        fetched.append(end - start + 1)
        return data[start : end + 1]

    reader = RangeReader(fetch, len(data), name="big.parquet")
    pairs = indexed_pairs_in_file(reader, query("img-00007.jpg", "img-01999.jpg", "nope.jpg"))
    assert pairs == {("img-00007.jpg", "etag7"), ("img-01999.jpg", "etag1999")}
    assert len(data) > 10_000_000
    assert sum(fetched) < len(data) / 20, f"read {sum(fetched):,} of {len(data):,} bytes"
    print(f"index file {len(data):,} B: {len(fetched)} ranged reads, {sum(fetched):,} B fetched")


def test_local_index_directory(tmp_path):
    for day, images in (("2026-11-20", [("a.jpg", "e1", "ok")]), ("2026-11-21", [("b.jpg", "e2", "ok")])):
        target = tmp_path / "faces" / f"dt={day}" / "part-1.parquet"
        target.parent.mkdir(parents=True)
        target.write_bytes(index_file_bytes(images, indexed_at=AT))
    (tmp_path / "faces" / "dt=2026-11-21" / "notes.txt").write_text("not an index file")
    location = parse_output_uri(f"file://{tmp_path}")
    files = [name for name, _ in local_index_files(location)]
    assert len(files) == 2
    found = lookup_indexed(files, lambda n: n, query("a.jpg", "b.jpg", "c.jpg"))
    assert found.pairs == {("a.jpg", "e1"), ("b.jpg", "e2")}
    assert found.files_read == 2
    assert local_index_files(parse_output_uri(str(tmp_path / "absent"))) == []


@pytest.mark.parametrize("whole_object_bytes", [reindex_hooks.WHOLE_OBJECT_BYTES, 0])
def test_index_on_s3_through_the_hook(moto, monkeypatch, whole_object_bytes):
    """Small files come in one GET, big ones by ranges; both through the Airflow connection."""
    monkeypatch.setattr(reindex_hooks, "WHOLE_OBJECT_BYTES", whole_object_bytes)
    moto.client("s3").create_bucket(Bucket=OUTPUT_BUCKET)
    write_index(moto, [("a.jpg", "e1", "ok"), ("b.jpg", "e2", "error")], indexed_at=AT)
    write_index(moto, [("c.jpg", "e3", "ok")], indexed_at=AT, prefix="v2")  # another index: not read
    hook = ReindexS3Hook(aws_conn_id="aws_default")
    location = parse_output_uri(f"s3://{OUTPUT_BUCKET}/v1/")
    files = hook.list_index_files(OUTPUT_BUCKET, location.faces_prefix)
    assert len(files) == 1
    sizes = dict(files)
    found = lookup_indexed(
        sizes,
        lambda key: hook.open_index_file(OUTPUT_BUCKET, key, sizes[key]),
        query("a.jpg", "b.jpg", "c.jpg"),
    )
    assert found.pairs == {("a.jpg", "e1")}


@pytest.mark.parametrize("whole_object_bytes", [reindex_hooks.WHOLE_OBJECT_BYTES, 0])
def test_a_landing_file_ingested_after_the_listing_is_skipped(moto, monkeypatch, whole_object_bytes):
    """face_table deleted it between the listing and the read: its rows are in the table, read next."""
    from faceidx.reindex.lookup import file_vanished

    monkeypatch.setattr(reindex_hooks, "WHOLE_OBJECT_BYTES", whole_object_bytes)
    moto.client("s3").create_bucket(Bucket=OUTPUT_BUCKET)
    gone = write_index(moto, [("a.jpg", "e1", "ok")], indexed_at=AT)
    write_index(moto, [("b.jpg", "e2", "ok")], indexed_at=AT)
    hook = ReindexS3Hook(aws_conn_id="aws_default")
    sizes = dict(hook.list_index_files(OUTPUT_BUCKET, "v1/faces/"))
    moto.client("s3").delete_object(Bucket=OUTPUT_BUCKET, Key=gone)
    found = lookup_indexed(
        sorted(sizes),
        lambda key: hook.open_index_file(OUTPUT_BUCKET, key, sizes[key]),
        query("a.jpg", "b.jpg"),
        vanished=file_vanished,
    )
    assert (found.pairs, found.files_read, found.files_vanished) == ({("b.jpg", "e2")}, 1, 1)


def test_a_damaged_landing_file_still_fails_the_lookup(tmp_path):
    from faceidx.reindex.lookup import file_vanished

    damaged = tmp_path / "part-1.parquet"
    damaged.write_bytes(b"not parquet")
    with pytest.raises(ReindexRequestError, match="cannot be read as Parquet"):
        lookup_indexed([str(damaged)], lambda n: n, query("a.jpg"), vanished=file_vanished)
    found = lookup_indexed(
        [str(tmp_path / "gone.parquet")], lambda n: n, query("a.jpg"), vanished=file_vanished
    )
    assert (found.files_read, found.files_vanished) == (0, 1)
