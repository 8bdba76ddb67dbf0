"""ARCHITECTURE.md's worker map names every module of ``worker/faceidx_worker``, and nothing else.

A newcomer finds a module in one hop from the map: a module added (or renamed) without its row fails
here, as does a row left behind by a module that is gone.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "worker" / "faceidx_worker"


def _worker_map() -> str:
    text = (REPO / "ARCHITECTURE.md").read_text()
    start = text.index("\n## Worker map\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _mapped_modules() -> set[str]:
    """The modules named in the first cell of each row of the map's table."""
    names: set[str] = set()
    for line in _worker_map().splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        names.update(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", first_cell))
    return names


def _modules() -> set[str]:
    return {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}


def test_every_worker_module_is_on_the_worker_map() -> None:
    missing = sorted(_modules() - _mapped_modules())
    assert not missing, f"ARCHITECTURE.md's worker map does not name: {missing}"


def test_the_worker_map_names_no_module_that_is_gone() -> None:
    gone = sorted(_mapped_modules() - _modules())
    assert not gone, f"ARCHITECTURE.md's worker map names modules that do not exist: {gone}"


def test_the_path_of_one_image_names_existing_modules() -> None:
    path_line = next(line for line in _worker_map().split("\n\n") if "One image crosses" in line)
    named = set(re.findall(r"`([a-z_]+)`", path_line.split(":", 1)[1]))
    assert named <= _modules(), sorted(named - _modules())
