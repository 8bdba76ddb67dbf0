"""Measure how long each DAG file takes to parse, as the DAG processor would import it.

Each file is imported in a fresh interpreter, after ``airflow.sdk`` (which every DAG file imports and
the DAG processor has already loaded), best of 5 runs. Usage: ``make parse-times``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO / "dev")]

from faceidx.common.tables import format_table  # noqa: E402

PROBE = r"""
import json, sys, time, runpy
import airflow.sdk
start = time.perf_counter()
runpy.run_path(sys.argv[1], run_name="dag_probe")
print(json.dumps(time.perf_counter() - start))
"""


def parse_seconds(path: Path, runs: int = 5) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO / "plugins")}
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True, env=env
        )
        times.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return min(times)


def main() -> None:
    rows = []
    for path in sorted((REPO / "dags").glob("*.py")):
        rows.append((path.name, f"{parse_seconds(path) * 1000:.0f} ms"))
    print(format_table(("DAG file", "parse time (best of 5)"), rows, title="DAG parse times"))


if __name__ == "__main__":
    main()
