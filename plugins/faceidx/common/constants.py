"""Names shared by the DAGs, the infra specs and the worker contract. One place to rename them."""

from __future__ import annotations

PROJECT_TAG = "faceidx"

PRIMARY_COMPUTE_ENVIRONMENT = "face-recognition-primary"
SECONDARY_COMPUTE_ENVIRONMENT = "face-recognition-secondary"
PRIMARY_JOB_QUEUE = "face-recognition-primary-queue"
SECONDARY_JOB_QUEUE = "face-recognition-secondary-queue"
JOB_DEFINITION = "face-recognition-job"
JOB_NAME_PREFIX = "face-indexing"

# The index's heavy steps (vector sync, re-cluster, compaction, vacuum, erasure's purge) run as Batch jobs
# of the same image's second entry point (`python -m faceidx.jobs STEP ...`) on a CPU environment.
MAINTENANCE_COMPUTE_ENVIRONMENT = "face-recognition-maintenance"
MAINTENANCE_JOB_QUEUE = "face-recognition-maintenance-queue"
MAINTENANCE_JOB_DEFINITION = "face-recognition-maintenance-job"
MAINTENANCE_JOB_NAME_PREFIX = "face-index"

DEFAULT_AWS_CONN_ID = "aws_default"

# The Airflow pool of the tasks that write the index (face_table, face_identities, face_people,
# face_forget, face_models): one slot, so their runs queue in Airflow instead of waiting for the index
# lease in a worker slot. Create it once: `airflow pools set faceidx_index_writers 1 "..."` (make up and
# the compose stack do).
WRITER_POOL = "faceidx_index_writers"
WRITER_POOL_DESCRIPTION = "faceidx: one task at a time writes the index (the index lease enforces it too)"

# Airflow Variables read at run time (through templates), never at parse time.
VAR_QUEUE_URL = "faceidx_queue_url"
VAR_OUTPUT_URI = "faceidx_output_uri"
# Where the vector index lives when not beside the table (<output>/vectors): make up uses a local folder.
VAR_VECTORS_URI = "faceidx_vectors_uri"
# The maintenance job queue (face_infra_bootstrap sets it); unset: the index steps stay in Airflow.
VAR_MAINTENANCE_JOB_QUEUE = "faceidx_maintenance_job_queue"

# Batch job states that count as "active": the worker is coming or running.
ACTIVE_JOB_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")

# face_reindex emits this Asset after queueing a backfill; face_indexing is also scheduled on it.
REINDEX_ASSET_URI = "faceidx://work-queue/reindexed"

# face_table emits this Asset after each ingest commit that changed the face table; face_vectors (the
# vector sync) and face_identities (people) are scheduled on it, not on a clock.
FACE_TABLE_ASSET_URI = "faceidx://index/face-table"

# The worker's exit code when an inference lane made no progress (PROGRESS_TIMEOUT_SECONDS): it has
# released every message it held, and its job must be retried on a fresh container.
WORKER_EXIT_STALLED = 4

# USD per g4dn.xlarge spot instance-hour: the cost estimates' default (the spot_price_per_hour Param).
DEFAULT_SPOT_PRICE_PER_HOUR = 0.21
