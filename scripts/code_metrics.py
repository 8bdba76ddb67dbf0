"""``make metrics``: the shape of the code, for reviews of the layout.

Prints, for the runtime code (``plugins/faceidx`` and ``worker/faceidx_worker``): modules over 300
lines, functions over 60 lines, and for each flow (a DAG file, the worker entry point) the first-party
modules it reaches through imports and their lines.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"faceidx": REPO / "plugins", "faceidx_worker": REPO / "worker"}
FLOWS = {
    "face_indexing": REPO / "dags" / "face_indexing.py",
    "face_infra_bootstrap": REPO / "dags" / "face_infra_bootstrap.py",
    "face_reindex": REPO / "dags" / "face_reindex.py",
    "worker": REPO / "worker" / "run_detection_service.py",
}


def module_path(name: str) -> Path | None:
    top = name.split(".", maxsplit=1)[0]
    if top not in ROOTS:
        return None
    base = ROOTS[top].joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def reach(entry: Path) -> set[Path]:
    seen: set[Path] = set()
    todo = [entry]
    while todo:
        path = todo.pop()
        for name in imports(path):
            target = module_path(name)
            if target and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def main() -> int:
    runtime = sorted(
        p for root in ("plugins/faceidx", "worker/faceidx_worker") for p in (REPO / root).rglob("*.py")
    )
    big = [(lines(p), p) for p in runtime if lines(p) > 300]
    long_functions = []
    for path in runtime:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 60:
                    long_functions.append((length, f"{path.relative_to(REPO)}:{node.lineno} {node.name}"))
    print(f"runtime modules: {len(runtime)}, {sum(lines(p) for p in runtime)} lines")
    print(f"modules over 300 lines: {len(big)}")
    for count, path in sorted(big, reverse=True):
        print(f"  {count:5d}  {path.relative_to(REPO)}")
    print(f"functions over 60 lines: {len(long_functions)}")
    for count, where in sorted(long_functions, reverse=True):
        print(f"  {count:5d}  {where}")
    print("flows (first-party modules reached through imports):")
    for flow, entry in FLOWS.items():
        reached = reach(entry)
        print(f"  {flow:22s} {len(reached):3d} modules  {sum(lines(p) for p in reached):6d} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
