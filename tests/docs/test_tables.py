"""The docs' generated tables: every Param of every DAG and every worker setting is on its page.

The pages hold markers (``<!-- faceidx:params face_indexing -->``, ...) that ``docs/hooks/tables.py``
expands with ``scripts/gen_docs_tables.py`` while ``mkdocs build`` runs; these tests render the pages
the same way, so a Param or a setting added to the code without its docs fails here.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from faceidx_worker.rows import SCHEMA, ErrorReason
from faceidx_worker.settings import SETTINGS
from scripts import gen_docs_tables

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PAGES_OF_DAGS = {
    "face_indexing": "indexing.md",
    "face_reindex": "backfills.md",
    "face_infra_bootstrap": "infrastructure.md",
    "face_forget": "erasure.md",
    "face_models": "model-versions.md",
    "face_search": "search.md",
    "face_table": "index-table.md",
    "face_vectors": "index-jobs.md",
    "face_identities": "people.md",
    "face_people": "people.md",
}


def _rendered(page: str) -> str:
    return gen_docs_tables.expand((DOCS / page).read_text())


def test_every_dag_has_a_page_with_its_params_marker() -> None:
    assert set(gen_docs_tables.load_dags()) == set(PAGES_OF_DAGS)
    for dag_id, page in PAGES_OF_DAGS.items():
        assert f"<!-- faceidx:params {dag_id} -->" in (DOCS / page).read_text(), page


@pytest.mark.parametrize(("dag_id", "page"), sorted(PAGES_OF_DAGS.items()))
def test_every_param_of_the_dag_is_on_its_page(dag_id: str, page: str) -> None:
    dag = gen_docs_tables.load_dags()[dag_id]
    text = _rendered(page)
    assert "<!-- faceidx:" not in text  # every marker expanded
    for name in dag.params:
        param = dag.params.get_param(name)
        row = next((line for line in text.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"Param {name} of {dag_id} is missing from docs/{page}"
        if param.description:
            assert " ".join(param.description.split())[:40].replace("<", "&lt;") in row


def test_every_worker_setting_is_on_the_worker_page() -> None:
    text = _rendered("worker.md")
    for setting in SETTINGS:
        row = next((line for line in text.splitlines() if line.startswith(f"| `{setting.env}` |")), None)
        assert row is not None, f"{setting.env} is missing from docs/worker.md"
        assert gen_docs_tables._cell(setting.description)[:40] in row


def test_required_settings_read_required_and_defaults_are_shown() -> None:
    rows = {row[0]: row for row in gen_docs_tables.setting_rows(SETTINGS)}
    for setting in SETTINGS:
        row = rows[f"`{setting.env}`"]
        if setting.required:
            assert row[2] == "required"
        elif isinstance(setting.default, bool | int | float) and not isinstance(setting.default, bool):
            assert str(setting.default) in row[2]


def test_markdown_cells_are_escaped() -> None:
    assert gen_docs_tables._cell("a | b <uri>") == "a \\| b &lt;uri&gt;"
    assert gen_docs_tables._code("") == "empty"
    assert gen_docs_tables._code([".jpg"]) == '`[".jpg"]`'


def test_unknown_markers_fail_the_build() -> None:
    with pytest.raises(ValueError, match="unknown docs table marker"):
        gen_docs_tables.expand("<!-- faceidx:nonsense -->\n")
    with pytest.raises(KeyError, match="no DAG"):
        gen_docs_tables.expand("<!-- faceidx:params no_such_dag -->\n")


def test_every_column_and_error_reason_is_on_the_index_schema_page() -> None:
    text = (DOCS / "index-schema.md").read_text()
    for name in SCHEMA.names:
        assert f"`{name}`" in text, f"column {name} is missing from docs/index-schema.md"
    for reason in ErrorReason:
        assert f"| `{reason.value}` |" in text, f"error reason {reason.value} is missing"


_REPO_PATH = re.compile(
    r"`((?:dags|plugins|worker|dev|tests|scripts|benchmarks|infra|docker|docs)/[A-Za-z0-9_./-]+)`"
)


@pytest.mark.parametrize(
    "page",
    [
        *sorted(str(p.relative_to(REPO)) for p in DOCS.glob("*.md")),
        "README.md",
        "ARCHITECTURE.md",
        "CONTRIBUTING.md",
    ],
)
def test_repository_paths_named_in_the_docs_exist(page: str) -> None:
    """A file or folder a page names in backticks exists: moved code fails here, not for a reader."""
    text = (REPO / page).read_text()
    missing = []
    for named in _REPO_PATH.findall(text):
        path = named.rstrip(".")
        if "<" in path or "*" in path or path == "docs/contributing-resource-kind.md":
            continue
        if not (REPO / path).exists():
            missing.append(path)
    assert not missing, f"{page} names paths that do not exist: {missing}"


_DOTTED = re.compile(r"`((?:faceidx|faceidx_worker|faceidx_dev)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`")


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def test_python_names_in_the_docs_exist() -> None:
    """Every ``faceidx...`` / ``faceidx_worker...`` / ``faceidx_dev...`` name a page gives resolves."""
    pages = [*DOCS.glob("*.md"), REPO / "README.md", REPO / "ARCHITECTURE.md", REPO / "CONTRIBUTING.md"]
    missing = sorted(
        {
            f"{page.name}: {name}"
            for page in pages
            for name in _DOTTED.findall(page.read_text())
            if not _resolves(name)
        }
    )
    assert not missing, f"names that do not resolve: {missing}"
