"""The index steps' measured needs: peak RSS and seconds of each step's job, by faces in the index.

    make bench-steps                                        # 10^3, 10^4, 10^5 faces
    .venv/bin/python benchmarks/bench_steps.py --sizes 1000 10000

For each size, a synthetic index (512-d ArcFace-like embeddings, photos of 1-4 faces) is written as
landing files, then every step runs as the maintenance job runs it, ``python -m faceidx.jobs STEP``, in
a process of its own: ingest, compact, vacuum, sync_vectors, identities (full re-cluster). The job's own
outcome gives its peak RSS and seconds. Beside each job, the Airflow side's sizing
(:func:`faceidx.jobs.needs.measure`: metadata only) is timed in its own process with its peak RSS.

It prints one table of the measurements, the line fitted per step (``base MiB + KiB per face``, the
form of :data:`faceidx.jobs.needs.MODELS`) and, for each step, the model's estimate next to the
measurement: an estimate below a measured peak prints UNDER and the command exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
from faceidx.common.tables import format_table  # noqa: E402
from faceidx.jobs.needs import MODELS  # noqa: E402
from faceidx.store.location import IndexLocation  # noqa: E402

DAY = "2026-11-20"  # faceidx_dev.synthetic_index.T0's day
# The landing files are written by a process of their own: Linux keeps a process's peak RSS across
# exec, so a job started by a parent that held the synthetic set would report the parent's peak.
WRITE = """
import sys
from faceidx.store.location import IndexLocation
from faceidx_dev.synthetic_index import write_synthetic_landing
location = IndexLocation(output_uri=sys.argv[1], vectors_uri=sys.argv[2])
write_synthetic_landing(location, int(sys.argv[3]))
import pathlib, pyarrow.parquet as pq
first = sorted(pathlib.Path(location.landing_uri).rglob("*.parquet"))[0]
row = pq.read_table(first, columns=["image_bucket", "image_key"]).slice(0, 1).to_pylist()[0]
print(f"s3://{row['image_bucket']}/{row['image_key']}")
"""

STEPS = (
    ("ingest", "ingest", {"max_files": 500}),
    ("compact", "compact", {"days": [DAY], "target_file_mb": 128}),
    ("vacuum", "vacuum", {"retention_hours": 0}),
    ("sync_vectors", "sync_vectors", {}),
    ("identities", "identities_full", {"params": {"full_recluster": True}}),
)

SIZING = """
import json, resource, sys, time
from faceidx.jobs.needs import measure
from faceidx.store.location import IndexLocation
location = IndexLocation(output_uri=sys.argv[1], vectors_uri=sys.argv[2])
started = time.perf_counter()
size = measure(sys.argv[3], location, json.loads(sys.argv[4]))
print(json.dumps({"faces": size.faces, "seconds": time.perf_counter() - started,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_job(location: IndexLocation, step: str, params: dict, job_id: str) -> dict:
    env = {**os.environ, "AWS_BATCH_JOB_ID": job_id, "PYTHONPATH": str(REPO / "worker")}
    command = [sys.executable, "-m", "faceidx.jobs", step, "--output-uri", location.output_uri]
    command += ["--vectors-uri", location.vectors_uri, "--params", json.dumps(params)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    outcome = json.loads(Path(location.job_result_uri(job_id)).read_text())
    if outcome["status"] != "succeeded":
        raise SystemExit(f"{step} failed: {outcome.get('error')}\n{done.stdout[-3000:]}")
    return outcome


def sizing(location: IndexLocation, step: str, params: dict) -> dict:
    command = [
        sys.executable,
        "-c",
        SIZING,
        location.output_uri,
        location.vectors_uri,
        step,
        json.dumps(params),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    args = parser.parse_args(argv)
    rows, measured = [], {model: [] for model in [*(m for _, m, _ in STEPS), "forget"]}
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as work:
            location = IndexLocation(output_uri=f"{work}/out", vectors_uri=f"{work}/vectors")
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "dev"), str(REPO / "worker")])}
            command = [sys.executable, "-c", WRITE, location.output_uri, location.vectors_uri, str(n)]
            victim = subprocess.run(
                command, check=True, env=env, capture_output=True, text=True
            ).stdout.split()[-1]
            steps = [*STEPS, ("forget", "forget", {"params": {"target_type": "image", "target": victim}})]
            for step, model, params in steps:
                side = sizing(location, step, params)
                outcome = run_job(location, step, params, f"{step}-{n}")
                faces = side["faces"]
                measured[model].append((faces, outcome["peak_rss_mib"]))
                estimate = MODELS[model].memory_mib(faces)
                verdict = "ok" if estimate >= outcome["peak_rss_mib"] else "UNDER"
                rows.append(
                    (
                        f"{n:,}",
                        step,
                        f"{faces:,}",
                        f"{outcome['seconds']:.1f}",
                        f"{outcome['peak_rss_mib']:,.0f}",
                        f"{estimate:,}",
                        verdict,
                        f"{side['seconds'] * 1000:.0f}",
                        f"{side['peak_rss_mib']:,.0f}",
                    )
                )
                print(rows[-1], flush=True)
    print(
        format_table(
            (
                "faces",
                "step",
                "in scope",
                "job s",
                "job peak RSS MiB",
                "estimate MiB",
                "",
                "sizing ms",
                "sizing RSS MiB",
            ),
            rows,
            title="index steps as jobs (python -m faceidx.jobs), and the Airflow side's sizing",
        )
    )
    fits = []
    for model, points in measured.items():
        if len(points) >= 2:
            x = np.array([p[0] for p in points], dtype=float)
            y = np.array([p[1] for p in points], dtype=float)
            slope, base = np.polyfit(x, y, 1)
            fits.append(
                (
                    model,
                    f"{base:,.0f}",
                    f"{slope * 1024:.2f}",
                    f"{MODELS[model].base_mib:,.0f}",
                    f"{MODELS[model].kib_per_face:.2f}",
                )
            )
    print(
        format_table(
            ("model", "fitted base MiB", "fitted KiB/face", "model base", "model KiB/face"),
            fits,
            title="peak RSS = base + KiB per face (faceidx.jobs.needs.MODELS)",
        )
    )
    return 1 if any(row[6] == "UNDER" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
