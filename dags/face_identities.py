"""
### face_identities: faces become persons, incrementally, one model version at a time

**When**: on the face table's Asset event (`face_table` emits one after each ingest that committed,
and only then), and every Monday 00:00 UTC for the weekly full re-cluster. The UI's *Assets* view shows
the chain. **Where**: the `identities` step runs as an AWS Batch job on the maintenance queue when its
measured needs exceed 300 MiB, and always for a full re-cluster (`compute` Param); its log shows where
it ran and why, the job and the job's outcome.

Each run reads the faces of the model version (the Param, else the current one) that have no row in
`face_persons` yet, plus the buffer, and:

1. **gates** them: faces that failed the worker's quality gate (`quality_passed` false) are recorded
   as `gated` and never clustered;
2. **assigns** each passing face to the person whose nearest centroid is at least `threshold` similar
   and beats every other person by `margin` (siblings fall in the margin and wait instead of merging);
   a person never gets two faces of one photo;
3. **buffers** the rest and **promotes** groups of the buffer that pass the core rule to new persons
   (a lone face never becomes a person);
4. with `full_recluster` (or on the weekly cadence: the scheduled run of Monday 00:00 UTC)
   re-clusters every face of the version instead: kNN graph, label propagation, average linkage,
   person ids kept by overlap with the previous persons, and every correction of `face_people`
   replayed on top.

After a model change, `carry_from` (the old version) re-clusters the new version with the old
version's person ids and labels, matched through the faces both versions found in the same photos.

It logs a table: faces seen, passed, gated by reason, assigned, buffered, new persons, merges
proposed, items to review, seconds.

5. **review** (the standard provider's `HITLOperator`, one mapped task per item, in the UI's *Required
   Actions*): each proposed merge (two persons at least `merge_proposal` similar, one of them written
   by this run) and each face of this run that two persons claimed within the margin. *Accept*,
   *Reject* or *Skip*; unanswered items take *Skip* after 50 minutes, so the next table commit's run is
   never held up, and nothing to review skips the task. It waits in `awaiting_input`: no worker slot, and
   never the writers' pool;
6. **apply_review** records each answer as a correction (accepted merge: `merge`; rejected merge:
   `keep_apart`; accepted face: `move`; rejected face: `keep_apart`), replayed like every correction.

Faces already mapped are never processed again. Runs are safe to repeat and to
backfill (Trigger -> Backfill): a rerun finds nothing new. Empty `output_uri` falls back to the Airflow
Variable `faceidx_output_uri`. See the People page of the docs for the algorithm and its thresholds.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from faceidx.common.constants import DEFAULT_AWS_CONN_ID, FACE_TABLE_ASSET_URI, VAR_OUTPUT_URI, WRITER_POOL
from faceidx.common.params import optional_param, param_or_variable
from faceidx.jobs.operator import IndexStepOperator
from faceidx.jobs.params import compute_param
from faceidx.people.review import REVIEW_DEFAULT, REVIEW_OPTIONS, REVIEW_TIMEOUT

FULL_RECLUSTER_CRON = "0 0 * * 1"  # Monday 00:00 UTC: faceidx.people.tasks.wants_full_recluster


@dag(
    dag_id="face_identities",
    doc_md=__doc__,
    # on every face table commit (its Asset event), and weekly for the full re-cluster
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(FULL_RECLUSTER_CRON, timezone="UTC"),
        assets=[Asset(FACE_TABLE_ASSET_URI)],
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # runs write the same persons tables: one at a time
    tags=["faceidx", "people"],
    default_args={
        "owner": "faceidx",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "execution_timeout": timedelta(hours=2),
    },
    params={
        "full_recluster": Param(
            False, type="boolean", description="Re-cluster every face of the version (else incremental)."
        ),
        "model_version": optional_param("Model version. Empty: the current one (faceidx models)."),
        "threshold": optional_param(
            "Cosine similarity an assignment needs. Empty: the version's calibrated threshold at FAR "
            "1e-4 (see the Search page), else ClusterPolicy's default (0.30).",
            "number",
        ),
        "margin": optional_param(
            "How much the best person must beat the runner-up. Empty: the default (0.05).", "number"
        ),
        "carry_from": optional_param(
            "After a model change: a full re-cluster that takes person ids and labels from this older "
            "model version (the faces both found in the same photos). Empty: none."
        ),
        "merge_proposal": optional_param(
            "Centroid similarity at which two persons are proposed for a merge (a review task). "
            "Empty: the default (0.55).",
            "number",
        ),
        "output_uri": optional_param(f"The index. Empty: the Airflow Variable {VAR_OUTPUT_URI}."),
        "compute": compute_param(),
    },
)
def face_identities() -> None:
    @task
    def review_prompts(report: Any) -> list[dict[str, str]]:
        from faceidx.people.tasks import review_prompts

        return review_prompts(report)

    @task(pool=WRITER_POOL, retries=0)  # a correction is not repeated blindly
    def apply_review(output_uri: str, report: Any, answers: Any) -> dict[str, Any]:
        from faceidx.erasure.tasks import location_for
        from faceidx.people.tasks import apply_review_task

        location = location_for(output_uri, aws_conn_id=DEFAULT_AWS_CONN_ID)
        return apply_review_task(location, report, list(answers))

    output_uri = param_or_variable("output_uri", VAR_OUTPUT_URI)
    report = IndexStepOperator(
        task_id="identities",
        step="identities",
        output_uri=output_uri,
        context_params=("dag_params", "data_interval_start"),
        pool=WRITER_POOL,
    ).output
    # one Required Action per item; no item: the mapped task is skipped, and apply_review with it
    review = HITLOperator.partial(
        task_id="review",
        options=REVIEW_OPTIONS,
        defaults=[REVIEW_DEFAULT],
        response_timeout=REVIEW_TIMEOUT,
        retries=0,
    ).expand_kwargs(review_prompts(report))
    apply_review(output_uri=output_uri, report=report, answers=review.output)


face_identities()
