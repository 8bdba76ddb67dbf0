"""Airflow orchestrates, Batch computes: the Airflow task's peak RSS stays flat as the index grows.

For each size, a synthetic index of that many faces (512-d embeddings) is ingested; then the vector
sync (``face_vectors``) and a full re-cluster (``face_identities``) run from a fresh Airflow process of
their own (``dag.test()``), with the maintenance queue in moto and the local Batch stand-in running the
jobs as separate processes. What is compared is that Airflow process's high-water mark (``VmHWM``: a
fresh exec's own, unlike ``ru_maxrss``, which Linux carries over from the parent) against the job's.

Sizes: ``FACEIDX_RSS_SIZES`` (default 1,000 and 30,000 faces; ``make rss-flat`` runs 1,000 and 100,000).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faceidx.common.constants import MAINTENANCE_JOB_QUEUE, VAR_MAINTENANCE_JOB_QUEUE
from faceidx_dev.local.batch_compute import LocalBatchCompute
from tests.support.batch import create_maintenance_queue
from tests.support.reindex_backfill import forget_runs

REPO = Path(__file__).resolve().parents[2]
SIZES = [int(n) for n in os.environ.get("FACEIDX_RSS_SIZES", "1000,30000").split(",")]
FLAT_MIB = 40  # the Airflow process may grow this much between the smallest and the largest index
CEILING_MIB = 600  # what a dag.test() process of this project takes at most, whatever the index

CHILD = r"""
import json, sys
import pendulum
from tests.support.airflow_dags import load_dag

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

conf = json.loads(sys.argv[2])
dag = load_dag(sys.argv[1])
# the task alone: what a review (human-in-the-loop) would add after it is not what is measured
dag = dag.partial_subset(task_ids=[sys.argv[4]], include_downstream=False, include_upstream=False)
run = dag.test(run_conf=conf, logical_date=pendulum.parse(sys.argv[3]))
states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
print("RESULT " + json.dumps({"states": states, "hwm_mib": hwm()}))
"""

WRITE = r"""
import sys
from faceidx.store.location import IndexLocation
from faceidx_dev.synthetic_index import write_synthetic_landing
write_synthetic_landing(IndexLocation(output_uri=sys.argv[1]), int(sys.argv[2]))
"""


def _python(code: str, *args: str, env: dict[str, str], log: Path, timeout: float = 600) -> str:
    """Run ``code`` in a fresh interpreter, its output in ``log`` (read back; kept for a failure)."""
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            env=env,
            timeout=timeout,
        )
    text = log.read_text()
    assert done.returncode == 0, text[-4000:]
    return text


def _airflow_run(dag_id: str, task_id: str, conf: dict, when: str, env: dict[str, str], log: Path) -> dict:
    out = _python(CHILD, dag_id, json.dumps(conf), when, task_id, env=env, log=log)
    [line] = [line for line in out.splitlines() if line.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.slow
def test_the_airflow_task_stays_flat_while_the_job_grows_with_the_index(
    airflow_db, moto, tmp_path, monkeypatch
):
    create_maintenance_queue(moto)
    monkeypatch.setenv(f"AIRFLOW_VAR_{VAR_MAINTENANCE_JOB_QUEUE.upper()}", MAINTENANCE_JOB_QUEUE)
    monkeypatch.setenv("FACEIDX_BATCH_POLL_SECONDS", "1")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "dev"), str(REPO / "worker")])}
    measured: dict[int, dict[str, float]] = {}
    with LocalBatchCompute(moto.url, REPO / "worker", {}, max_parallel=1) as compute:
        for n in SIZES:
            for dag_id in ("face_vectors", "face_identities"):
                forget_runs(dag_id)
            output = str(tmp_path / f"index-{n}")
            _python(WRITE, output, str(n), env=env, log=tmp_path / f"write-{n}.log")
            ingest = [sys.executable, "-m", "faceidx.jobs", "ingest", "--output-uri", output]
            done = subprocess.run(ingest, capture_output=True, text=True, env=env, timeout=900, check=False)
            assert done.returncode == 0, done.stdout[-3000:]
            runs_before = len(compute.runs)
            when = "2026-11-20T10:00:00+00:00"
            conf = {"output_uri": output}
            sync = _airflow_run(
                "face_vectors", "sync_vectors", conf, when, env, tmp_path / f"vectors-{n}.log"
            )
            people = _airflow_run(
                "face_identities",
                "identities",
                {"output_uri": output, "full_recluster": True},
                "2026-11-20T11:00:00+00:00",
                env,
                tmp_path / f"people-{n}.log",
            )
            assert sync["states"] == {"sync_vectors": "success"}, sync
            assert people["states"]["identities"] == "success", people
            jobs = compute.runs[runs_before:]
            assert [r.exit_code for r in jobs] == [0, 0], [r.lines[-20:] for r in jobs]
            outcomes = {
                o["step"]: o
                for o in (json.loads(p.read_text()) for p in (Path(output) / "jobs").glob("*.json"))
            }
            measured[n] = {
                "airflow sync": sync["hwm_mib"],
                "airflow people": people["hwm_mib"],
                "job sync": outcomes["sync_vectors"]["peak_rss_mib"],
                "job people": outcomes["identities"]["peak_rss_mib"],
            }
    print(json.dumps(measured, indent=1))
    small, large = measured[min(SIZES)], measured[max(SIZES)]
    for side in ("airflow sync", "airflow people"):
        assert large[side] - small[side] <= FLAT_MIB, measured
        assert large[side] <= CEILING_MIB, measured
    if max(SIZES) >= 100 * min(SIZES):  # the work did grow: it went to the jobs
        assert large["job sync"] > small["job sync"] + 50, measured
        assert large["job people"] > small["job people"] + 50, measured
