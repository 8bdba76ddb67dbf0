"""Person assignment takes its threshold from the version's calibration, else ClusterPolicy's
constant, and the run's table says which."""

from __future__ import annotations

import numpy as np

from faceidx.people.clustering import ClusterPolicy
from faceidx.people.tasks import ASSIGNMENT_FAR, assignment_threshold, identities_task
from faceidx.store.calibration import calibration_from_similarities
from faceidx.store.location import IndexLocation
from faceidx.store.registry import ModelRegistry
from tests.plugins.faceidx.people.face_tables import Photo, add_photos, face_of
from tests.plugins.faceidx.store.table_builders import VERSION


def test_the_threshold_comes_from_the_param_the_calibration_or_the_constant():
    sims = np.random.default_rng(0).normal(0.0, 0.1, 20_000)
    calibration = calibration_from_similarities(
        VERSION, sims, np.zeros(0), images=1, images_with_several_faces=1
    )
    row = calibration.row(ASSIGNMENT_FAR)
    assert row is not None
    assert row.enough
    calibrated = assignment_threshold(calibration, VERSION, None)
    assert (calibrated.threshold, calibrated.calibrated) == (row.threshold, True)
    assert calibrated.source.startswith(f"calibration of {VERSION}")

    none = assignment_threshold(None, VERSION, None)
    assert (none.threshold, none.calibrated) == (ClusterPolicy.threshold, False)
    assert none.source == "ClusterPolicy.threshold 0.30"
    assert "has no calibration yet" in (none.note or "")

    few = calibration_from_similarities(
        VERSION, sims[:100], np.zeros(0), images=1, images_with_several_faces=1
    )
    assert assignment_threshold(few, VERSION, None).threshold == ClusterPolicy.threshold
    assert "not enough pairs" in (assignment_threshold(few, VERSION, None).note or "")

    asked = assignment_threshold(calibration, VERSION, 0.5)
    assert (asked.threshold, asked.source) == (0.5, "the threshold Param")


def test_an_identities_run_refreshes_the_calibration_and_reports_its_threshold(tmp_path):
    location = IndexLocation(str(tmp_path))
    # 10 photos of one person each (two photos per person), plus 3 group photos of 3 strangers each
    photos = [Photo(f"solo{p}-{v}.jpg", [face_of(p, v)]) for p in range(5) for v in range(2)]
    photos += [Photo(f"group{g}.jpg", [face_of(10 + 3 * g + i, 0) for i in range(3)]) for g in range(3)]
    add_photos(location, photos)
    report = identities_task(location, {"model_version": VERSION, "full_recluster": True}, None)
    calibration = ModelRegistry(location).calibration(VERSION)
    assert calibration is not None
    assert calibration.same_image_pairs == 9  # 3 pairs in each group photo
    assert report["impostor pairs (calibration)"] == calibration.pairs
    assert report["threshold source"] == "ClusterPolicy.threshold 0.30"  # 9 pairs: too few for 1e-4
    assert report["threshold (cosine)"] == "0.3000"
    assert "not enough pairs for FAR 1e-04" in report["note"]
    assert report["persons now"] >= 5
