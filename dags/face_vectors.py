"""
### face_vectors: the vector index brought up to the face table, when the table changed

Scheduled on the face table's Asset (`faceidx://index/face-table`): `face_table` emits an event after
each ingest that committed, and only then, so this DAG runs when there is something to sync and never
on a clock. The UI's *Assets* view shows the chain: `face_table` → the asset → `face_vectors` and
`face_identities`.

1. **sync_vectors**: for every model version, applies the table's change feed since the last sync to
   the LanceDB index (or rebuilds it), then maintains its ANN index. It is the index's heaviest write
   after a re-cluster, so it runs as an AWS Batch job on the maintenance queue (`compute` Param, see
   the Scaling page); its log shows where it ran, the job and the job's outcome.

A manual trigger syncs whatever is behind. Reruns are safe: a sync with nothing new changes nothing.
`output_uri` / `vectors_uri` empty: the Airflow Variables `faceidx_output_uri` / `faceidx_vectors_uri`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, dag

from faceidx.common.constants import FACE_TABLE_ASSET_URI, VAR_OUTPUT_URI, VAR_VECTORS_URI, WRITER_POOL
from faceidx.common.params import optional_param, param_or_variable
from faceidx.jobs.operator import IndexStepOperator
from faceidx.jobs.params import compute_param


@dag(
    dag_id="face_vectors",
    doc_md=__doc__,
    schedule=[Asset(FACE_TABLE_ASSET_URI)],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one sync at a time; events that arrive meanwhile start the next run
    tags=["faceidx", "index", "vectors"],
    default_args={
        "owner": "faceidx",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "execution_timeout": timedelta(hours=6),
    },
    params={
        "output_uri": optional_param(f"The index. Empty: the Airflow Variable {VAR_OUTPUT_URI}."),
        "vectors_uri": optional_param(
            f"The vector index. Empty: the Airflow Variable {VAR_VECTORS_URI}, else <output>/vectors."
        ),
        "compute": compute_param(),
    },
)
def face_vectors() -> None:
    IndexStepOperator(
        task_id="sync_vectors",
        step="sync_vectors",
        output_uri=param_or_variable("output_uri", VAR_OUTPUT_URI),
        vectors_uri=param_or_variable("vectors_uri", VAR_VECTORS_URI),
        pool=WRITER_POOL,
    )


face_vectors()
