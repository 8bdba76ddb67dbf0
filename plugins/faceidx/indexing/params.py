"""The Params of ``face_indexing``, built from the code that uses them.

The scaling knobs come from ``ScalingPolicy``'s fields (default, bounds, description written once
there); the names from ``faceidx.common.constants``; the spot price from its one constant. Optional
values are nullable, so the UI's trigger form accepts them empty.
"""

from __future__ import annotations

from dataclasses import fields

from airflow.sdk import Param

from faceidx.common.constants import (
    DEFAULT_SPOT_PRICE_PER_HOUR,
    JOB_DEFINITION,
    PRIMARY_JOB_QUEUE,
    SECONDARY_JOB_QUEUE,
    VAR_QUEUE_URL,
)
from faceidx.common.params import optional_param
from faceidx.indexing.planning import ScalingPolicy


def scaling_params() -> dict[str, Param]:
    """One integer Param per ``ScalingPolicy`` field, with the field's default and bounds."""
    policy = ScalingPolicy()
    params = {}
    for spec in fields(ScalingPolicy):
        bounds = {k: spec.metadata[k] for k in ("minimum", "maximum") if k in spec.metadata}
        params[spec.name] = Param(
            getattr(policy, spec.name), type="integer", description=spec.metadata["description"], **bounds
        )
    return params


def indexing_params() -> dict[str, Param]:
    return {
        "queue_url": optional_param(f"SQS work queue URL. Empty: the Airflow Variable {VAR_QUEUE_URL}."),
        "primary_job_queue": Param(
            PRIMARY_JOB_QUEUE,
            type="string",
            minLength=1,
            description="Batch job queue of the primary workers.",
        ),
        "secondary_job_queue": Param(
            SECONDARY_JOB_QUEUE,
            type="string",
            minLength=1,
            description="Batch job queue of the secondary (array) workers.",
        ),
        "job_definition": Param(
            JOB_DEFINITION,
            type="string",
            minLength=1,
            description="Batch job definition (latest ACTIVE revision).",
        ),
        **scaling_params(),
        "sensor_timeout_seconds": Param(
            240, type="integer", minimum=0, description="How long to wait for a backlog before skipping."
        ),
        "max_message_age_seconds": Param(
            3600, type="integer", minimum=1, description="Warn when the oldest waiting image is older."
        ),
        "queue_health_callback": optional_param(
            "Dotted path of a callable(health, context), called on a queue-health warning. "
            "Empty: no callback (the warning is still logged)."
        ),
        "spot_price_per_hour": Param(
            DEFAULT_SPOT_PRICE_PER_HOUR,
            type="number",
            minimum=0,
            description="USD per g4dn.xlarge spot hour, for the cost estimate.",
        ),
        "dry_run": Param(False, type="boolean", description="Plan and log only; submit nothing."),
    }
