"""Plain-text tables for task logs: every decision a DAG makes is printed as one of these."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> str:
    """Render rows as an aligned table with a header rule, ready for ``log.info("%s", ...)``."""
    body = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells, expected {len(headers)}: {row}")
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in body)
    return "\n".join(lines)


def format_pairs(pairs: Iterable[tuple[str, Any]], title: str | None = None) -> str:
    """A two-column name/value table."""
    return format_table(("item", "value"), [(k, v) for k, v in pairs], title=title)
