"""Purges and commit races against real processes (local folder): a long-lived searcher and a face
table reader keep answering while another process writes and purges history, two processes that
commit to the same Delta table both land, and the change data cleanup keeps what retained commits
need."""

from __future__ import annotations

import json
import multiprocessing
import time
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest

from faceidx.store.location import IndexLocation
from faceidx.store.table import FaceTable
from faceidx.store.vectors import VectorIndex
from tests.plugins.faceidx.store import race_workers
from tests.plugins.faceidx.store.table_builders import Image, later, write_landing
from tests.plugins.faceidx.store.vector_faces import MODEL_VERSION, DeltaFaces, face_batch, unit_vectors

SPAWN = multiprocessing.get_context("spawn")  # the parent already runs delta-rs and Lance threads
RACE_SECONDS = 6.0


def _finish(process: multiprocessing.process.BaseProcess, timeout: float = 60) -> None:
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()
        pytest.fail("the racing process did not finish in time")
    assert process.exitcode == 0, f"the racing process failed (exit code {process.exitcode}): see its stderr"


def test_a_long_lived_vector_index_keeps_answering_while_another_process_syncs_and_purges(tmp_path):
    root = str(tmp_path)
    faces = DeltaFaces(tmp_path / "table" / "faces")
    faces.append(face_batch(unit_vectors(200, 32)))
    VectorIndex(IndexLocation(root)).sync(faces, MODEL_VERSION)
    searcher = VectorIndex(IndexLocation(root))  # opened once, like a serving process
    queries = unit_vectors(16, 32, seed=7)
    assert len(searcher.search(queries[:1], model_version=MODEL_VERSION, k=5)[0]) == 5

    purged, rounds = SPAWN.Event(), SPAWN.Value("i", 0)
    writer = SPAWN.Process(target=race_workers.sync_and_purge, args=(root, RACE_SECONDS, purged, rounds))
    writer.start()
    failures: list[str] = []
    searches = after_purge = 0
    while writer.is_alive():
        seen_purge = purged.is_set()
        try:
            found = searcher.search(queries[searches % 16][None, :], model_version=MODEL_VERSION, k=5)[0]
            if len(found) != 5:
                failures.append(f"{len(found)} matches")
        except Exception as error:
            failures.append(f"{type(error).__name__}: {error}")
        searches += 1
        after_purge += seen_purge
    _finish(writer)

    assert rounds.value >= 2
    assert after_purge >= 5, "the searcher did not search after a purge"
    assert failures == [], f"{len(failures)} of {searches} searches failed, e.g. {failures[:3]}"
    newest = f"test-face-{10_000 + 20 * (rounds.value - 1):06d}"  # the last round's first face
    found = searcher.search(
        unit_vectors(20, 32, seed=10_000 + 20 * (rounds.value - 1))[:1], model_version=MODEL_VERSION, k=1
    )[0]
    assert [match.face_id for match in found] == [newest]


def test_a_face_table_reader_reads_on_while_another_process_vacuums_with_retention_0(tmp_path):
    location = IndexLocation(output_uri=str(tmp_path / "out"))
    table = FaceTable.open(location)
    for number in range(3):
        write_landing(location, [Image(f"img-{number}.jpg", at=later(number))])
        table.ingest()
    reader = FaceTable.open(location)  # opened before every vacuum below
    before = reader.read(columns=["face_id"]).num_rows

    purged, rounds = SPAWN.Event(), SPAWN.Value("i", 0)
    writer = SPAWN.Process(
        target=race_workers.ingest_compact_purge, args=(location.output_uri, RACE_SECONDS, purged, rounds)
    )
    writer.start()
    failures: list[str] = []
    reads = 0
    while writer.is_alive():
        try:
            rows = reader.read(columns=["face_id", "image_key"])
            if rows.num_rows < before:
                failures.append(f"{rows.num_rows} rows")
        except Exception as error:
            failures.append(f"{type(error).__name__}: {error}")
        reads += 1
    _finish(writer)

    assert rounds.value >= 2
    assert failures == [], f"{len(failures)} of {reads} reads failed, e.g. {failures[:3]}"
    assert reader.read(columns=["face_id"]).num_rows == before + 2 * rounds.value  # 2 faces per image


def test_two_processes_deleting_from_the_same_files_both_land_after_retries(tmp_path):
    location = IndexLocation(output_uri=str(tmp_path / "out"))
    table = FaceTable.open(location)
    keys = [f"img-{number:02d}.jpg" for number in range(24)]
    write_landing(location, [Image(key) for key in keys])  # one file: every delete rewrites it
    table.ingest()

    go, results = SPAWN.Event(), SPAWN.Queue()
    workers = [
        SPAWN.Process(target=race_workers.delete_images, args=(location.output_uri, part, go, results))
        for part in (keys[0:20:2], keys[1:20:2])
    ]
    for worker in workers:
        worker.start()
    time.sleep(2.0)  # both have imported delta-rs and opened the table
    go.set()
    reports = [results.get(timeout=90) for _ in workers]
    for worker in workers:
        _finish(worker)

    assert [report["deleted"] for report in reports] == [20, 20]  # 10 images of 2 faces each
    assert sum(report["retries"].get("commit conflict", 0) for report in reports) >= 1
    left = table.read(columns=["image_key"]).column("image_key").to_pylist()
    assert sorted(set(left)) == keys[20:]
    assert len(left) == 8


def _cdc_of(table_uri: str, version: int) -> list[str]:
    log = Path(table_uri) / "_delta_log" / f"{version:020d}.json"
    actions = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [action["cdc"]["path"] for action in actions if "cdc" in action]


def test_the_change_data_cleanup_keeps_the_newest_commits_files_and_in_flight_ones(tmp_path, monkeypatch):
    location = IndexLocation(output_uri=str(tmp_path / "out"))
    table = FaceTable.open(location)
    write_landing(location, [Image(f"img-{number}.jpg") for number in range(4)])
    table.ingest()
    table.delete("image_key = 'img-0.jpg'")
    old = _cdc_of(location.table_uri, table.version())
    assert old, "a delete writes change data"
    root = Path(location.table_uri)
    assert table.vacuum() == []  # a week of retention keeps every change data file
    assert all((root / path).exists() for path in old)

    in_flight = root / "_change_data" / "cdc-00000-in-flight.c000.zstd.parquet"
    in_flight.write_bytes((root / old[0]).read_bytes())  # written by a writer that has not committed
    concurrent: list[int] = []
    original = FaceTable._remove_change_data

    def commit_meanwhile(self, cutoff):  # another writer commits between the vacuum and the cleanup
        other = FaceTable.open(location)
        assert other.delete("image_key = 'img-1.jpg'") == 2
        concurrent.append(other.version())
        return original(self, cutoff)

    monkeypatch.setattr(FaceTable, "_remove_change_data", commit_meanwhile)
    started = time.time()
    report = table.purge_history()

    assert not any((root / path).exists() for path in old), "a purged commit's change data goes"
    newest = _cdc_of(location.table_uri, concurrent[0])
    assert newest
    assert all((root / path).exists() for path in newest)
    assert in_flight.exists()
    assert report.change_data_kept == len(newest) + 1
    assert datetime.fromisoformat(report.purged_at).timestamp() >= started
    assert report.retention_hours == 0
    changes = pa.table(table.delta.load_cdf(starting_version=concurrent[0], ending_version=concurrent[0]))
    assert set(changes.column("image_key").to_pylist()) == {"img-1.jpg"}
