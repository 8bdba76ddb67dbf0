"""An erasure killed at every step, then run again: it finishes from its intent record.

``faceidx forget`` runs as a real process and is SIGKILLed (``FACEIDX_FAULT_KILL_AT``) right after each
step: the intent record, the table delete, the vectors, the crops, the persons tables, the history
purge, the verification, the receipt. Then the same command runs again (or the next ``face_table``
ingest does). Each time: one receipt, verified; no row, vector, face_persons row, person centroid or
crop of the image left; no open intent; the other images untouched. A re-delivered landing file of the
erased image does not bring it back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from faceidx.erasure.forget import STEPS, ForgetTarget, forget
from faceidx.store.intents import ErasureIntents
from faceidx.store.location import IndexLocation
from faceidx.store.persons import FACE_PERSONS_SCHEMA, PeopleStore
from faceidx.store.table import FaceTable
from faceidx.store.vectors import VectorIndex
from faceidx_worker.rows import face_id
from tests.plugins.faceidx.erasure.test_forget import (
    BUCKET,
    V1,
    V2,
    found_ids,
    image_rows,
    receipts,
    write_landing,
)

REPO = Path(__file__).resolve().parents[4]
TARGET = f"s3://{BUCKET}/a.jpg"


def _a_faces() -> list[str]:
    return [
        face_id(BUCKET, "a.jpg", "e1", V1, 0),
        face_id(BUCKET, "a.jpg", "e1", V1, 1),
        face_id(BUCKET, "a.jpg", "e0", V1, 0),
        face_id(BUCKET, "a.jpg", "e1", V2, 0),
        face_id(BUCKET, "a.jpg", "e1", V2, 1),
    ]


@pytest.fixture
def with_people(location: IndexLocation, indexed):
    """Person p-ab holds a.jpg's two V1 faces and one of b.jpg's; p-b the other two of b.jpg."""
    from faceidx.people.identities import refresh_persons

    mapping = {
        face_id(BUCKET, "a.jpg", "e1", V1, 0): "p-ab",
        face_id(BUCKET, "a.jpg", "e1", V1, 1): "p-ab",
        face_id(BUCKET, "b.jpg", "e1", V1, 0): "p-ab",
        face_id(BUCKET, "b.jpg", "e1", V1, 1): "p-b",
        face_id(BUCKET, "b.jpg", "e1", V1, 2): "p-b",
    }
    rows = [{"face_id": f, "person_id": p, "model_version": V1, "method": "test"} for f, p in mapping.items()]
    PeopleStore(location).upsert("face_persons", pa.Table.from_pylist(rows, schema=FACE_PERSONS_SCHEMA))
    refresh_persons(location, V1, ["p-ab", "p-b"])
    return indexed


def _forget(
    location: IndexLocation, tmp_path: Path, kill_at: str | None = None
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "FACEIDX_OUTPUT_URI": location.output_uri,
        "FACEIDX_VECTORS_URI": location.vectors_uri,
        "FACEIDX_ACTOR": "erin",
        "FACEIDX_LEASE_TTL_SECONDS": "2",  # the killed holder's lease expires quickly
        "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("plugins", "worker")),
    }
    env.pop("FACEIDX_FAULT_KILL_AT", None)
    if kill_at:
        env["FACEIDX_FAULT_KILL_AT"] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "faceidx.cli", "forget", "--image", TARGET, "--reason", "request 7", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _nothing_of_a_left(location: IndexLocation, vectors: dict[str, np.ndarray], crops: list[str]) -> None:
    table = FaceTable.open(location)
    assert table.read(columns=["face_id"], filter="image_key = 'a.jpg'").num_rows == 0
    index = VectorIndex(location)
    forgotten = set(_a_faces())
    for name, version in (("a1", V1), ("a_old", V1), ("a2", V2)):
        assert not found_ids(index, vectors[name], version) & forgotten
    people = PeopleStore(location)
    assert not set(people.read("face_persons")["face_id"].to_pylist()) & forgotten
    persons = {r["person_id"]: r for r in people.read("persons", V1).to_pylist()}
    assert persons["p-ab"]["face_count"] == 1, "p-ab keeps b.jpg's face only"
    centroid = np.asarray(persons["p-ab"]["centroids"][0], np.float32)
    for vector in vectors["a1"]:
        assert float(centroid @ (vector / np.linalg.norm(vector))) < 0.9999, "no erased face in a centroid"
    assert not any(Path(c).exists() for c in crops)
    assert not ErasureIntents(location).open()
    # the other images stay
    assert {r for r in table.read(columns=["image_key"])["image_key"].to_pylist()} == {"b.jpg", "c.jpg"}


@pytest.mark.parametrize("step", STEPS)
def test_an_erasure_killed_after_each_step_is_finished_by_a_rerun(location, with_people, tmp_path, step):
    killed = _forget(location, tmp_path, kill_at=step)
    assert killed.returncode == -9, killed.stderr[-2000:]
    intents = ErasureIntents(location).all()
    assert len(intents) == 1, "the intent was written before anything was deleted"
    if step != "receipt":
        assert intents[0].state == "open"

    rerun = _forget(location, tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    receipt = json.loads(rerun.stdout)
    assert receipt["target"] == {"type": "image", "value": TARGET}
    assert receipt["verification"]["passed"] is True
    assert receipt["id"] == intents[0].id, "the receipt is named after the intent"
    saved = [r for r in receipts(location) if r["target"]["value"] == TARGET]
    assert len(saved) == 1, "one receipt per erasure"
    assert sorted(saved[0]["removed"]["face_ids"]) == sorted(_a_faces())
    _nothing_of_a_left(location, with_people["vectors"], with_people["crops"])


def test_the_next_ingest_finishes_an_interrupted_erasure(location, with_people, tmp_path):
    from faceidx.maintenance.tasks import ingest_task

    assert _forget(location, tmp_path, kill_at="table").returncode == -9
    summary = ingest_task(location, max_files=100)
    assert summary["erasures_finished"] == 1
    (saved,) = receipts(location)
    assert saved["removed"]["resumed"] is True
    assert saved["verification"]["passed"] is True
    _nothing_of_a_left(location, with_people["vectors"], with_people["crops"])


def test_a_redelivered_landing_file_does_not_bring_an_erased_image_back(location, with_people, tmp_path):
    from faceidx.maintenance.tasks import ingest_task

    assert _forget(location, tmp_path).returncode == 0
    # the same S3 event delivered again: the worker writes the same rows (same ETag, same face ids)
    write_landing(location, image_rows("a.jpg", with_people["vectors"]["a1"]))
    summary = ingest_task(location, max_files=100)
    assert summary["erased_dropped"] == 2
    assert FaceTable.open(location).read(columns=["face_id"], filter="image_key = 'a.jpg'").num_rows == 0


def test_a_late_delivery_of_an_erased_image_does_not_come_back_through_the_next_erasure(
    location, with_people, tmp_path
):
    """Found by ``make bench-races``: the landing files the next erasure ingests first (its step 1) are
    filtered like ``face_table``'s ingest, so a late delivery of an erased image stays erased."""
    assert _forget(location, tmp_path).returncode == 0
    write_landing(location, image_rows("a.jpg", with_people["vectors"]["a1"]))  # delivered again
    receipt = forget(location, ForgetTarget("image", f"s3://{BUCKET}/c.jpg"), reason="r", actor="erin")
    assert receipt.removed["landing"]["files_ingested"] == 1
    assert FaceTable.open(location).read(columns=["face_id"], filter="image_key = 'a.jpg'").num_rows == 0
    assert not found_ids(VectorIndex(location), with_people["vectors"]["a1"], V1) & set(_a_faces())
