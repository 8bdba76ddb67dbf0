"""face_reindex: queue already-uploaded images again, one data interval per DAG run.

Modules, by kind (the DAG file imports only this one, which imports nothing heavy):

* ``selection``: pure decisions: the data interval, prefix rendering, which listed objects to queue;
* ``events``: pure builders of S3-event-shaped SQS messages and of SendMessageBatch failure handling;
* ``index``: the landing files not yet ingested, read six columns at a time (pyarrow);
* ``lookup``: ``only_missing``: which candidates the landing files and the face table hold for the run's
  model version (the rule is :mod:`faceidx.store.indexed`, shared with the face table);
* ``tasks``: the task bodies that tie them together and log what they did; the AWS calls go through
  the AWS layer (``faceidx.aws.s3`` for listings and index reads, ``faceidx.aws.sqs`` for sends).
"""

from __future__ import annotations

# face_infra_bootstrap reads the input bucket from this Variable too (faceidx.infra.values).
VAR_INPUT_BUCKET = "faceidx_input_bucket"

# The suffixes the bootstrap's S3 notification sends to the queue (matched here case-insensitively).
DEFAULT_SUFFIXES = (".jpg", ".jpeg", ".png")

SELECT_AUTO = "auto"
SELECT_PREFIX = "prefix"
SELECT_LAST_MODIFIED = "last_modified"
SELECT_MODES = (SELECT_AUTO, SELECT_PREFIX, SELECT_LAST_MODIFIED)
