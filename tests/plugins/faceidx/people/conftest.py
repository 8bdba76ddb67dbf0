"""Real embeddings of the labelled asset photos, made with the worker's own model code."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

PACK = ("det_500m.onnx", "mobilefacenet_128d_dynbatch.onnx")


@dataclass(frozen=True)
class LabelledFaces:
    embeddings: np.ndarray
    identities: list[str]
    images: list[str]


def embed_labelled(assets: Path, pack_dir: Path) -> LabelledFaces:
    """Every labelled face of expected.json, ordered left to right by bbox x1 as the file lists them."""
    from faceidx_worker.images import decode_image
    from faceidx_worker.model import InsightFaceModelPack

    for name in PACK:
        (pack_dir / name).symlink_to(assets / "models" / name)
    model = InsightFaceModelPack(pack_dir, det_thresh=0.7, ort_threads=1)
    model.load()
    expected = json.loads((assets / "expected.json").read_text())["images"]
    vectors, identities, images = [], [], []
    for name, spec in expected.items():
        if "ids" not in spec:
            continue
        image = decode_image((assets / "images" / name).read_bytes(), max_pixels=10**8)
        boxes, landmarks = model.detect(image.pixels)
        order = np.argsort(boxes[:, 0])
        assert len(order) == spec["faces"], f"{name}: {len(order)} faces detected, expected {spec['faces']}"
        embeddings = model.embed([model.align(image.pixels, landmarks[i]) for i in order])
        vectors.extend(embeddings)
        identities.extend(spec["ids"])
        images.extend([name] * len(order))
    return LabelledFaces(np.asarray(vectors, dtype=np.float32), identities, images)


@pytest.fixture(scope="session")
def labelled_faces(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LabelledFaces:
    return embed_labelled(assets_dir, tmp_path_factory.mktemp("pack"))
