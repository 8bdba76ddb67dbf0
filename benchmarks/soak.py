"""Soak: N messages (default 10,000) through moto, two concurrent worker processes (``make soak``).

Runs the load of tests/support/reliability_load.py at full size on an embedded moto server and prints:
set-up time, drain time, throughput (all workers together, and each worker's own busy-time figure),
peak RSS per worker (and its RSS after start-up and at 90 % of its images, to show it does not grow with
the number of messages), duplicates, and the checks: no message lost, no image missing, true face
counts. Writes bench-output/soak.json. Exits 1 when a check fails.

    make soak                        # 10,000 messages
    make soak SOAK_MESSAGES=2000     # any count
    .venv/bin/python benchmarks/soak.py --messages 10000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "plugins", REPO / "worker"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tests.support.moto_server import start_moto_server  # noqa: E402
from tests.support.reliability_load import WORKER_SETTINGS, run_load  # noqa: E402
from tests.support.worker_harness import SMALL_PACK, make_model_pack  # noqa: E402

ASSETS = Path(os.environ.get("FACEIDX_ASSETS", REPO.parent / "shared" / "assets")).resolve()
OUT = REPO / "bench-output"
PEAK_RSS_LIMIT_MIB = 1024


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000, help="messages (one image each)")
    parser.add_argument("--workers", type=int, default=2, help="concurrent worker processes")
    args = parser.parse_args()
    if not (ASSETS / "models").is_dir():
        print(f"test assets not found at {ASSETS}: put ../shared beside the repository or set FACEIDX_ASSETS")
        return 2

    def progress(text: str) -> None:
        print(f"[soak] {text}", flush=True)

    moto = start_moto_server()
    try:
        with tempfile.TemporaryDirectory(prefix="faceidx-soak-") as folder:
            pack = make_model_pack(Path(folder) / "small_pack", ASSETS, SMALL_PACK)
            progress(f"{args.messages} messages, {args.workers} workers, settings {WORKER_SETTINGS}")
            began = time.monotonic()
            report = run_load(
                moto,
                assets=ASSETS,
                model_dir=pack,
                messages=args.messages,
                workers=args.workers,
                progress=progress,
            )
            total = time.monotonic() - began
    finally:
        moto.stop()

    print("\n".join(["", "== soak ==", *report.lines(), f"total wall time: {total:.0f} s"]))
    failures = []
    if report.queue_left or report.dlq_left:
        failures.append(f"{report.queue_left} messages left in the queue, {report.dlq_left} in the DLQ")
    if report.missing:
        failures.append(f"{len(report.missing)} images missing from the index")
    if report.wrong_face_counts:
        failures.append(f"{len(report.wrong_face_counts)} wrong face counts")
    for number, worker in enumerate(report.workers):
        if worker.returncode != 0:
            failures.append(f"worker {number} exited {worker.returncode} ({worker.exit_reason})")
        if worker.peak_rss_mib >= PEAK_RSS_LIMIT_MIB:
            failures.append(f"worker {number} peak RSS {worker.peak_rss_mib:.0f} MiB >= {PEAK_RSS_LIMIT_MIB}")
    OUT.mkdir(exist_ok=True)
    result = {**report.to_dict(), "total_seconds": round(total, 1), "failures": failures}
    (OUT / "soak.json").write_text(json.dumps(result, indent=2))
    print(f"figures written to {OUT / 'soak.json'}")
    print("FAIL: " + "; ".join(failures) if failures else "PASS: no message lost, no image missing")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
