"""Queue health verdicts for ``face_indexing``: pure functions over the numbers the hooks read.

Two warnings, both also sent to an optional callback (the ``queue_health_callback`` Param):

* ``oldest_message``: SQS ``ApproximateAgeOfOldestMessage`` (CloudWatch, AWS/SQS) is above the
  ``max_message_age_seconds`` Param: images wait too long, so add capacity or look for stuck workers.
* ``dead_letter_queue``: the DLQ holds messages: bodies the worker could not parse, or images whose
  processing failed ``maxReceiveCount`` times. Inspect them, fix the cause, then redrive.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class QueueHealth:
    oldest_message_age_seconds: float | None
    dlq_url: str | None
    dlq_depth: int | None
    max_message_age_seconds: int
    warnings: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def assess_queue_health(
    oldest_message_age_seconds: float | None,
    dlq_url: str | None,
    dlq_depth: int | None,
    max_message_age_seconds: int,
    notes: list[str] | None = None,
) -> QueueHealth:
    warnings: list[dict[str, str]] = []
    if oldest_message_age_seconds is not None and oldest_message_age_seconds > max_message_age_seconds:
        warnings.append(
            {
                "check": "oldest_message",
                "message": (
                    f"the oldest waiting image is {oldest_message_age_seconds:,.0f} s old, above "
                    f"max_message_age_seconds {max_message_age_seconds:,}: the backlog is not draining. "
                    "Check that jobs leave RUNNABLE (spot capacity, the G-instance vCPU quota) and "
                    "consider raising secondary_max_array"
                ),
            }
        )
    if dlq_depth:
        warnings.append(
            {
                "check": "dead_letter_queue",
                "message": (
                    f"the dead-letter queue {dlq_url} holds {dlq_depth:,} message(s): messages the worker "
                    "could not parse or that failed 5 times. Inspect them, fix the cause, then redrive "
                    "them to the work queue (SQS StartMessageMoveTask)"
                ),
            }
        )
    return QueueHealth(
        oldest_message_age_seconds=oldest_message_age_seconds,
        dlq_url=dlq_url,
        dlq_depth=dlq_depth,
        max_message_age_seconds=max_message_age_seconds,
        warnings=warnings,
        notes=list(notes or []),
    )
