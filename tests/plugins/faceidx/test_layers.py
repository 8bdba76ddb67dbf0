"""Imports point down only: feature packages -> erasure -> people -> store -> common.

Each package of ``plugins/faceidx`` has a floor; a module may import its own package and packages on
lower floors, never one on its own floor or above. ``store`` owns the index state, so it knows nothing
of who uses it; ``people`` builds on the store; ``erasure`` (which other features call, the ingest's
ObjectRemoved path) on both; the DAG features on all of them. Every import is read with ``ast``, those
inside functions too (the AWS layer's own test reads them the same way).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import faceidx
from tests.plugins.faceidx.aws.test_layering import imported_modules

ROOT = Path(faceidx.__file__).resolve().parent
FLOORS: dict[str, int] = {
    "common": 0,
    "aws": 1,
    "store": 1,
    "people": 2,
    "erasure": 3,
    "search": 4,
    "models": 4,
    "maintenance": 4,
    "indexing": 4,
    "reindex": 4,
    "infra": 4,
    "jobs": 5,
    "cli": 5,
}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "faceidx" else None


def _modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_package_has_a_floor():
    packages = {p.relative_to(ROOT).parts[0].removesuffix(".py") for p in _modules()} - {"__init__"}
    assert packages <= set(FLOORS), f"give {sorted(packages - set(FLOORS))} a floor in FLOORS"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path: Path):
    own = path.relative_to(ROOT).parts[0].removesuffix(".py")
    if own == "__init__":
        return
    upward = [
        f"line {line}: {module} (floor {FLOORS[target]} >= {own}'s {FLOORS[own]})"
        for line, module in imported_modules(path.read_text())
        if (target := _package(module)) is not None
        and target != own
        and target in FLOORS
        and FLOORS[target] >= FLOORS[own]
    ]
    assert not upward, f"{path.relative_to(ROOT)} imports up or sideways: {upward}"
