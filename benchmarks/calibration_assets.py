"""The calibrated threshold measured on the labelled asset photos (``../shared/assets``).

``.venv/bin/python benchmarks/calibration_assets.py`` embeds every face of every asset photo with the
worker's own code (:class:`faceidx.search.photo.PhotoEmbedder`, the test pack ``det_500m`` +
``mobilefacenet_128d_dynbatch``), labels the faces from ``expected.json`` (left to right by box), then
prints:

1. the similarity -> FAR table that ``faceidx models calibrate`` would store for an index of these
   photos (impostor pairs = pairs of faces of one photo), and the threshold search would use at FAR
   1e-4 (with too few pairs: the documented default);
2. at that threshold and at the others given (``--thresholds``): how often Obama matches Biden, the
   Friends cast match each other, any two different people (strangers) match, and how often the
   same person's photos (Obama's, each Friends character in its two photos, Rob Lowe's) reach it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "worker"))
sys.path.insert(0, str(REPO / "dev"))

from faceidx.common.tables import format_table  # noqa: E402
from faceidx.search.photo import PhotoEmbedder  # noqa: E402
from faceidx.store.calibration import (  # noqa: E402
    DEFAULT_FAR,
    TABLE_HEADERS,
    calibration_from_similarities,
    choose_threshold,
    same_image_similarities,
)

ASSETS = Path(os.environ.get("FACEIDX_ASSETS", REPO.parent / "shared" / "assets"))
PACK_FILES = ("det_500m.onnx", "mobilefacenet_128d_dynbatch.onnx")
FRIENDS = {"rachel", "monica", "ross", "chandler", "joey", "phoebe"}


def embed(pack: Path) -> list[dict[str, Any]]:
    """One dict per detected face: image, identity (None when the photo has no labels), unit vector."""
    embedder = PhotoEmbedder.from_env({"FACEIDX_MODEL_DIR": str(pack)})
    expected = json.loads((ASSETS / "expected.json").read_text())["images"]
    faces = []
    for name, spec in expected.items():
        if not spec.get("faces"):
            continue
        found = sorted(embedder.faces(str(ASSETS / "images" / name)), key=lambda f: float(f.bbox[0]))
        ids = spec.get("ids")
        labelled = ids is not None and len(ids) == len(found)
        for position, face in enumerate(found):
            vector = np.asarray(face.embedding, np.float32)
            faces.append(
                {
                    "image": name,
                    "identity": ids[position] if labelled and ids else None,
                    "vector": vector / np.linalg.norm(vector),
                }
            )
    return faces


def pair_groups(faces: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Similarities of the pairs of each kind (each unordered pair of faces once)."""
    groups: dict[str, list[float]] = {
        "Obama vs Biden": [],
        "Friends cast, two different characters": [],
        "strangers (any two different labelled people)": [],
        "same person: Obama's photos": [],
        "same person: each Friends character, its two photos": [],
        "same person: Rob Lowe's two photos": [],
    }
    for a, b in itertools.combinations(faces, 2):
        ida, idb = a["identity"], b["identity"]
        if ida is None or idb is None:
            continue
        sim = float(a["vector"] @ b["vector"])
        if ida != idb:
            groups["strangers (any two different labelled people)"].append(sim)
            if {ida, idb} == {"obama", "biden"}:
                groups["Obama vs Biden"].append(sim)
            if ida in FRIENDS and idb in FRIENDS:
                groups["Friends cast, two different characters"].append(sim)
        elif a["image"] != b["image"]:
            if ida == "obama":
                groups["same person: Obama's photos"].append(sim)
            elif ida in FRIENDS:
                groups["same person: each Friends character, its two photos"].append(sim)
            elif ida == "rob_lowe":
                groups["same person: Rob Lowe's two photos"].append(sim)
    return groups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--thresholds",
        type=float,
        nargs="*",
        default=[0.30],
        help="more thresholds to report beside the one in force",
    )
    args = parser.parse_args(argv)
    from faceidx_dev.local.demo_inputs import link_model_pack

    with tempfile.TemporaryDirectory() as folder:
        pack = link_model_pack(ASSETS / "models", Path(folder) / "pack", PACK_FILES)
        faces = embed(pack)
    x = np.vstack([f["vector"] for f in faces])
    impostors = same_image_similarities(x, [f["image"] for f in faces])
    calibration = calibration_from_similarities(
        "assets",
        impostors,
        np.zeros(0),
        images=len({f["image"] for f in faces if sum(g["image"] == f["image"] for g in faces) > 1}),
        images_with_several_faces=len(
            {f["image"] for f in faces if sum(g["image"] == f["image"] for g in faces) > 1}
        ),
    )
    print(
        format_table(
            TABLE_HEADERS,
            calibration.table_rows(),
            title=f"calibration of the asset photos: {calibration.same_image_pairs} same-photo impostor "
            f"pair(s) from {calibration.images} photo(s), highest {calibration.max_impostor}",
        )
    )
    choice = choose_threshold(calibration, "assets", far=DEFAULT_FAR)
    print(f"\nin force at FAR {DEFAULT_FAR:.0e}: {choice.threshold:.4f} ({choice.source})")
    if choice.note:
        print(f"note: {choice.note}")
    unlabelled = sorted({f["image"] for f in faces if f["identity"] is None})
    print(f"photos whose faces carry no label (none in expected.json, or another face count): {unlabelled}\n")
    thresholds = [choice.threshold] + [t for t in args.thresholds if t != choice.threshold]
    rows = []
    for kind, sims in pair_groups(faces).items():
        values = np.asarray(sims)
        row: list[Any] = [kind, len(values)]
        row += [f"{values.min():.3f} / {np.median(values):.3f} / {values.max():.3f}" if len(values) else "-"]
        for t in thresholds:
            row.append(f"{int((values >= t).sum())} ({(values >= t).mean():.0%})" if len(values) else "-")
        rows.append(row)
    headers = ["pairs", "n", "min / median / max", *[f"at or above {t:.2f}" for t in thresholds]]
    print(
        format_table(
            headers, rows, title=f"{len(faces)} faces of the asset photos, pack {'+'.join(PACK_FILES)}"
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
