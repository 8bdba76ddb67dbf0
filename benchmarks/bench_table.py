"""Delta Lake vs Iceberg for the face table, side by side on the same synthetic landing batches.

    .venv/bin/python benchmarks/bench_table.py            # 200 batches of ~50 faces, 128-d (make bench-table)
    .venv/bin/python benchmarks/bench_table.py --batches 20

Each batch is one worker flush: 25 images of 2 faces, 10 % of them re-deliveries of the previous
batch's images (duplicates the ingest must drop). Measured, for each format:

* ingest with dedup: Delta through ``FaceTable.ingest`` (landing file -> validation -> one MERGE
  commit per batch); Iceberg (pyiceberg, SQL catalog on sqlite) through ``Table.upsert`` on face_id
  without updating matches (insert the new faces only), one commit per batch;
* delete one image, then purge old versions (Delta ``vacuum`` retention 0; Iceberg
  ``expire_snapshots``) and count the deleted image's rows still readable from the files on disk;
* compaction of the small files, when the library has an API for it;
* a DuckDB query over the current snapshot's data files (top-10 by ``array_cosine_similarity``);
* files and bytes on disk.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from faceidx.store.landing import _conform  # noqa: E402
from faceidx.store.location import IndexLocation  # noqa: E402
from faceidx.store.schema import table_schema  # noqa: E402
from faceidx.store.table import FaceTable  # noqa: E402
from tests.plugins.faceidx.store.table_builders import Image, landing_table, write_landing  # noqa: E402

DIM = 128
IMAGES_PER_BATCH = 25
FACES = 2
T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


def batches(count: int) -> list[list[Image]]:
    """``count`` batches; 10 % of each batch's images re-deliver images of the previous batch."""
    result: list[list[Image]] = []
    for number in range(count):
        at = T0 + timedelta(minutes=number)
        fresh = [
            Image(f"b{number:04d}/img{i:02d}.jpg", faces=FACES, at=at, dim=DIM, job=f"job:{number}")
            for i in range(IMAGES_PER_BATCH - (IMAGES_PER_BATCH // 10 if number else 0))
        ]
        again = []
        if number:
            again = [
                Image(image.key, faces=FACES, at=at, dim=DIM, job=f"job:{number}")
                for image in result[-1][: IMAGES_PER_BATCH // 10]
            ]
        result.append(fresh + again)
    return result


def disk(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def rows_on_disk(root: Path, key: str) -> int:
    """Rows of ``key`` readable from any data file under ``root`` (whatever the table's metadata says)."""
    files = [str(p) for p in root.rglob("*.parquet") if "metadata" not in p.parts]
    if not files:
        return 0
    return int(
        duckdb.sql(
            "SELECT count(*) FROM read_parquet($files, union_by_name = true) WHERE image_key = $key",
            params={"files": files, "key": key},
        ).fetchall()[0][0]
    )


QUERY = (
    "SELECT face_id, array_cosine_similarity(embedding::FLOAT[{dim}], $probe::FLOAT[{dim}]) AS s "
    "FROM read_parquet($files) WHERE embedding IS NOT NULL ORDER BY s DESC LIMIT 10"
)


def query_seconds(files: list[str], probe: list[float], repeats: int = 5) -> tuple[float, int]:
    best, rows = float("inf"), 0
    for _ in range(repeats):
        started = time.perf_counter()
        found = duckdb.sql(QUERY.format(dim=DIM), params={"files": files, "probe": probe}).fetchall()
        best, rows = min(best, time.perf_counter() - started), len(found)
    return best, rows


# -- Delta -----------------------------------------------------------------------------------------
def run_delta(root: Path, data: list[list[Image]], victim: str, probe: list[float]) -> dict[str, Any]:
    location = IndexLocation(output_uri=str(root))
    table = FaceTable.open(location)
    started = time.perf_counter()
    dropped = 0
    for batch in data:
        write_landing(location, batch)
        dropped += table.ingest().duplicates_dropped
    result: dict[str, Any] = {"ingest_s": time.perf_counter() - started, "duplicates_dropped": dropped}
    result["rows"] = table.read(columns=["face_id"]).num_rows
    result["files_before_compaction"] = len(table.file_uris())
    started = time.perf_counter()
    table.compact()
    result["compact_s"] = time.perf_counter() - started
    result["compaction"] = (
        f"optimize.compact: {result['files_before_compaction']} -> {len(table.file_uris())} files"
    )
    table.vacuum(retention_hours=0)
    result["query_s"], _ = query_seconds(table.file_uris(), probe)
    table_dir = Path(location.table_uri)
    result["victim_rows_on_disk_before"] = rows_on_disk(table_dir, victim)
    started = time.perf_counter()
    table.delete(f"image_key = '{victim}'")
    result["victim_rows_after_delete"] = rows_on_disk(table_dir, victim)
    table.purge_history()
    result["delete_purge_s"] = time.perf_counter() - started
    result["victim_rows_after_purge"] = rows_on_disk(table_dir, victim)
    result["files_on_disk"], result["bytes_on_disk"] = disk(table_dir)
    return result


# -- Iceberg ---------------------------------------------------------------------------------------
def run_iceberg(root: Path, data: list[list[Image]], victim: str, probe: list[float]) -> dict[str, Any]:
    from pyiceberg.catalog.sql import SqlCatalog

    warehouse = root / "warehouse"
    warehouse.mkdir(parents=True)
    catalog = SqlCatalog("bench", uri=f"sqlite:///{root}/catalog.db", warehouse=f"file://{warehouse}")
    catalog.create_namespace("faceidx")
    schema = pa.schema([item.with_nullable(True) for item in table_schema()])
    table = catalog.create_table("faceidx.faces", schema=schema)
    with table.update_spec() as spec:
        spec.add_identity("model_version")
        spec.add_identity("indexed_date")
    started = time.perf_counter()
    dropped = 0
    for batch in data:
        rows = _conform(landing_table(batch)).cast(schema)
        answer = table.upsert(rows, join_cols=["face_id"], when_matched_update_all=False)
        dropped += rows.num_rows - answer.rows_inserted
    result: dict[str, Any] = {"ingest_s": time.perf_counter() - started, "duplicates_dropped": dropped}
    result["rows"] = table.scan(selected_fields=("face_id",)).to_arrow().num_rows
    files = [
        str(path).removeprefix("file://") for path in table.inspect.files().column("file_path").to_pylist()
    ]
    result["files_before_compaction"] = len(files)
    has_compaction = any(hasattr(target, "rewrite_data_files") for target in (table, table.maintenance))
    result["compact_s"] = None
    result["compaction"] = (
        "API exists" if has_compaction else "no API in pyiceberg (Spark/Trino rewrite_data_files)"
    )
    result["query_s"], _ = query_seconds(files, probe)
    result["victim_rows_on_disk_before"] = rows_on_disk(warehouse, victim)
    started = time.perf_counter()
    table.delete(delete_filter=f"image_key == '{victim}'")
    result["victim_rows_after_delete"] = rows_on_disk(warehouse, victim)
    table = catalog.load_table("faceidx.faces")
    current = table.current_snapshot()
    assert current is not None
    table.maintenance.expire_snapshots().older_than(datetime.now(UTC) + timedelta(seconds=1)).commit()
    result["delete_purge_s"] = time.perf_counter() - started
    result["snapshots_left"] = len(catalog.load_table("faceidx.faces").snapshots())
    result["victim_rows_after_purge"] = rows_on_disk(warehouse, victim)
    result["files_on_disk"], result["bytes_on_disk"] = disk(warehouse)
    return result


LINES = [
    ("faces in the table", "rows"),
    ("duplicates dropped", "duplicates_dropped"),
    ("ingest with dedup, s", "ingest_s"),
    ("data files before compaction", "files_before_compaction"),
    ("compaction", "compaction"),
    ("compaction, s", "compact_s"),
    ("DuckDB top-10 over the snapshot, s (best of 5)", "query_s"),
    ("deleted image: rows in files on disk before", "victim_rows_on_disk_before"),
    ("... after delete", "victim_rows_after_delete"),
    ("... after purging old versions", "victim_rows_after_purge"),
    ("delete + purge, s", "delete_purge_s"),
    ("files on disk (data + metadata)", "files_on_disk"),
    ("bytes on disk", "bytes_on_disk"),
]


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "-" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--json", type=Path, default=REPO / "bench-output" / "bench_table.json")
    args = parser.parse_args(argv)
    data = batches(args.batches)
    victim = data[0][1].key
    probe = [1.0 / DIM**0.5] * DIM
    root = Path(tempfile.mkdtemp(prefix="bench_table_"))
    try:
        results = {
            "delta": run_delta(root / "delta", data, victim, probe),
            "iceberg": run_iceberg(root / "iceberg", data, victim, probe),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    faces = sum(len(batch) * FACES for batch in data)
    print(f"{args.batches} landing batches, {faces} face rows ({DIM}-d), about 10 % re-delivered")
    width = max(len(label) for label, _ in LINES)
    print(f"{'':{width}}  {'Delta Lake (deltalake)':>26}  {'Iceberg (pyiceberg)':>26}")
    for label, name in LINES:
        delta, iceberg = cell(results["delta"].get(name)), cell(results["iceberg"].get(name))
        print(f"{label:{width}}  {delta:>26}  {iceberg:>26}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"batches": args.batches, "faces": faces, **results}, indent=2, default=str)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
