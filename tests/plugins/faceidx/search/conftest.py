"""A small vector index of real faces (the worker's model on ../shared/assets photos), shared by the
search tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceidx.search.photo import PhotoEmbedder
from faceidx.store.location import IndexLocation
from faceidx.store.vectors import VectorIndex
from tests.plugins.faceidx.store.vector_faces import SCHEMA, DeltaFaces
from tests.support.worker_harness import make_model_pack

# Indexed photos; Rob_Lowe_0002 and obama2 are the queries (their person is indexed under another photo).
INDEXED = (
    "lfw_Rob_Lowe_0001.jpg",
    "obama.jpg",
    "biden.jpg",
    "lfw_Nathalie_Baye_0002.jpg",
    "lfw_Teresa_Williams_0001.jpg",
    "image_T1.jpeg",
)


@pytest.fixture(scope="module")
def pack(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_pack(tmp_path_factory.mktemp("pack") / "testpack", assets_dir)


@pytest.fixture(scope="module")
def embedder(pack: Path) -> PhotoEmbedder:
    return PhotoEmbedder.from_env({"FACEIDX_MODEL_DIR": str(pack)})


@pytest.fixture(scope="module")
def indexed(assets_dir: Path, embedder: PhotoEmbedder, tmp_path_factory: pytest.TempPathFactory):
    """A vector index of INDEXED, synced from a Delta table of their real faces, indexed over two
    months (every search fans out over two shards)."""
    import pyarrow as pa

    root = tmp_path_factory.mktemp("index")
    rows: dict[str, list] = {name: [] for name in SCHEMA.names}
    for number, photo in enumerate(INDEXED):
        for position, face in enumerate(embedder.faces(str(assets_dir / "images" / photo))):
            rows["face_id"].append(f"{photo}#{position}")
            rows["image_bucket"].append("photos")
            rows["image_key"].append(f"people/{photo}")
            rows["status"].append("ok")
            rows["face_index"].append(position)
            rows["bbox"].append([float(v) for v in face.bbox])
            rows["embedding"].append([float(v) for v in face.embedding])
            rows["quality_passed"].append(photo != "lfw_Rob_Lowe_0001.jpg")  # for --quality-only
            rows["model_version"].append(embedder.model_version)
            rows["indexed_date"].append("2026-10-20" if number % 2 else "2026-11-05")
    faces = DeltaFaces(root / "table" / "faces")
    faces.append(pa.table(rows, schema=SCHEMA))
    location = IndexLocation(str(root))
    VectorIndex(location).sync(faces, embedder.model_version)
    return location


def photo(assets_dir: Path, name: str) -> str:
    return str(assets_dir / "images" / name)
