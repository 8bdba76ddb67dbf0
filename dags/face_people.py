"""
### face_people: correct the persons (label, merge, split, move) or re-cluster now

Manual. Each correction is appended to `person_events` (who, when, what, with the faces it names)
and applied to the persons tables at once; every full re-cluster of `face_identities` replays all of
them, so a correction is never lost:

| action | needs | effect |
| --- | --- | --- |
| label | person_id, label (empty clears) | names the person |
| merge | person_id, other_person_id | other_person_id's faces join person_id |
| split | person_id, face_ids | the faces leave for a new person |
| move | face_ids, person_id (empty: back to the buffer) | the faces join person_id |
| cluster | - | a full re-cluster of the version now |

A moved face that shares a photo with a face of its new person sends that other face back to the
buffer: a person never holds two faces of one photo. An unknown person or face fails the run and
records nothing; list persons and faces with `faceidx people list` / `faceidx people show PERSON_ID`.
Empty `output_uri` falls back to the Airflow Variable `faceidx_output_uri`; empty `model_version`
means the current one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from faceidx.common.constants import DEFAULT_AWS_CONN_ID, VAR_OUTPUT_URI, WRITER_POOL
from faceidx.common.params import optional_list_param, optional_param, param_or_variable

ACTIONS = ["label", "merge", "split", "move", "cluster"]  # faceidx.people.actions.ACTIONS + cluster


@dag(
    dag_id="face_people",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["faceidx", "people"],
    default_args={
        "owner": "faceidx",
        "retries": 1,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(hours=1),
    },
    params={
        "action": Param("label", enum=ACTIONS, description="What to do (see the table above)."),
        "person_id": optional_param(
            "The person (label, merge target, split, move target). "
            "Empty: for cluster, or a move back to the buffer."
        ),
        "other_person_id": optional_param("merge: the person absorbed into person_id. Empty: not a merge."),
        "face_ids": optional_list_param(
            "split / move: the face ids, one per line. Empty: not a split or move."
        ),
        "label": optional_param("label: the person's name. Empty: clears it."),
        "model_version": optional_param("Model version. Empty: the current one (faceidx models)."),
        "output_uri": optional_param(f"The index. Empty: the Airflow Variable {VAR_OUTPUT_URI}."),
    },
)
def face_people() -> None:
    @task(retries=0, pool=WRITER_POOL)  # an unknown person is not found on a retry either
    def people(output_uri: str, **context: Any) -> dict[str, Any]:
        from faceidx.erasure.tasks import location_for, run_actor
        from faceidx.people.tasks import people_task

        location = location_for(output_uri, aws_conn_id=DEFAULT_AWS_CONN_ID)
        return people_task(location, context["params"], run_actor(context))

    people(output_uri=param_or_variable("output_uri", VAR_OUTPUT_URI))


face_people()
