"""
### face_table: landing files into the face table, compacted and vacuumed; an Asset event per commit

Every hour (`@hourly`), one run:

1. **ingest**: every pending landing file (`<output>/faces/dt=*/part-*.parquet`, written by the
   workers) goes into the Delta face table `<output>/table/faces/` in one MERGE commit per round of
   `max_files`: validated (a file that is not a landing file, or a row whose embedding has the wrong
   dimension, is set aside under `<output>/faces-rejected/` with its reason), one outcome per image
   and model version, S3 ObjectRemoved tombstones erase the image's older rows in the same commit and
   are then forgotten everywhere else (vectors, crops, receipts). Landing files are deleted only
   after the commit.
2. **compact**: rewrites the small files of the `indexed_date` partitions of the run's data interval
   into files of about `target_file_mb`.
3. **vacuum**: deletes data files that no table version younger than `retention_hours` needs.
4. **announce**: when the ingest committed, emits the face table's Asset event
   (`faceidx://index/face-table`): `face_vectors` (the vector sync) and `face_identities` (people) are
   scheduled on it. Nothing committed: skipped, and nothing downstream starts.
5. **report**: one table of what the run did and what the table holds.

Where each step runs: small ingests in this task; compaction and vacuum (and any step whose measured
needs exceed 300 MiB) as AWS Batch jobs on the maintenance queue (`compute` Param). Each task's log
shows where it ran and why, the job, and the job's outcome.

**Re-running is safe**: a rerun finds no landing file and changes nothing; a run that stopped after its
commit finds its landing files in the commit's metadata and only deletes them. A failed compaction
leaves the table as it was (Delta commits are atomic); the files it wrote are removed by a vacuum.

**Backfill from the UI** (*Trigger* → *Backfill*): each run's data interval chooses the partitions it
compacts; every run ingests whatever is pending. `output_uri` / `vectors_uri` empty: the Airflow
Variables `faceidx_output_uri` / `faceidx_vectors_uri`. See the face table page of the docs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, Param, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from faceidx.common.constants import (
    DEFAULT_AWS_CONN_ID,
    FACE_TABLE_ASSET_URI,
    VAR_OUTPUT_URI,
    VAR_VECTORS_URI,
    WRITER_POOL,
)
from faceidx.common.params import optional_param, param_or_variable
from faceidx.jobs.operator import IndexStepOperator
from faceidx.jobs.params import compute_param

FACE_TABLE = Asset(FACE_TABLE_ASSET_URI)
DEFAULT_MAX_FILES = 500
DEFAULT_RETENTION_HOURS = 168  # faceidx.store.table.DEFAULT_RETENTION_HOURS (kept light here)
DEFAULT_TARGET_FILE_MB = 128  # faceidx.store.table.DEFAULT_TARGET_FILE_BYTES


@dag(
    dag_id="face_table",
    doc_md=__doc__,
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,  # backfills are explicit: Trigger -> Backfill
    max_active_runs=1,  # one writer of the table at a time
    tags=["faceidx", "index", "table"],
    default_args={
        "owner": "faceidx",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "execution_timeout": timedelta(minutes=50),
    },
    params={
        "output_uri": optional_param(f"The index. Empty: the Airflow Variable {VAR_OUTPUT_URI}."),
        "vectors_uri": optional_param(
            f"The vector index. Empty: the Airflow Variable {VAR_VECTORS_URI}, else <output>/vectors."
        ),
        "max_files": Param(
            DEFAULT_MAX_FILES,
            type="integer",
            minimum=1,
            maximum=10000,
            description="Landing files per MERGE commit; the ingest step repeats until none is left.",
        ),
        "target_file_mb": Param(
            DEFAULT_TARGET_FILE_MB,
            type="integer",
            minimum=1,
            maximum=1024,
            description="Compaction's target data file size in MiB.",
        ),
        "compute": compute_param(),
        "retention_hours": Param(
            DEFAULT_RETENTION_HOURS,
            type="integer",
            minimum=0,
            description="Vacuum keeps the files of table versions younger than this (time travel, "
            "the vector index's change feed). 0 removes every old version's files.",
        ),
    },
)
def face_table() -> None:
    def _location(output_uri: str, vectors_uri: str) -> Any:
        from faceidx.erasure.tasks import location_for

        return location_for(output_uri, vectors_uri, aws_conn_id=DEFAULT_AWS_CONN_ID)

    output = param_or_variable("output_uri", VAR_OUTPUT_URI)
    vectors = param_or_variable("vectors_uri", VAR_VECTORS_URI)

    def _step(step: str, **kwargs: Any) -> IndexStepOperator:
        return IndexStepOperator(
            task_id=step, step=step, output_uri=output, vectors_uri=vectors, pool=WRITER_POOL, **kwargs
        )

    ingested = _step("ingest", step_params={"max_files": "{{ params.max_files }}"})
    compacted = _step(
        "compact", step_params={"target_file_mb": "{{ params.target_file_mb }}"}, context_params=("days",)
    )
    vacuumed = _step("vacuum", step_params={"retention_hours": "{{ params.retention_hours }}"})

    @task(outlets=[FACE_TABLE])
    def announce(ingested: Any, **context: Any) -> dict[str, Any]:
        """The face table's Asset event, when the ingest committed: face_vectors and face_identities
        are scheduled on it. No commit: skipped, so nothing downstream runs for nothing."""
        from faceidx.maintenance.tasks import table_event

        extra = table_event(ingested, context["run_id"])
        if extra is None:
            raise AirflowSkipException(
                f"the ingest committed nothing (table version {ingested.get('version_after')}): no Asset "
                "event, so face_vectors and face_identities are not started for nothing"
            )
        context["outlet_events"][FACE_TABLE].extra = extra
        return extra

    @task
    def report(
        output_uri: str,
        vectors_uri: str,
        *,
        ingested: Any,  # each step's summary (an XCom of IndexStepOperator)
        compacted: Any,
        vacuumed: Any,
    ) -> dict[str, Any]:
        from faceidx.maintenance.tasks import report_task

        return report_task(_location(output_uri, vectors_uri), ingested, compacted, vacuumed)

    ingested >> compacted >> vacuumed
    announce(ingested.output)
    report(output, vectors, ingested=ingested.output, compacted=compacted.output, vacuumed=vacuumed.output)


face_table()
