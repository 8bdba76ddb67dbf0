"""MkDocs hook: expands the ``<!-- faceidx:... -->`` table markers with tables generated from the code.

The rendering lives in ``scripts/gen_docs_tables.py`` (tested in ``tests/docs/``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gen_docs_tables.py"
_spec = importlib.util.spec_from_file_location("faceidx_gen_docs_tables", _SCRIPT)
assert _spec is not None
assert _spec.loader is not None
gen_docs_tables = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_docs_tables)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return gen_docs_tables.expand(markdown)
