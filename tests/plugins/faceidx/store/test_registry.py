"""ModelRegistry on a real face table and vector index: versions known, current, use, drop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from faceidx.store.location import IndexLocation
from faceidx.store.registry import ModelRegistry, ModelVersionError
from faceidx.store.table import FaceTable
from faceidx.store.vectors import VectorIndex
from tests.plugins.faceidx.erasure.test_forget import (
    V1,
    V2,
    image_rows,
    old_snapshot_keys,
    unit,
    write_landing,
)


@pytest.fixture
def location(tmp_path: Path) -> IndexLocation:
    return IndexLocation(output_uri=str(tmp_path / "out"))


def _index(location: IndexLocation, *versions: str) -> FaceTable:
    for number, version in enumerate(versions):
        write_landing(location, image_rows("a.jpg", unit(number, 2), version=version))
        write_landing(location, image_rows(f"b-{number}.jpg", unit(10 + number, 1), version=version))
    table = FaceTable.open(location)
    table.ingest()
    index = VectorIndex(location)
    for version in versions:
        index.sync(table, version)
    return table


def test_no_version_yet_is_an_error_that_says_what_to_do(location):
    with pytest.raises(ModelVersionError, match="no model version yet"):
        ModelRegistry(location).current()


def test_the_only_version_is_current_and_the_registry_says_it_was_not_chosen(location, caplog):
    caplog.set_level("INFO", logger="faceidx.store.registry")
    _index(location, V1)
    registry = ModelRegistry(location)
    assert registry.current() == V1
    assert registry.resolve_current().explicit is False
    assert "it is the only one" in caplog.text
    assert registry.history() == []


def test_several_versions_need_an_explicit_choice_which_is_logged(location):
    _index(location, V1, V2)
    registry = ModelRegistry(location)
    with pytest.raises(ModelVersionError) as refused:
        registry.current()
    assert V1 in str(refused.value)
    assert V2 in str(refused.value)

    registry.use(V2, "alice")
    registry.use(V1, "bob")
    assert ModelRegistry(location).current() == V1
    history = ModelRegistry(location).history()
    assert [(h["actor"], h["action"], h["from"], h["to"]) for h in history] == [
        ("alice", "use", None, V2),
        ("bob", "use", V2, V1),
    ]
    assert all(h["at"] for h in history)


def test_an_unknown_version_is_refused(location):
    _index(location, V1)
    registry = ModelRegistry(location)
    with pytest.raises(ModelVersionError, match=f"not in the index; known: {V1}"):
        registry.use("nope-000000000000", "alice")
    with pytest.raises(ModelVersionError):
        registry.drop("nope-000000000000", "alice")
    assert registry.history() == []


def test_drop_removes_the_rows_the_history_and_the_vector_table(location):
    table = _index(location, V1, V2)
    before = table.version()
    registry = ModelRegistry(location)
    registry.use(V1, "alice")
    with pytest.raises(ModelVersionError, match="current one and cannot be dropped"):
        registry.drop(V1, "alice")

    entry = registry.drop(V2, "alice")

    assert entry["rows"] == 3
    assert set(table.model_versions()) == {V1}
    assert set(VectorIndex(location).versions()) == {V1}
    assert registry.versions() == [V1]
    assert old_snapshot_keys(location, before) is None, "old table versions are purged"
    assert [h["action"] for h in registry.history()] == ["use", "drop"]


def test_stats_per_version(location):
    _index(location, V1, V2)
    registry = ModelRegistry(location)
    registry.use(V2, "alice")
    stats = {s.version: s for s in registry.stats()}
    assert set(stats) == {V1, V2}
    assert (stats[V2].rows, stats[V2].faces, stats[V2].images, stats[V2].current) == (3, 3, 2, True)
    assert stats[V1].current is False
    assert stats[V1].first_indexed is not None
    assert stats[V1].first_indexed <= stats[V1].last_indexed


def test_the_module_imports_nothing_heavy():
    probe = (
        "import sys; import faceidx.store.registry; "
        "heavy = [m for m in ('pyarrow', 'deltalake', 'lancedb', 'numpy') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
