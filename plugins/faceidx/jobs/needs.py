"""Where each index step runs, and with how much memory: from the step's measured needs.

A step's peak memory grows with the faces it touches; ``benchmarks/bench_steps.py`` measures it (the
job entry point's own peak RSS, in a child process per size) and :data:`MODELS` holds the fitted
line: ``base_mib + kib_per_face x faces``. Airflow reads only metadata to size a step (the Delta log's
``numRecords`` per file, the landing files' sizes), so the task stays small whatever the index holds.

Placement (``compute`` Param):

* ``auto``: a step *heavy in kind* (compaction, vacuum, the vector sync, a full re-cluster) runs on
  the maintenance queue; a light one (an ingest, an incremental people run) stays in the Airflow task
  while its faces add at most :data:`AIRFLOW_STEP_MIB` to it (above the libraries, which the task has
  imported already), and goes to Batch above it. Without a
  maintenance queue (the Variable ``faceidx_maintenance_job_queue`` is unset: no bootstrap yet) every
  step stays in Airflow up to :data:`AIRFLOW_REFUSE_MIB`, and is refused above, saying what to do.
* ``batch``: always the queue; ``airflow``: always the task (the estimate is still logged).

A Batch step asks for ``estimate x 1.25`` (at least 2 GiB) and the vCPUs its model says; a step whose
request exceeds :data:`JOB_MAX_MEMORY_MIB` (what the maintenance environment's largest instance can
give) is refused before anything is submitted.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from faceidx.infra.values import MAINTENANCE_JOB_MAX_MEMORY_MIB
from faceidx.store.location import IndexLocation

# Bytes a landing file spends per face row (Parquet, 512-d float32 embedding, zstd): measured on the
# workers' files by benchmarks/bench_steps.py; used to turn landing bytes into rows without reading them.
LANDING_BYTES_PER_ROW = 2000

# A light step stays in the Airflow task while its faces add at most this much (MiB) to the task.
AIRFLOW_STEP_MIB = int(os.environ.get("FACEIDX_AIRFLOW_STEP_MIB", "256"))
# Without a maintenance queue, a step that would need more than this in an Airflow worker is refused.
AIRFLOW_REFUSE_MIB = int(os.environ.get("FACEIDX_AIRFLOW_REFUSE_MIB", "2048"))
# The most memory one maintenance job may ask for: the largest default instance type's allocatable memory
# (infra's MAINTENANCE_JOB_MAX_MEMORY_MIB); an account with larger types raises it here.
JOB_MAX_MEMORY_MIB = int(os.environ.get("FACEIDX_JOB_MAX_MEMORY_MIB", str(MAINTENANCE_JOB_MAX_MEMORY_MIB)))
JOB_MIN_MEMORY_MIB = 2048
JOB_MEMORY_HEADROOM = 1.25

COMPUTE_CHOICES = ("auto", "batch", "airflow")


class PlacementError(RuntimeError):
    """The step cannot run where it was asked to, or anywhere: the message says what to do."""


@dataclass(frozen=True)
class StepModel:
    """Peak memory of a step as a line in the faces it touches, measured; its vCPUs; its kind."""

    base_mib: float
    kib_per_face: float
    vcpus: int
    heavy: bool  # heavy in kind: runs on Batch whenever a maintenance queue exists

    def memory_mib(self, faces: int) -> int:
        return math.ceil(self.base_mib + self.added_mib(faces))

    def added_mib(self, faces: int) -> int:
        """What the faces add above the libraries the step imports (an Airflow task has them already)."""
        return math.ceil(self.kib_per_face * faces / 1024)


# Fitted on benchmarks/bench_steps.py's measurements (10^3, 10^4, 10^5 faces; peak RSS of the job's
# process): see the Scaling page of the docs for the table.
# Measured peaks (MiB) at 10^3 / 10^4 / ~8 x 10^4 faces: ingest 244 / 525 / 2,236 (98,447 landing
# rows); sync_vectors 255 / 504 / 1,930; full re-cluster 212 / 706 / 1,380; vacuum 113 and compaction
# 129 at every size. Compaction's slope is kept from the files it rewrites (one partition a group at a
# time: not exercised by the bench, whose partitions are already compact); an incremental people run is
# sized like a full one (an upper bound: it reads the persons and the new faces only).
# An erasure of one image (its delete, the purge of old table and vector versions, the verification):
# 329 / 621 / 1,206 MiB and 1.3 / 2.2 / 128 s at 10^3 / 10^4 / ~8 x 10^4 faces in the table.
FORGET_BASE_MIB = 520
FORGET_KIB_PER_FACE = 11.0
MODELS: dict[str, StepModel] = {
    "ingest": StepModel(base_mib=320, kib_per_face=23.5, vcpus=2, heavy=False),
    "compact": StepModel(base_mib=260, kib_per_face=6.0, vcpus=2, heavy=True),
    "vacuum": StepModel(base_mib=150, kib_per_face=0.0, vcpus=1, heavy=True),
    "sync_vectors": StepModel(base_mib=300, kib_per_face=24.0, vcpus=4, heavy=True),
    "identities": StepModel(base_mib=600, kib_per_face=12.0, vcpus=2, heavy=False),
    "identities_full": StepModel(base_mib=600, kib_per_face=12.0, vcpus=2, heavy=True),
    "forget": StepModel(base_mib=FORGET_BASE_MIB, kib_per_face=FORGET_KIB_PER_FACE, vcpus=2, heavy=False),
}


@dataclass(frozen=True)
class Size:
    """What a step touches, read from metadata only."""

    faces: int
    basis: str


@dataclass(frozen=True)
class Placement:
    step: str
    model: str
    where: str  # "batch" or "airflow"
    faces: int
    basis: str
    estimate_mib: int
    memory_mib: int  # what the job asks for (Batch only)
    vcpus: int
    reason: str
    job_queue: str = ""

    @property
    def on_batch(self) -> bool:
        return self.where == "batch"

    def rows(self) -> list[tuple[str, Any]]:
        rows: list[tuple[str, Any]] = [
            ("step", self.step if self.model == self.step else f"{self.step} ({self.model})"),
            ("faces in scope", f"{self.faces:,} ({self.basis})"),
            ("estimated peak memory", f"{self.estimate_mib:,} MiB"),
            ("runs", f"AWS Batch job on {self.job_queue}" if self.on_batch else "in this Airflow task"),
            ("why", self.reason),
        ]
        if self.on_batch:
            rows.append(("job asks for", f"{self.vcpus} vCPU, {self.memory_mib:,} MiB"))
        return rows


def model_key(step: str, params: Mapping[str, Any]) -> str:
    """The measured model of a step: a full re-cluster is not an incremental people run."""
    if step == "identities":
        dag_params = params.get("params", {}) or {}
        if params.get("full") or dag_params.get("full_recluster") or dag_params.get("carry_from"):
            return "identities_full"
    return step


def place(step: str, model: str, size: Size, *, compute: str, job_queue: str) -> Placement:
    """Where ``step`` runs and what it asks for. Pure: the sizes come from :func:`measure`."""
    if compute not in COMPUTE_CHOICES:
        raise PlacementError(f"compute must be one of {', '.join(COMPUTE_CHOICES)}, not {compute!r}")
    shape = MODELS[model]
    estimate = shape.memory_mib(size.faces)
    memory = max(JOB_MIN_MEMORY_MIB, math.ceil(estimate * JOB_MEMORY_HEADROOM / 1024) * 1024)
    where, reason = _where(shape, estimate, shape.added_mib(size.faces), compute=compute, job_queue=job_queue)
    if where == "batch" and memory > JOB_MAX_MEMORY_MIB:
        raise PlacementError(
            f"{step} needs about {estimate:,} MiB for {size.faces:,} faces ({size.basis}); a maintenance job "
            f"can ask for at most {JOB_MAX_MEMORY_MIB:,} MiB (FACEIDX_JOB_MAX_MEMORY_MIB, the largest "
            "instance of the maintenance compute environment). Nothing was submitted. Add a larger "
            "instance type to infra/batch/compute-environment-maintenance.json and raise the limit, or "
            "split the work (the vector index shards by model version and month)."
        )
    return Placement(
        step=step,
        model=model,
        where=where,
        faces=size.faces,
        basis=size.basis,
        estimate_mib=estimate,
        memory_mib=memory,
        vcpus=shape.vcpus,
        reason=reason,
        job_queue=job_queue if where == "batch" else "",
    )


def _where(shape: StepModel, estimate: int, added: int, *, compute: str, job_queue: str) -> tuple[str, str]:
    if compute == "airflow":
        return "airflow", "compute=airflow"
    if compute == "batch":
        if not job_queue:
            raise PlacementError(
                "compute=batch, but no maintenance job queue is known: run face_infra_bootstrap (it "
                "creates the queue and sets the Airflow Variable faceidx_maintenance_job_queue), or set "
                "the Variable to the queue's name."
            )
        return "batch", "compute=batch"
    if job_queue:
        if shape.heavy:
            return "batch", "heavy in kind: it runs on the maintenance queue whatever its size"
        if added > AIRFLOW_STEP_MIB:
            return (
                "batch",
                f"its faces add {added:,} MiB, over the {AIRFLOW_STEP_MIB} MiB a step may add in Airflow",
            )
        return (
            "airflow",
            f"small: its faces add {added:,} MiB of the {AIRFLOW_STEP_MIB} MiB a step may add in Airflow",
        )
    if estimate > AIRFLOW_REFUSE_MIB:
        raise PlacementError(
            f"this step needs about {estimate:,} MiB, more than an Airflow worker should give "
            f"({AIRFLOW_REFUSE_MIB:,} MiB, FACEIDX_AIRFLOW_REFUSE_MIB), and no maintenance job queue is "
            "known. Run face_infra_bootstrap (it creates the queue and sets the Airflow Variable "
            "faceidx_maintenance_job_queue), or set the compute Param to airflow to run it here anyway."
        )
    return "airflow", "no maintenance queue (the Variable faceidx_maintenance_job_queue is unset)"


def measure(step: str, location: IndexLocation, params: Mapping[str, Any]) -> Size:
    """The faces a step touches, from metadata: the Delta log's per-file ``numRecords`` (the interval's
    partitions for a compaction) or the landing files' sizes (an ingest)."""
    if step == "ingest":
        from faceidx.store.landing import LandingStore

        pending = LandingStore(location).pending()
        # one commit takes max_files files: the largest round bounds the memory, not the whole backlog
        per_round = int(params.get("max_files") or len(pending) or 1)
        largest = sum(sorted((file.size for file in pending), reverse=True)[:per_round])
        basis = f"{len(pending)} landing file(s), the largest round of {per_round}: {largest / 2**20:.1f} MiB"
        return Size(largest // LANDING_BYTES_PER_ROW, basis)
    days = {str(day) for day in params.get("days", [])} if step == "compact" else None
    faces, files = table_rows(location, days)
    scope = "the interval's partitions" if days is not None else "the face table"
    return Size(faces, f"{scope}: {files} data file(s), from the Delta log")


def table_rows(location: IndexLocation, days: set[str] | None = None) -> tuple[int, int]:
    """Rows and data files of the face table (of the ``indexed_date`` partitions in ``days``), from the
    Delta log alone. (0, 0) before the first ingest."""
    from faceidx.store.table import FaceTable

    table = FaceTable.open_if_exists(location)
    if table is None:
        return 0, 0
    return table.row_count(days)
