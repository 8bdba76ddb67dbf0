"""The rotation retry (``FACEIDX_ROTATION_RETRY``) on the asset photos: what it finds, what it costs.

``.venv/bin/python benchmarks/rotation_assets.py`` indexes every asset photo as the worker does
(``index_images`` over the adaptive decode, det_500m + MobileFaceNet, one ONNX Runtime thread) with
the retry off and on, at ``FACEIDX_DET_THRESH`` 0.5 (the default) and 0.7 (where SCRFD misses the
sideways ``rot_r90.jpg``). One line per photo: the true face count (``expected.json``), the faces found
without and with the retry, the rotation that found them and the best score. Then the cosine of
``rot_r90.jpg``'s face to the upright ``rot_r0.jpg``'s, and for each photo without a face the
detector calls and the median milliseconds of its indexing without and with the retry
(``--repeat`` runs each; the extra is the retry's cost per faceless image), and ``turn ms``: the
host work of the extra outside the detector calls (turning the decoded pixels three times and, for a
face-scale decode, shrinking each turn for the detector passes); on a GPU worker the three detector
calls themselves run on the device.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "worker"))
sys.path.insert(0, str(REPO / "dev"))

from faceidx_worker.events import ImageRef  # noqa: E402
from faceidx_worker.face_decode import decode_for_faces  # noqa: E402
from faceidx_worker.fetch import LoadedImage  # noqa: E402
from faceidx_worker.indexer import index_images  # noqa: E402
from faceidx_worker.model import InsightFaceModelPack  # noqa: E402
from faceidx_worker.rotation import RETRY_ROTATIONS, rotate_pixels  # noqa: E402
from faceidx_worker.rows import ImageOutcome  # noqa: E402

ASSETS = Path(os.environ.get("FACEIDX_ASSETS", REPO.parent / "shared" / "assets"))
PACK_FILES = ("det_500m.onnx", "mobilefacenet_128d_dynbatch.onnx")
THRESHOLDS = (0.5, 0.7)


class CountingModel(InsightFaceModelPack):
    """The model pack, counting its detector calls (one per image and rotation; each runs every pass)."""

    detector_calls = 0

    def detect(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.detector_calls += 1
        return super().detect(pixels)

    def detect_prescaled(self, inputs: Any) -> tuple[np.ndarray, np.ndarray]:
        self.detector_calls += 1
        return super().detect_prescaled(inputs)


def index_one(model: InsightFaceModelPack, name: str) -> ImageOutcome:
    """One asset photo decoded (adaptive, as the worker's default) and indexed."""
    data = (ASSETS / "images" / name).read_bytes()
    image = decode_for_faces(data, max_pixels=100_000_000, mode="adaptive", det_size=model.det_size)
    [outcome] = index_images(
        model, [LoadedImage(ref=ImageRef("assets", name), etag="e", image=image)]
    ).outcomes
    return outcome


def describe(outcome: ImageOutcome) -> str:
    if not outcome.faces:
        return "0"
    rotations = sorted({face.rotation for face in outcome.faces})
    best = max(face.det_score for face in outcome.faces)
    return f"{len(outcome.faces)} @{'/'.join(map(str, rotations))} {best:.2f}"


def cost(model: CountingModel, name: str, repeat: int) -> tuple[int, float]:
    """Detector calls of one indexing of ``name``, and its median milliseconds over ``repeat`` runs."""
    index_one(model, name)  # warm
    model.detector_calls = 0
    index_one(model, name)
    calls = model.detector_calls
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        index_one(model, name)
        times.append((time.perf_counter() - started) * 1000)
    return calls, statistics.median(times)


def turn_ms(model: InsightFaceModelPack, name: str, repeat: int) -> float:
    """Median milliseconds to turn ``name``'s decoded pixels three times and shrink them for each pass."""
    data = (ASSETS / "images" / name).read_bytes()
    image = decode_for_faces(data, max_pixels=100_000_000, mode="adaptive", det_size=model.det_size)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        for degrees in RETRY_ROTATIONS:
            if image.faces is None:  # a full decode (PNG, small JPEG): the detector letterboxes it itself
                rotate_pixels(image.pixels, degrees)
            else:
                image.faces.rotated(degrees).detection_inputs(model.detection_sizes)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per faceless photo and setting")
    args = parser.parse_args(argv)
    from faceidx_dev.local.demo_inputs import link_model_pack

    expected = json.loads((ASSETS / "expected.json").read_text())["images"]
    with tempfile.TemporaryDirectory(prefix="faceidx-rotation-") as folder:
        pack = link_model_pack(ASSETS / "models", Path(folder) / "small_pack", PACK_FILES)
        models = {
            (thresh, retry): CountingModel(pack, det_thresh=thresh, ort_threads=1, rotation_retry=retry)
            for thresh in THRESHOLDS
            for retry in (False, True)
        }
        for model in models.values():
            model.load()
        print(
            f"pack {' + '.join(PACK_FILES)}, adaptive decode, 1 ORT thread; found: faces @rotation best-score"
        )
        header = f"{'image':30} {'true':>4}" + "".join(
            f" {f'off {thresh}':>16} {f'on {thresh}':>16}" for thresh in THRESHOLDS
        )
        print(header)
        print("-" * len(header))
        outcomes: dict[tuple[float, bool, str], ImageOutcome] = {}
        for name in expected:
            cells = []
            for thresh in THRESHOLDS:
                for retry in (False, True):
                    outcome = index_one(models[thresh, retry], name)
                    outcomes[thresh, retry, name] = outcome
                    cells.append(f"{describe(outcome):>16}")
            print(f"{name:30} {expected[name]['faces']:>4} " + " ".join(cells))

        print()
        for thresh in THRESHOLDS:
            upright = outcomes[thresh, True, "rot_r0.jpg"].faces
            turned = outcomes[thresh, True, "rot_r90.jpg"].faces
            if upright and turned:
                cosine = float(np.dot(upright[0].embedding, turned[0].embedding))
                print(
                    f"det_thresh {thresh}, retry on: rot_r90.jpg face (rotation {turned[0].rotation}, "
                    f"score {turned[0].det_score:.2f}) vs rot_r0.jpg face: cosine {cosine:.3f}"
                )

        print()
        faceless = [name for name, info in expected.items() if info["faces"] == 0]
        print(
            f"{'faceless image':30} {'thresh':>6} {'calls off':>9} {'calls on':>8} {'ms off':>8} "
            f"{'ms on':>8} {'extra ms':>8} {'turn ms':>8}"
        )
        for name in faceless:
            for thresh in THRESHOLDS:
                calls_off, ms_off = cost(models[thresh, False], name, args.repeat)
                calls_on, ms_on = cost(models[thresh, True], name, args.repeat)
                turning = turn_ms(models[thresh, True], name, args.repeat)
                print(
                    f"{name:30} {thresh:>6} {calls_off:>9} {calls_on:>8} {ms_off:>8.1f} {ms_on:>8.1f} "
                    f"{ms_on - ms_off:>8.1f} {turning:>8.2f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
