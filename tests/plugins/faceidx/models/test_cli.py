"""``faceidx models`` as a user runs it."""

from __future__ import annotations

import json

import pytest

from faceidx.cli import main
from faceidx.store.location import IndexLocation
from faceidx.store.registry import ModelRegistry
from tests.plugins.faceidx.erasure.test_forget import V1, V2, image_rows, unit, write_landing


@pytest.fixture
def location(tmp_path):
    index = IndexLocation(output_uri=str(tmp_path / "out"))
    write_landing(index, image_rows("a.jpg", unit(1, 2), version=V1))
    write_landing(index, image_rows("a.jpg", unit(2, 1), version=V2))
    from faceidx.store.table import FaceTable

    FaceTable.open(index).ingest()
    return index


def _run(location, *args):
    return main(["--output-uri", location.output_uri, "models", *args])


def test_list_use_drop(location, capsys, monkeypatch):
    monkeypatch.setenv("FACEIDX_ACTOR", "ops")
    assert _run(location, "list") == 0
    out = capsys.readouterr().out
    assert V1 in out
    assert V2 in out
    assert "current: none" in out

    assert _run(location, "use", V2) == 0
    assert f"-> {V2} (by ops)" in capsys.readouterr().out
    assert _run(location, "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert {v["version"]: v["current"] for v in listed["versions"]} == {V1: False, V2: True}

    assert _run(location, "drop", V2) == 2
    assert "cannot be dropped" in capsys.readouterr().err
    assert _run(location, "drop", V1) == 0
    assert "2 row(s) deleted" in capsys.readouterr().out
    assert ModelRegistry(location).versions() == [V2]


def test_an_unknown_version_exits_non_zero(location, capsys):
    assert _run(location, "use", "nope") == 2
    assert "not in the index" in capsys.readouterr().err
