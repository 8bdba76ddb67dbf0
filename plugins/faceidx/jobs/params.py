"""The ``compute`` Param of the DAGs whose steps may run as Batch jobs (light: parsed with the DAG)."""

from __future__ import annotations

from airflow.sdk import Param

COMPUTE_DESCRIPTION = (
    "Where the index steps run. auto: the heavy ones (compaction, vacuum, the vector sync, a full "
    "re-cluster) and any step whose measured needs exceed 300 MiB run as AWS Batch jobs on the "
    "maintenance queue, small ones in the Airflow task; batch: every step on Batch; airflow: every step in "
    "the task (for an account without the maintenance queue). The task log shows the choice and why."
)


def compute_param() -> Param:
    return Param("auto", type="string", enum=["auto", "batch", "airflow"], description=COMPUTE_DESCRIPTION)
