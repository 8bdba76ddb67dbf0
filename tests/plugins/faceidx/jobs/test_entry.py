"""``python -m faceidx.jobs STEP``: the outcome it leaves, its refusals and its exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from faceidx.jobs import entry
from faceidx.jobs.entry import EXIT_FAILED, EXIT_TOO_LITTLE_MEMORY, container_memory_mib, run_step
from faceidx.store.location import IndexLocation
from faceidx.store.table import FaceTable
from tests.plugins.faceidx.store.table_builders import Image, write_landing


def _location(tmp_path: Path) -> IndexLocation:
    return IndexLocation(output_uri=str(tmp_path / "out"), vectors_uri=str(tmp_path / "vectors"))


def test_the_job_runs_its_step_and_leaves_its_outcome(tmp_path):
    location = _location(tmp_path)
    write_landing(location, [Image("a.jpg"), Image("b.jpg")])
    result = subprocess.run(
        [sys.executable, "-m", "faceidx.jobs", "ingest", "--output-uri", location.output_uri],
        capture_output=True,
        check=False,
        text=True,
        env={"AWS_BATCH_JOB_ID": "job-1", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    outcome = json.loads(Path(location.job_result_uri("job-1")).read_text())
    assert outcome["status"] == "succeeded"
    assert outcome["summary"]["files_ingested"] == 1
    assert outcome["peak_rss_mib"] > 0
    assert FaceTable.open(location).read(columns=["face_id"]).num_rows == 4
    assert "faceidx job: ingest succeeded" in result.stdout


def test_too_little_memory_is_refused_before_anything_changes(tmp_path, monkeypatch):
    location = _location(tmp_path)
    write_landing(location, [Image("a.jpg")])
    monkeypatch.setattr(entry, "container_memory_mib", lambda: 1024)
    code = run_step("ingest", location, {"expected_mib": 4096}, "job-2")
    assert code == EXIT_TOO_LITTLE_MEMORY
    outcome = json.loads(Path(location.job_result_uri("job-2")).read_text())
    assert outcome["status"] == "refused"
    assert "4,096 MiB" in outcome["error"]
    assert "1,024 MiB" in outcome["error"]
    assert FaceTable.open_if_exists(location) is None  # nothing ingested


def test_a_failing_step_exits_1_with_its_error_in_the_outcome(tmp_path):
    location = _location(tmp_path)
    code = run_step("compact", location, {"days": ["2026-11-20"], "target_file_mb": "not a number"}, "job-3")
    assert code == EXIT_FAILED
    outcome = json.loads(Path(location.job_result_uri("job-3")).read_text())
    assert outcome["status"] == "failed"
    assert "ValueError" in outcome["error"]


def test_bad_arguments_exit_2():
    result = subprocess.run(
        [sys.executable, "-m", "faceidx.jobs", "reticulate"],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


@pytest.mark.parametrize(("raw", "expected"), [("max", None), ("4294967296", 4096), ("garbage", None)])
def test_the_container_limit_is_read_from_the_cgroup(tmp_path, raw, expected):
    limit = tmp_path / "memory.max"
    limit.write_text(raw + "\n")
    assert container_memory_mib((str(limit),)) == expected
    assert container_memory_mib((str(tmp_path / "absent"),)) is None
