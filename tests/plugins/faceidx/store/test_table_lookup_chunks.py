"""The ingest's lookup of the batch's images goes a bounded IN list a query.

DataFusion's SQL parser dies (SIGSEGV) on an IN list of about 40,000 literals, which one round of 500
worker files reaches; the lookup therefore goes ``IN_LIST_MAX`` values a query. Here the bound is 3, so
a batch of ten images and a tombstone crosses several queries: the re-delivered images must still be
found (dropped as duplicates) and the tombstone must still erase its image.
"""

from __future__ import annotations

from faceidx.store import table as table_module
from faceidx.store.location import IndexLocation
from faceidx.store.table import FaceTable
from tests.plugins.faceidx.store.table_builders import Image, later, write_landing


def test_a_batch_larger_than_one_in_list_dedups_and_erases_like_a_small_one(tmp_path, monkeypatch):
    monkeypatch.setattr(table_module, "IN_LIST_MAX", 3)
    location = IndexLocation(output_uri=str(tmp_path / "out"))
    images = [Image(f"img-{i}.jpg") for i in range(10)]
    write_landing(location, images)
    table = FaceTable.open(location)
    from faceidx.maintenance.tasks import ingest_all

    ingest_all(table, 500, set())
    assert table.read(columns=["face_id"]).num_rows == 20
    # the same ten images again (a re-delivery) and a tombstone of one of them, in one batch
    write_landing(location, [Image(f"img-{i}.jpg", job="job:again", at=later(5)) for i in range(10)])
    write_landing(location, [Image("img-4.jpg", status="removed", at=later(6))])
    summary = ingest_all(FaceTable.open(location), 500, set())
    after = FaceTable.open(location).read(columns=["image_key", "status"])
    ok_keys = {
        k
        for k, s in zip(after.column("image_key").to_pylist(), after.column("status").to_pylist())
        if s == "ok"
    }
    assert ok_keys == {f"img-{i}.jpg" for i in range(10)} - {"img-4.jpg"}
    assert summary["duplicates_dropped"] >= 18  # the nine surviving images' two faces each
