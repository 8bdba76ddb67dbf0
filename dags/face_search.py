"""
### face_search: find the faces of one photo in the index

Manual only. One run searches the vector index with one photo:

1. **search**: downloads the photo (`photo`: `s3://bucket/key`), detects, aligns and embeds its faces
   with the worker's own model code and pack (`FACEIDX_MODEL_DIR` on the Airflow workers), and finds
   each face's `k` most similar indexed faces of one model version. The log shows the threshold in
   force (its FAR and where it came from), then one table per face of the photo: rank, similarity
   (cosine), verdict (same person / unknown), image, face index, box and person (once identities
   exist). Matches below the threshold are counted, not listed, unless `list_all`.

**Params**: `photo` (required: the form starts empty and an empty run fails at once), `k` (matches
per face), `model_version` (empty: the current one, see the model-versions page), `quality_only`
(match only faces that passed the quality checks), `far` / `min_similarity` (the threshold: the
calibrated one at a false-accept rate, default 1e-4, or a similarity), `list_all`, `persons` (rank
persons instead of faces), `output_uri` / `vectors_uri` (empty: the Airflow
Variables `faceidx_output_uri`, `faceidx_vectors_uri`).

A photo that cannot be read, has no face, or a version the index does not hold fails the run with the
reason; the run changes nothing. The same search from a shell: `faceidx search PHOTO`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from faceidx.common.constants import DEFAULT_AWS_CONN_ID, VAR_OUTPUT_URI, VAR_VECTORS_URI
from faceidx.common.params import optional_param, param_or_variable


@dag(
    dag_id="face_search",
    doc_md=__doc__,
    schedule=None,
    allowed_run_types=["manual"],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["faceidx", "index", "search"],
    default_args={
        "owner": "faceidx",
        "retries": 1,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(minutes=15),
    },
    params={
        "photo": optional_param(
            "The photo to search with: s3://bucket/key (required). Empty: the run fails at once "
            "(there is no default photo).",
        ),
        "k": Param(10, type="integer", minimum=1, maximum=1000, description="Matches per face of the photo."),
        "model_version": optional_param(
            "The model version to search. Empty: the current one (faceidx models use VERSION)."
        ),
        "quality_only": Param(
            False, type="boolean", description="Match only indexed faces that passed the quality checks."
        ),
        "far": optional_param(
            "The false-accept rate a 'same person' match is held to: the version's calibrated threshold "
            "for it. Empty: 1e-4. Without a calibration (or with too few pairs for it), the documented "
            "default 0.40 is used and the log says so.",
            "number",
            exclusiveMinimum=0,
            exclusiveMaximum=1,
        ),
        "min_similarity": optional_param(
            "A cosine similarity to use as the threshold instead of the calibrated one. Empty: from far.",
            "number",
            minimum=-1,
            maximum=1,
        ),
        "list_all": Param(
            False,
            type="boolean",
            description="List the matches below the threshold too (as unknown). Off: they are counted only.",
        ),
        "persons": Param(
            False,
            type="boolean",
            description="Rank persons (by their best face or centroid) for each face of the photo, with "
            "label, id, similarity, verdict and face count, instead of faces.",
        ),
        "output_uri": optional_param(f"The index. Empty: the Airflow Variable {VAR_OUTPUT_URI}."),
        "vectors_uri": optional_param(
            f"The vector index. Empty: the Airflow Variable {VAR_VECTORS_URI}, else <output>/vectors."
        ),
    },
)
def face_search() -> None:
    @task(retries=0)  # a photo without a face has none on a retry either
    def search(output_uri: str, vectors_uri: str, **context: Any) -> dict[str, Any]:
        from faceidx.erasure.tasks import location_for
        from faceidx.search.tasks import search_task

        location = location_for(output_uri, vectors_uri, aws_conn_id=DEFAULT_AWS_CONN_ID)
        return search_task(context["params"], location=location)

    search(
        output_uri=param_or_variable("output_uri", VAR_OUTPUT_URI),
        vectors_uri=param_or_variable("vectors_uri", VAR_VECTORS_URI),
    )


face_search()
