"""The quality measures of every face the worker finds in ``../shared/assets/images``, and the gate's verdict.

``.venv/bin/python benchmarks/quality_calibration.py`` prints one line per detected face: box size in
original pixels, detector score, sharpness (variance of the Laplacian of the aligned 112x112 crop),
yaw/pitch/roll, the raw embedding norm and the reasons the gate (the ``FACEIDX_QUALITY_*`` defaults, or
the values given) fails it. Faces are indexed as the worker does (``index_images``: the same decode, the
same detector passes, ``FACEIDX_DET_THRESH`` 0.5 by default). ``real`` says whether a detection is one of
the image's true faces (``expected.json`` counts them): detections past that count, the lowest-scored,
are marked ``extra``. Then the minimum and maximum of each measure over the real faces, and how many
real and extra faces each threshold fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "worker"))
sys.path.insert(0, str(REPO / "dev"))

from faceidx_worker.events import ImageRef  # noqa: E402
from faceidx_worker.fetch import LoadedImage  # noqa: E402
from faceidx_worker.images import decode_image  # noqa: E402
from faceidx_worker.indexer import index_images  # noqa: E402
from faceidx_worker.model import InsightFaceModelPack  # noqa: E402
from faceidx_worker.quality import QualityThresholds, quality_gate  # noqa: E402

ASSETS = Path(os.environ.get("FACEIDX_ASSETS", REPO.parent / "shared" / "assets"))
PACK_FILES = ("det_500m.onnx", "mobilefacenet_128d_dynbatch.onnx")
MEASURES = ("box", "det_score", "sharpness", "abs_yaw", "abs_pitch", "roll", "norm")


def measure(pack: Path, det_thresh: float, decode_min_side: int) -> list[dict[str, Any]]:
    """One dict per detected face of every asset image, in image order and then score order."""
    model = InsightFaceModelPack(pack, det_thresh=det_thresh, ort_threads=1)
    model.load()
    expected = json.loads((ASSETS / "expected.json").read_text())["images"]
    found: list[dict[str, Any]] = []
    for name in sorted(expected):
        data = (ASSETS / "images" / name).read_bytes()
        image = decode_image(data, max_pixels=100_000_000, min_side=decode_min_side)
        loaded = LoadedImage(ref=ImageRef("assets", name), etag="e", image=image)
        [outcome] = index_images(model, [loaded]).outcomes
        for index, face in enumerate(outcome.faces):
            quality = face.quality
            assert quality is not None
            found.append(
                {
                    "image": name,
                    "face": index,
                    "real": index < int(expected[name]["faces"]),
                    "quality": quality,
                    "box": min(quality.bbox_width, quality.bbox_height),
                    "det_score": quality.det_score,
                    "sharpness": quality.sharpness,
                    "abs_yaw": abs(quality.yaw),
                    "abs_pitch": abs(quality.pitch),
                    "roll": quality.roll,
                    "norm": quality.embedding_norm,
                }
            )
    return found


def main(argv: list[str] | None = None) -> int:
    defaults = QualityThresholds()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--det-thresh", type=float, default=0.5)
    parser.add_argument("--decode-min-side", type=int, default=1280, help="the worker's default: 2 x 640")
    parser.add_argument("--min-box-px", type=float, default=defaults.min_box_px)
    parser.add_argument("--min-sharpness", type=float, default=defaults.min_sharpness)
    parser.add_argument("--max-yaw", type=float, default=defaults.max_yaw)
    parser.add_argument("--max-pitch", type=float, default=defaults.max_pitch)
    parser.add_argument("--min-det-score", type=float, default=defaults.min_det_score)
    args = parser.parse_args(argv)
    thresholds = QualityThresholds(
        min_box_px=args.min_box_px,
        min_sharpness=args.min_sharpness,
        max_yaw=args.max_yaw,
        max_pitch=args.max_pitch,
        min_det_score=args.min_det_score,
    )
    from faceidx_dev.local.demo_inputs import link_model_pack

    with tempfile.TemporaryDirectory(prefix="faceidx-quality-") as folder:
        pack = link_model_pack(ASSETS / "models", Path(folder) / "small_pack", PACK_FILES)
        faces = measure(pack, args.det_thresh, args.decode_min_side)
    print(f"pack {' + '.join(PACK_FILES)}, det_thresh {args.det_thresh}, thresholds {thresholds}")
    header = (
        f"{'image':30} {'face':>4} {'real':>5} {'w x h px':>11} {'det':>5} {'sharp':>7} {'yaw':>6} "
        f"{'pitch':>6} {'roll':>7} {'norm':>6}  reasons"
    )
    print(header)
    print("-" * len(header))
    for face in faces:
        q = face["quality"]
        reasons = ",".join(quality_gate(q, thresholds)) or "-"
        norm = "" if q.embedding_norm is None else f"{q.embedding_norm:6.2f}"
        print(
            f"{face['image']:30} {face['face']:>4} {'yes' if face['real'] else 'extra':>5} "
            f"{q.bbox_width:5.0f}x{q.bbox_height:<5.0f} {q.det_score:5.2f} {q.sharpness:7.1f} {q.yaw:6.1f} "
            f"{q.pitch:6.1f} {q.roll:7.1f} {norm:>6}  {reasons}"
        )
    real = [f for f in faces if f["real"]]
    extra = [f for f in faces if not f["real"]]
    print()
    print(f"{len(real)} real faces, {len(extra)} extra detections")
    for name in MEASURES:
        values = [f[name] for f in real if f[name] is not None]
        print(f"  {name:10} real min {min(values):8.2f}  max {max(values):8.2f}")
    failing_real = [f for f in real if quality_gate(f["quality"], thresholds)]
    failing_extra = [f for f in extra if quality_gate(f["quality"], thresholds)]
    print(
        f"gate fails {len(failing_real)}/{len(real)} real faces and {len(failing_extra)}/{len(extra)} extras"
    )
    for f in failing_real:
        print(f"  real face failing: {f['image']} #{f['face']}: {quality_gate(f['quality'], thresholds)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
