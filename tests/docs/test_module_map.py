"""ARCHITECTURE.md's module map names every package of ``plugins/faceidx`` and every module in it.

Each package has one row (``plugins/faceidx/<package>/``) whose text names its modules (``name.py``;
``kinds_*.py`` stands for every module the pattern matches). A module added without its name in the
row, or a package without a row, fails here, as a Param missing from the docs' tables does.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "plugins" / "faceidx"


def _rows() -> dict[str, str]:
    text = (REPO / "ARCHITECTURE.md").read_text()
    start = text.index("\n## Module map\n")
    end = text.find("\n## ", start + 1)
    rows = {}
    for line in text[start:end].splitlines():
        match = re.match(r"\| `plugins/faceidx/(\w+)/` \|(.*)\|\s*$", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def _packages() -> list[str]:
    return sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())


def test_every_package_has_a_row():
    missing = sorted(set(_packages()) - set(_rows()))
    assert not missing, f"ARCHITECTURE.md's module map has no row for plugins/faceidx/{missing}"


@pytest.mark.parametrize("package", _packages())
def test_the_row_names_every_module(package: str):
    row = _rows().get(package, "")
    named = re.findall(r"`([\w*]+\.py)`", row)
    modules = sorted(p.name for p in (PACKAGE / package).glob("*.py") if p.name != "__init__.py")
    missing = [m for m in modules if not any(fnmatch.fnmatch(m, pattern) for pattern in named)]
    assert not missing, f"the row of plugins/faceidx/{package}/ does not name {missing}"
    gone = [n for n in named if "*" not in n and n not in modules]
    assert not gone, f"the row of plugins/faceidx/{package}/ names modules that do not exist: {gone}"
