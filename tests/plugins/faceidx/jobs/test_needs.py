"""Where a step runs and what its job asks for, from its measured needs (pure)."""

from __future__ import annotations

import pytest

from faceidx.jobs.needs import (
    AIRFLOW_REFUSE_MIB,
    JOB_MAX_MEMORY_MIB,
    JOB_MIN_MEMORY_MIB,
    MODELS,
    PlacementError,
    Size,
    model_key,
    place,
)

QUEUE = "face-recognition-maintenance-queue"


def test_a_heavy_step_goes_to_batch_whatever_its_size():
    placement = place("vacuum", "vacuum", Size(10, "tiny"), compute="auto", job_queue=QUEUE)
    assert placement.on_batch
    assert placement.job_queue == QUEUE
    assert placement.memory_mib == JOB_MIN_MEMORY_MIB


def test_a_small_light_step_stays_and_a_large_one_leaves():
    small = place("ingest", "ingest", Size(1_000, "x"), compute="auto", job_queue=QUEUE)
    large = place("ingest", "ingest", Size(2_000_000, "x"), compute="auto", job_queue=QUEUE)
    assert not small.on_batch
    assert large.on_batch
    # the job asks for the estimate with headroom, in whole GiB
    assert large.memory_mib >= large.estimate_mib * 1.25
    assert large.memory_mib % 1024 == 0


def test_a_full_recluster_is_heavy_and_sized_by_its_own_model():
    assert model_key("identities", {"params": {"full_recluster": True}}) == "identities_full"
    assert model_key("identities", {"params": {"carry_from": "old"}}) == "identities_full"
    assert model_key("identities", {"params": {}}) == "identities"
    full = place("identities", "identities_full", Size(10, "x"), compute="auto", job_queue=QUEUE)
    assert full.on_batch
    assert full.estimate_mib == MODELS["identities_full"].memory_mib(10)


def test_without_a_queue_a_step_stays_until_it_is_too_big_for_an_airflow_worker():
    assert not place("sync_vectors", "sync_vectors", Size(1_000, "x"), compute="auto", job_queue="").on_batch
    faces = int((AIRFLOW_REFUSE_MIB + 10) * 1024 / MODELS["sync_vectors"].kib_per_face)
    with pytest.raises(PlacementError, match="face_infra_bootstrap"):
        place("sync_vectors", "sync_vectors", Size(faces, "x"), compute="auto", job_queue="")
    # compute=airflow runs it there anyway (the estimate is still logged)
    forced = place("sync_vectors", "sync_vectors", Size(faces, "x"), compute="airflow", job_queue="")
    assert not forced.on_batch


def test_compute_batch_needs_a_queue_and_a_job_that_fits():
    with pytest.raises(PlacementError, match="faceidx_maintenance_job_queue"):
        place("vacuum", "vacuum", Size(1, "x"), compute="batch", job_queue="")
    faces = int(JOB_MAX_MEMORY_MIB * 1024 / MODELS["sync_vectors"].kib_per_face)
    with pytest.raises(PlacementError, match="Nothing was submitted"):
        place("sync_vectors", "sync_vectors", Size(faces, "x"), compute="batch", job_queue=QUEUE)
    with pytest.raises(PlacementError, match="compute must be one of"):
        place("vacuum", "vacuum", Size(1, "x"), compute="gpu", job_queue=QUEUE)


def test_an_ingest_is_sized_by_its_largest_round_not_the_whole_backlog(tmp_path):
    from faceidx.jobs.needs import measure
    from faceidx.store.location import IndexLocation
    from tests.plugins.faceidx.store.table_builders import Image, write_landing

    location = IndexLocation(output_uri=str(tmp_path / "out"))
    write_landing(location, [Image(f"big-{i}.jpg", faces=4, dim=512) for i in range(40)])
    for name in ("a", "b"):
        write_landing(location, [Image(f"{name}.jpg", dim=512)])
    one_round = measure("ingest", location, {"max_files": 1})
    everything = measure("ingest", location, {"max_files": 500})
    # the 160 faces of the largest file, from its size alone (a small file costs more bytes per row)
    assert 160 <= one_round.faces <= 2 * 160
    assert everything.faces > one_round.faces
    assert "largest round of 1" in one_round.basis
