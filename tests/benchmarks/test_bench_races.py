"""The short version of ``make bench-races``: real processes racing on a local index, every invariant
checked; and the checker itself, shown to count what it is there to catch."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SHORT_RACE_S = 25.0


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_races", REPO / "benchmarks" / "bench_races.py")
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_races"] = bench  # its dataclasses look their module up there
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.slow
def test_a_short_race_breaks_no_invariant(tmp_path, capsys):
    bench = _bench()
    report = bench.run_race(str(tmp_path / "index"), tmp_path / "run", SHORT_RACE_S, seed=11)
    bench.print_report(report, "local folder")
    printed = capsys.readouterr().out
    assert report.violations == {}, printed
    assert "invariants: all hold" in printed
    counts = report.checked.counts
    for name in bench.MUST_BE_ZERO:
        assert counts[name] == 0, (name, printed)
    assert counts["receipts"] == counts["erasures"] == counts["intents"] >= 2, printed
    operations = {role: result["operations"] for role, result in report.roles.items()}
    assert operations["workers"]["landing files"] >= 5, printed
    assert operations["maintenance"]["ingest"] >= 1, printed
    assert operations["maintenance"]["sync vectors"] >= 1, printed
    assert operations["identities"]["incremental runs"] >= 1, printed
    assert operations["search"]["searches"] >= 20, printed
    assert operations["erasures"]["erasures killed"] >= 1, printed
    assert counts["images erased"] == counts["erasures"], printed


@pytest.fixture
def seeded(tmp_path):
    """A seeded index (no race): ten images, their vectors and persons."""
    bench = _bench()
    config = bench.RaceConfig(
        output_uri=str(tmp_path / "index"),
        workdir=str(tmp_path),
        seconds=0,
        crops_uri=str(tmp_path / "index" / "crops"),
    )
    bench.seed_index(config)
    return bench, config


def _manifest(bench: ModuleType, config) -> object:
    return bench.Manifest.read(Path(config.workdir) / bench.MANIFEST)


def test_the_checker_passes_an_intact_index(seeded):
    bench, config = seeded
    checked = bench.check_index(config.location(), _manifest(bench, config), [])
    assert checked.violations() == {}
    assert checked.counts["rows lost"] == 0
    assert checked.counts["table rows"] == checked.counts["rows expected"] > 0


def test_the_checker_counts_a_missing_file_and_lost_rows(seeded):
    bench, config = seeded
    from deltalake import DeltaTable

    location = config.location()
    data_file = Path(DeltaTable(location.table_uri).file_uris()[0])
    data_file.unlink()
    checked = bench.check_index(location, _manifest(bench, config), [])
    assert checked.counts["table files missing"] == 1
    assert "table files missing" in checked.violations() or "table corrupt" in checked.violations()


def test_the_checker_counts_an_erasure_that_left_everything_behind(seeded):
    """An erasure the race claims finished, but nothing was deleted and no receipt written: every place
    the image's faces are still found is counted as resurrected."""
    bench, config = seeded
    manifest = _manifest(bench, config)
    key = next(k for k, faces in manifest.faces.items() if any(faces.values()))
    claimed = [{"key": key, "mode": "cli", "finished": True, "attempts": 1, "killed": None}]
    broken = bench.check_index(config.location(), manifest, claimed).violations()
    assert broken["resurrected: table"] >= 1
    assert broken["resurrected: vectors"] >= 1
    assert broken["resurrected: crops"] >= 1
    assert broken["erasures without one receipt"] == 1
    assert broken["receipts != erasures"] == -1
    assert json.dumps(broken)
