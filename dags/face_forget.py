"""
### face_forget: erase one image, face or person from the whole index, with a receipt

Manual only. One run forgets one target everywhere the index keeps it:

0. **preview** and **approve** (only with `require_approval`): `preview` counts, without writing
   anything, what would be removed (face table rows per model version, faces, images, crops) and
   `approve` (the standard provider's `ApprovalOperator`) waits in the UI's *Required Actions* with
   that count until a user approves or rejects. *Reject* (or no answer within 7 days) deletes nothing:
   `forget` is skipped and the run ends. The approving user is named in the receipt (`approver`).
1. **forget**: ingests the pending landing files first (nothing of the target may wait there), reads
   the target's rows and keeps their embeddings, deletes the rows from every partition of the face
   table (every model version), the vectors from every version's vector table, the face crops and the
   face -> person mapping rows, then purges old table and vector versions (vacuum with retention 0)
   so no snapshot still holds them. It then **verifies**: the table holds no row of the target and a
   search with every captured embedding finds none of the forgotten faces. The receipt (what was
   removed from where, when, by whom, why, and the verification) is written to
   `<output>/receipts/forget/<UTC time>-<id>.json` and logged as a table. It runs in this task while
   the index is small, and as an AWS Batch job of the maintenance queue when its purge would add more
   than 256 MiB to the task (`compute` Param; the log shows where and why).

**Params**: `require_approval` (default off), `target_type` (`image`: `s3://bucket/key`, every ETag
of it; `face`: a face_id; `person`: a person_id, once identities are built), `target`, `reason` (kept
in the receipt, e.g. a request number), `output_uri` / `vectors_uri` (empty: the Airflow Variables
`faceidx_output_uri`, `faceidx_vectors_uri`).

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
from faceidx.erasure.approval import APPROVAL_TIMEOUT, ForgetApprovalOperator
from faceidx.jobs.operator import IndexStepOperator
from faceidx.jobs.params import compute_param

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
        "require_approval": Param(
            False,
            type="boolean",
            description="Wait for a user to approve the erasure in the UI (Required Actions), shown "
            "what would be removed; the approver is named in the receipt. Off: forget at once.",
        ),
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
        "compute": compute_param(),
    },
)
def face_forget() -> None:
    @task.branch
    def preview(output_uri: str, vectors_uri: str, **context: Any) -> str:
        """With require_approval: count what would be removed (read only) for the approval's body."""
        if not context["params"].get("require_approval"):
            return "forget"
        from faceidx.erasure.tasks import location_for, preview_task

        location = location_for(output_uri, vectors_uri, aws_conn_id=DEFAULT_AWS_CONN_ID)
        context["ti"].xcom_push(key="body", value=preview_task(context["params"], location=location)["body"])
        return "approve"

    # Waits in awaiting_input: no worker slot, and the default pool, never the writers' one.
    approve = ForgetApprovalOperator(
        task_id="approve",
        subject="face_forget: forget {{ params.target_type }} {{ params.target }}?",
        body="{{ ti.xcom_pull(task_ids='preview', key='body') }}",
        defaults="Reject",
        response_timeout=APPROVAL_TIMEOUT,
        retries=0,
    )

    # A target that is not there fails at once (no retry); any other failure (a lost lease, a commit
    # that kept conflicting) is retried: the retry finishes from the intent record. In this task while
    # the index is small; a Batch job of the maintenance queue when its purge outgrows an Airflow
    # worker (faceidx.jobs.needs: the compute Param).
    uris = {
        "output_uri": param_or_variable("output_uri", VAR_OUTPUT_URI),
        "vectors_uri": param_or_variable("vectors_uri", VAR_VECTORS_URI),
    }
    gate = preview(**uris)
    done = IndexStepOperator(
        task_id="forget",
        step="forget",
        context_params=("dag_params", "actor", "approver"),
        pool=WRITER_POOL,
        trigger_rule="none_failed_min_one_success",
        **uris,
    )
    gate >> [approve, done]
    approve >> done


face_forget()
