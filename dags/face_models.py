"""
### face_models: list the index's model versions, make one current, or drop one

Manual only. Every row of the face table carries the `model_version` that produced it and the table is
partitioned by it, so a new model pack is indexed beside the old one. Search and comparison use one
version, the **current** one:

1. **models**: runs the `action` Param and logs a table of the versions (rows, faces, images, first
   and last indexed, `*` marking the current one):
   - `list`: only the table;
   - `use` `version`: makes it current; recorded in the registry's history (who, when, from, to).
     An unknown version is refused;
   - `drop` `version`: deletes its rows from the face table (then purges old table versions) and its
     vector table. The current version is refused: switch first.

Never chosen and only one version in the index: that one is current (the log says so). Several and
none chosen: search refuses until one is chosen here or with `faceidx models use`. The registry lives
at `<output>/table/_faceidx/models.json`. See the model versions page of the docs for rolling a new pack.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from faceidx.common.constants import DEFAULT_AWS_CONN_ID, VAR_OUTPUT_URI, VAR_VECTORS_URI, WRITER_POOL
from faceidx.common.params import optional_param, param_or_variable

ACTIONS = ["list", "use", "drop"]  # faceidx.models.tasks.ACTIONS (kept light here)


@dag(
    dag_id="face_models",
    doc_md=__doc__,
    schedule=None,
    allowed_run_types=["manual"],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["faceidx", "index", "model-versions"],
    default_args={
        "owner": "faceidx",
        "retries": 1,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(hours=1),
    },
    params={
        "action": Param(
            "list",
            enum=ACTIONS,
            description="list: the versions. use: make version current. drop: delete version's rows "
            "and vectors (never the current one).",
        ),
        "version": optional_param("The model version for use / drop. Empty: only list allows it."),
        "output_uri": optional_param(f"The index. Empty: the Airflow Variable {VAR_OUTPUT_URI}."),
        "vectors_uri": optional_param(
            f"The vector index. Empty: the Airflow Variable {VAR_VECTORS_URI}, else <output>/vectors."
        ),
    },
)
def face_models() -> None:
    @task(retries=0, pool=WRITER_POOL)  # refusals are not transient
    def models(output_uri: str, vectors_uri: str, **context: Any) -> dict[str, Any]:
        from faceidx.erasure.tasks import location_for, run_actor
        from faceidx.models.tasks import models_task

        location = location_for(output_uri, vectors_uri, aws_conn_id=DEFAULT_AWS_CONN_ID)
        return models_task(context["params"], location=location, actor=run_actor(context))

    models(
        output_uri=param_or_variable("output_uri", VAR_OUTPUT_URI),
        vectors_uri=param_or_variable("vectors_uri", VAR_VECTORS_URI),
    )


face_models()
