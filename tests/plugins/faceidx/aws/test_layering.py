"""The AWS layer imports no feature: ``faceidx.aws`` sits below indexing, reindex, infra and the rest.

A hook that needs a feature's type or decision has it the wrong way round: the parser moves down into
``faceidx.aws`` (or ``faceidx.common``), the decision and the task step up into the feature. Every
import is read from the source with ``ast``, those inside functions and ``TYPE_CHECKING`` too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import faceidx.aws

AWS_DIR = Path(faceidx.aws.__file__).resolve().parent
ALLOWED = ("faceidx.aws", "faceidx.common")


def imported_modules(source: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every absolute import in ``source``; ``from faceidx import indexing`` gives
    ``faceidx.indexing``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"line {node.lineno}: relative import (the house uses absolute imports)"
            base = node.module or ""
            if base == "faceidx":
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
    return found


def feature_imports(source: str) -> list[str]:
    """The imports of ``source`` that reach into faceidx outside the AWS layer and ``faceidx.common``."""
    return [
        f"line {line}: {module}"
        for line, module in imported_modules(source)
        if module.startswith("faceidx.")
        and not any(module == allowed or module.startswith(f"{allowed}.") for allowed in ALLOWED)
    ]


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("from faceidx.aws.errors import explain\nfrom faceidx.common.constants import X\n", []),
        ("import boto3\nfrom airflow.providers.amazon.aws.hooks.s3 import S3Hook\n", []),
        ("from faceidx import aws, common\n", []),
        ("from faceidx.indexing.depth import QueueDepth\n", ["line 1: faceidx.indexing.depth"]),
        ("def f():\n    from faceidx.reindex.index import RangeReader\n", ["line 2: faceidx.reindex.index"]),
        ("if TYPE_CHECKING:\n    import faceidx.infra.results\n", ["line 2: faceidx.infra.results"]),
        ("from faceidx import indexing\n", ["line 1: faceidx.indexing"]),
    ],
)
def test_the_check_sees_every_kind_of_import(source, bad):
    assert feature_imports(source) == bad


def test_the_aws_layer_imports_no_feature():
    modules = sorted(AWS_DIR.glob("*.py"))
    assert len(modules) > 3, f"no modules found under {AWS_DIR}"
    offences = {
        str(path.relative_to(AWS_DIR.parent)): bad
        for path in modules
        if (bad := feature_imports(path.read_text()))
    }
    assert not offences, (
        "faceidx.aws imports a feature (only faceidx.aws and faceidx.common may be imported there): move "
        f"the parser into faceidx.aws, and the decision or task step into the feature. {offences}"
    )
