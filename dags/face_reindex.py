"""
### face_reindex: queue already-uploaded images again, one data interval per run

Each run covers one data interval (`@daily` by default: one UTC day) and:

1. **queue_images**: lists the input bucket under the rendered `prefix`, keeps the images of the
   interval, drops (with `only_missing`) those the face table, or a landing file not yet ingested,
   holds as `ok` with the same ETag for the run's model version, and sends one S3-event-shaped
   message per image to the work queue, 10 per SendMessageBatch. The worker handles them exactly like
   S3's own notifications. It logs a table: found, skipped by reason, queued.
2. **signal_indexing**: emits the Asset event `faceidx://work-queue/reindexed`; `face_indexing` is
   scheduled on it, so it starts GPU workers at once instead of at its next tick. Skipped (no event)
   when nothing was queued or on a dry run.

**Backfill from the UI** (the DAG must be unpaused for its runs, backfills included, to execute):
*Trigger* (▶) → *Backfill*, pick the date range (both ends included), a reprocess behaviour
(*Missing runs* the first time; *All runs* to redo intervals that already ran) and, under *Advanced
options*, the Params. One run is created per interval.

**Backfill through the REST API**:

```
POST /api/v2/backfills
{"dag_id": "face_reindex", "from_date": "2026-11-01T00:00:00Z", "to_date": "2026-11-07T00:00:00Z",
 "reprocess_behavior": "completed", "max_active_runs": 2,
 "dag_run_conf": {"bucket": "acme-photos", "prefix": "uploads/{{ ds }}/"}}
```

**Which images**: `prefix` is a template rendered with the run's interval (`{{ ds }}` = the day the
interval starts, `{{ ds_nodash }}`, `{{ data_interval_start }}`, `{{ data_interval_end }}`).
`select_by` `auto`: a prefix that uses the dates selects by itself; a static or empty prefix keeps
objects whose LastModified is in `[data_interval_start, data_interval_end)`.

**Re-running is safe**: with `only_missing` (the default) a rerun queues only what the index lacks.
Without it, every image of the interval is queued again; the duplicate rows carry the same bucket, key
and ETag and are removed by the index's dedup rule. Empty `bucket`, `queue_url` and `output_uri`
Params fall back to the Airflow Variables `faceidx_input_bucket`, `faceidx_queue_url` and
`faceidx_output_uri`.

**A new model pack**: set `model_pack`: every message carries `"model_pack": "<name>"`, the worker
indexes with that pack and its rows carry the new `model_version`, beside the old one. With
`only_missing`, only the images that pack has not indexed yet are queued. Then compare and switch
with face_models (see the model versions page of the docs).
The schedule is `FACEIDX_REINDEX_SCHEDULE` (a cron expression) when set.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from faceidx.common.constants import DEFAULT_AWS_CONN_ID, REINDEX_ASSET_URI, VAR_OUTPUT_URI, VAR_QUEUE_URL
from faceidx.common.params import optional_param
from faceidx.reindex import DEFAULT_SUFFIXES, SELECT_MODES, VAR_INPUT_BUCKET

SCHEDULE_CRON = os.environ.get("FACEIDX_REINDEX_SCHEDULE", "@daily")

REINDEXED = Asset(REINDEX_ASSET_URI)


def _param_or_variable(param: str, variable: str) -> str:
    return "{{ params." + param + " or var.value.get('" + variable + "', '') }}"


@dag(
    dag_id="face_reindex",
    doc_md=__doc__,
    # Data intervals, not trigger times: the run for 2026-11-20 covers [2026-11-20, 2026-11-21).
    schedule=CronDataIntervalTimetable(SCHEDULE_CRON, timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,  # backfills are explicit: Trigger -> Backfill, or POST /api/v2/backfills
    max_active_runs=4,
    tags=["faceidx", "reindex", "backfill"],
    default_args={
        "owner": "faceidx",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(minutes=30),
    },
    params={
        "bucket": optional_param(f"Input bucket. Empty: the Airflow Variable {VAR_INPUT_BUCKET}."),
        "prefix": optional_param(
            "Key prefix template, e.g. uploads/{{ ds }}/ ({{ ds }} = the day the interval "
            "starts). Empty: the whole bucket, filtered by LastModified.",
        ),
        "select_by": Param(
            "auto",
            enum=list(SELECT_MODES),
            description="auto: a dated prefix selects by itself, otherwise LastModified in the interval. "
            "prefix: everything under the prefix. last_modified: always filter by LastModified.",
        ),
        "suffixes": Param(
            list(DEFAULT_SUFFIXES),
            type="array",
            items={"type": "string"},
            minItems=1,
            description="Image extensions to queue (case-insensitive).",
        ),
        "only_missing": Param(
            True,
            type="boolean",
            description="Skip images the face table (or a landing file not yet ingested) holds as ok with "
            "the same ETag for this run's model: model_pack's, else the current model version.",
        ),
        "queue_url": optional_param(f"SQS work queue URL. Empty: the Airflow Variable {VAR_QUEUE_URL}."),
        "output_uri": optional_param(
            "The index (the worker's OUTPUT_URI), read by only_missing. Empty: the Airflow "
            f"Variable {VAR_OUTPUT_URI}.",
        ),
        "dry_run": Param(
            False, type="boolean", description="List and log what would be queued; send nothing."
        ),
        "model_pack": optional_param(
            "Model pack to index with (e.g. buffalo_l): every queued message carries it and the "
            "worker uses that pack, writing a new model_version beside the old one. With only_missing, "
            "images this pack already indexed are skipped. Empty: the job definition's pack.",
        ),
    },
)
def face_reindex() -> None:
    @task(execution_timeout=timedelta(hours=2))
    def queue_images(bucket: str, queue_url: str, output_uri: str, **context: Any) -> dict[str, Any]:
        from faceidx.reindex.tasks import queue_task

        return queue_task(
            context["params"],
            bucket=bucket,
            queue_url=queue_url,
            output_uri=output_uri,
            data_interval_start=context.get("data_interval_start"),
            data_interval_end=context.get("data_interval_end"),
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
            aws_conn_id=DEFAULT_AWS_CONN_ID,
        )

    @task(outlets=[REINDEXED], execution_timeout=timedelta(minutes=5))
    def signal_indexing(summary: dict[str, Any], **context: Any) -> dict[str, Any]:
        from faceidx.reindex.tasks import asset_extra, signal_reason

        reason = signal_reason(summary)
        if reason is not None:
            raise AirflowSkipException(reason)
        extra = asset_extra(summary, context["run_id"])
        context["outlet_events"][REINDEXED].extra = extra
        return extra

    summary = queue_images(
        bucket=_param_or_variable("bucket", VAR_INPUT_BUCKET),
        queue_url=_param_or_variable("queue_url", VAR_QUEUE_URL),
        output_uri=_param_or_variable("output_uri", VAR_OUTPUT_URI),
    )
    signal_indexing(summary)


face_reindex()
