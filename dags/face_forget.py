"""
### face_forget: erase one image, face or person from the whole index, with a receipt

Manual only. One run forgets one target everywhere the index keeps it:

1. **forget**: ingests the pending landing files first (nothing of the target may wait there), reads
   the target's rows and keeps their embeddings, deletes the rows from every partition of the face
   table (every model version), the vectors from every version's vector table, the face crops and the
   face -> person mapping rows, then purges old table and vector versions (vacuum with retention 0)
   so no snapshot still holds them. It then **verifies**: the table holds no row of the target and a
   search with every captured embedding finds none of the forgotten faces. The receipt (what was
   removed from where, when, by whom, why, and the verification) is written to
   `<output>/receipts/forget/<UTC time>-<id>.json` and logged as a table.

**Params**: `target_type` (`image`: `s3://bucket/key`, every ETag of it; `face`: a face_id;
`person`: a person_id, once identities are built), `target`, `reason` (kept in the receipt, e.g. a
request number), `output_uri` / `vectors_uri` (empty: the Airflow Variables `faceidx_output_uri`,
`faceidx_vectors_uri`).

A target that is not in the index fails the run at once, changes nothing and writes no receipt.
Deleting an image from the input bucket needs no run: the S3 ObjectRemoved event reaches the table
as a tombstone and face_table's ingest step forgets it, with a receipt. See the erasure page of the docs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from faceidx.common.constants import DEFAULT_AWS_CONN_ID, VAR_OUTPUT_URI, VAR_VECTORS_URI, WRITER_POOL
from faceidx.common.params import optional_param, param_or_variable

TARGET_TYPES = ["image", "face", "person"]  # faceidx.erasure.forget.TARGET_TYPES (kept light here)


@dag(
    dag_id="face_forget",
    doc_md=__doc__,
    schedule=None,
    allowed_run_types=["manual"],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # erasures purge history: one at a time
    tags=["faceidx", "index", "erasure"],
    default_args={
        "owner": "faceidx",
        "retries": 1,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(hours=1),
    },
    params={
        "target_type": Param(
            "image",
            enum=TARGET_TYPES,
            description="image: s3://bucket/key (every ETag). face: a face_id. person: a person_id.",
        ),
        "target": optional_param(
            "What to forget: s3://bucket/key, a face_id or a person_id. Empty: the run fails at once "
            "(there is no default target).",
        ),
        "reason": optional_param(
            "Why (kept in the receipt), e.g. the erasure request's number. Empty: no reason recorded."
        ),
        "output_uri": optional_param(f"The index. Empty: the Airflow Variable {VAR_OUTPUT_URI}."),
        "vectors_uri": optional_param(
            f"The vector index. Empty: the Airflow Variable {VAR_VECTORS_URI}, else <output>/vectors."
        ),
    },
)
def face_forget() -> None:
    # A target that is not there fails at once (AirflowFailException, no retry); any other failure (a
    # lost lease, a commit that kept conflicting) is retried: the retry finishes from the intent record.
    @task(pool=WRITER_POOL)
    def forget(output_uri: str, vectors_uri: str, **context: Any) -> dict[str, Any]:
        from faceidx.erasure.tasks import forget_task, location_for, run_actor

        location = location_for(output_uri, vectors_uri, aws_conn_id=DEFAULT_AWS_CONN_ID)
        return forget_task(context["params"], location=location, actor=run_actor(context))

    forget(
        output_uri=param_or_variable("output_uri", VAR_OUTPUT_URI),
        vectors_uri=param_or_variable("vectors_uri", VAR_VECTORS_URI),
    )


face_forget()
