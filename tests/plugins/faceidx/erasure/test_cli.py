"""``faceidx forget`` as a user runs it: exit status, output, and what the index holds afterwards."""

from __future__ import annotations

import json

import pytest

from faceidx.cli import main
from faceidx.store.location import IndexLocation
from faceidx.store.table import FaceTable
from faceidx_worker.rows import face_id
from tests.plugins.faceidx.erasure.test_forget import (
    BUCKET,
    V1,
    image_rows,
    receipts,
    unit,
    write_landing,
)


@pytest.fixture
def seeded(tmp_path):
    location = IndexLocation(output_uri=str(tmp_path / "out"))
    write_landing(location, image_rows("a.jpg", unit(1, 2)) + image_rows("b.jpg", unit(2, 1)))
    return location


def _run(index, *args):
    return main(["--output-uri", index.output_uri, "forget", *args])


def test_forget_an_image_prints_the_receipt_as_json(seeded, capsys, monkeypatch):
    monkeypatch.setenv("FACEIDX_ACTOR", "privacy-desk")
    assert _run(seeded, "--image", f"s3://{BUCKET}/a.jpg", "--reason", "ticket 7", "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["target"] == {"type": "image", "value": f"s3://{BUCKET}/a.jpg"}
    assert (printed["reason"], printed["actor"]) == ("ticket 7", "privacy-desk")
    assert printed["verification"]["passed"] is True
    assert receipts(seeded) == [printed]
    keys = FaceTable.open(seeded).read(columns=["image_key"])["image_key"].to_pylist()
    assert keys == ["b.jpg"]


def test_forget_a_face_prints_a_table(seeded, capsys):
    gone = face_id(BUCKET, "a.jpg", "e1", V1, 1)
    assert _run(seeded, "--face", gone) == 0
    out = capsys.readouterr().out
    assert f"forgot face {gone}" in out
    assert f"table rows ({V1})" in out
    assert "verified" in out


def test_an_unknown_target_exits_non_zero_and_changes_nothing(seeded, capsys):
    assert _run(seeded, "--image", f"s3://{BUCKET}/never.jpg") == 2
    assert "not in the index: nothing was forgotten" in capsys.readouterr().err
    assert receipts(seeded) == []
    assert FaceTable.open(seeded).read(columns=["face_id"]).num_rows == 3


def test_an_unknown_person_exits_non_zero(seeded, capsys):
    assert _run(seeded, "--person", "p-1") == 2
    assert "person p-1 is not known" in capsys.readouterr().err


def test_exactly_one_target_is_required(seeded):
    with pytest.raises(SystemExit):
        _run(seeded, "--image", f"s3://{BUCKET}/a.jpg", "--face", "x")
    with pytest.raises(SystemExit):
        _run(seeded)
