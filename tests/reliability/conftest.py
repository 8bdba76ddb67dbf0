"""Fixtures for the reliability tests: the small real model pack, a moto world, a fault proxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fault_proxy import FaultProxy, fault_proxy
from tests.support.reliability_world import PHOTO_FACES, ReliabilityWorld, create_world
from tests.support.worker_harness import SMALL_PACK, make_model_pack


@pytest.fixture(scope="session")
def small_pack(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """det_500m + the dynamic-batch MobileFaceNet from ../shared/assets (symlinks, nothing copied)."""
    return make_model_pack(tmp_path_factory.mktemp("packs") / "small_pack", assets_dir, SMALL_PACK)


@pytest.fixture(scope="session")
def photos(assets_dir: Path) -> dict[str, bytes]:
    """Small real photos (250-640 px) and their bytes; face counts are in ``PHOTO_FACES``."""
    return {name: (assets_dir / "images" / name).read_bytes() for name in PHOTO_FACES}


@pytest.fixture
def world(moto: Any) -> ReliabilityWorld:
    return create_world(moto)


@pytest.fixture
def proxy(moto: Any) -> Iterator[FaultProxy]:
    with fault_proxy(moto.url) as running:
        yield running
