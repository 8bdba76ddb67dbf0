"""Render the docs' reference tables from the code, so they cannot drift from it.

A docs page asks for a table with a marker on a line of its own:

- ``<!-- faceidx:params DAG_ID -->``: the Params of that DAG, read from the DAG itself (the files under
  ``dags/`` loaded by Airflow's ``DagBag``): name, type and bounds, default, description;
- ``<!-- faceidx:worker-settings -->``: the worker's environment variables, read from
  ``faceidx_worker.settings.SETTINGS`` (the metadata of the settings dataclasses' fields);
- ``<!-- faceidx:infra-values -->``: the per-account values of ``face_infra_bootstrap``, read from
  ``faceidx.infra.values.VALUES`` (their spec placeholders and examples).

``docs/hooks/tables.py`` expands the markers while ``mkdocs build`` runs. To print one table:
``.venv/bin/python scripts/gen_docs_tables.py params face_indexing`` (or ``worker-settings``,
``infra-values``).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!--\s*faceidx:(?P<kind>[a-z-]+)(?:\s+(?P<arg>\S+))?\s*-->\s*$", re.MULTILINE)


def _on_path() -> None:
    for folder in ("plugins", "worker"):
        path = str(REPO / folder)
        if path not in sys.path:
            sys.path.insert(0, path)


def _fold(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _cell(text: Any) -> str:
    """One Markdown table cell of prose: pipes and angle brackets escaped, line breaks folded."""
    return _fold(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(value: Any) -> str:
    """A value as inline code; an empty string or list reads "empty"."""
    if value in ("", []):
        return "empty"
    return f"`{_fold(value if isinstance(value, str) else json.dumps(value))}`"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# --- DAG Params ----------------------------------------------------------------------------------


@cache
def load_dags() -> dict[str, Any]:
    """Every DAG under ``dags/``, parsed by Airflow's own ``DagBag``; an import error is raised."""
    if "AIRFLOW_HOME" not in os.environ:  # never create or read the developer's ~/airflow
        os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="faceidx-docs-airflow-")
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    _on_path()
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    if bag.import_errors:
        raise RuntimeError(
            f"the DAG files do not import, so their Params cannot be documented: {bag.import_errors}"
        )
    return dict(bag.dags)


def _schema_type(schema: dict[str, Any]) -> str:
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    nullable = "null" in kinds
    shown = " or ".join(kind for kind in kinds if kind != "null")
    if shown == "array" and isinstance(schema.get("items"), dict) and "type" in schema["items"]:
        shown = f"array of {schema['items']['type']}"
    bounds = [
        f"{word} {schema[key]}"
        for key, word in (
            ("minimum", "≥"),
            ("maximum", "≤"),
            ("minLength", "length ≥"),
            ("maxLength", "length ≤"),
        )
        if key in schema
    ]
    if "enum" in schema:
        bounds.append("one of " + ", ".join(_code(choice) for choice in schema["enum"] if choice is not None))
    text = ", ".join(
        part for part in (shown, "optional (may stay empty)" if nullable else "", *bounds) if part
    )
    return text.replace("<", "&lt;").replace(">", "&gt;")


def param_rows(dag: Any) -> list[tuple[str, str, str, str]]:
    """(name, type, default, description) for each Param of ``dag``, in the DAG's order."""
    rows = []
    for name in dag.params:
        param = dag.params.get_param(name)
        default = "empty" if param.value is None else _code(param.value)
        rows.append((f"`{name}`", _schema_type(param.schema), default, _cell(param.description or "")))
    return rows


def render_params(dag_id: str) -> str:
    dags = load_dags()
    if dag_id not in dags:
        raise KeyError(f"no DAG {dag_id!r} under dags/ (there are: {', '.join(sorted(dags))})")
    return _table(("Param", "type", "default", "description"), param_rows(dags[dag_id]))


# --- worker settings -----------------------------------------------------------------------------


def _settings() -> tuple[Any, ...]:
    _on_path()
    from faceidx_worker.settings import SETTINGS

    return tuple(SETTINGS)


def setting_rows(settings: tuple[Any, ...]) -> list[tuple[str, str, str, str]]:
    """(variable, type, default, description) for each worker setting."""
    rows = []
    for setting in settings:
        if getattr(setting, "required", False):
            default = "required"
        elif setting.default is None:
            default = "unset"
        elif callable(getattr(setting.default, "compute", None)):  # a default derived from others
            default = _cell(setting.default)
        else:
            default = _code(setting.default)
        description = setting.description
        kind = setting.kind
        low, high = getattr(setting, "low", None), getattr(setting, "high", None)
        if low is not None or high is not None:
            kind += " " + ", ".join(
                part
                for part in (
                    f"≥ {low:g}" if low is not None else "",
                    f"≤ {high:g}" if high is not None else "",
                )
                if part
            )
        rows.append((f"`{setting.env}`", _cell(kind), default, _cell(description)))
    return rows


def render_worker_settings() -> str:
    return _table(("variable", "type", "default", "description"), setting_rows(_settings()))


# --- infra values --------------------------------------------------------------------------------


def render_infra_values() -> str:
    _on_path()
    from faceidx.infra.values import VALUES

    rows = []
    for value in VALUES:
        required = "no" if value.default is not None or value.optional else "yes"
        default = value.derived if value.derived else "" if value.default is None else _code(value.default)
        example = "" if value.example in (None, "", [], value.default) else _code(value.example)
        rows.append((f"`{value.param}`", f"`${{{value.placeholder}}}`", required, default, example))
    return _table(("Param", "placeholder in infra/", "required", "default", "example"), rows)


# --- markers -------------------------------------------------------------------------------------


def render(kind: str, arg: str | None = None) -> str:
    if kind == "params" and arg:
        return render_params(arg)
    if kind == "worker-settings" and not arg:
        return render_worker_settings()
    if kind == "infra-values" and not arg:
        return render_infra_values()
    raise ValueError(f"unknown docs table marker faceidx:{kind} {arg or ''}".strip())


def expand(markdown: str) -> str:
    """``markdown`` with every ``<!-- faceidx:... -->`` marker replaced by its table."""
    return MARKER.sub(lambda match: render(match["kind"], match["arg"]), markdown)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0 if argv else 2
    print(render(argv[0], argv[1] if len(argv) > 1 else None), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
