"""The two submit rules the simulator compares, behind one small protocol.

Each tick the engine hands a rule what ``face_indexing`` sees (SQS visible and in-flight counts, active
Batch jobs per queue) and starts the jobs the rule decides to submit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from faceidx.indexing.planning import ScalingPolicy, plan_submissions


@dataclass(frozen=True)
class Observation:
    """What the DAG reads at a tick: SQS attributes and active (SUBMITTED..RUNNING) Batch jobs."""

    visible: int
    in_flight: int
    active_primary: int
    active_secondary: int


@dataclass(frozen=True)
class Decision:
    """Jobs to start this tick (array children counted one by one) and the SubmitJob calls behind them.

    ``invalid_arrays`` counts array jobs of size 1: AWS Batch rejects them (sizes are 2..10,000). The
    simulator still starts them as one job each, as the design intended, and reports how many there were.
    """

    primary_jobs: int = 0
    secondary_jobs: int = 0
    submit_calls: int = 0
    invalid_arrays: int = 0


class SubmitRule(Protocol):
    """A scaling rule: called once per tick."""

    @property
    def name(self) -> str: ...

    def decide(self, observation: Observation) -> Decision: ...


@dataclass(frozen=True)
class OriginalDesignRule:
    """The original design: every tick, one primary job when the queue is not empty, plus an array job
    of ``min(depth // 1000, 10)`` on the secondary queue when depth > 1000, whatever is already active.
    """

    name: str = "original rule"
    secondary_threshold: int = 1000
    secondary_max_array: int = 10

    def decide(self, observation: Observation) -> Decision:
        depth = observation.visible
        if depth <= 0:
            return Decision()
        primary, calls, invalid, secondary = 1, 1, 0, 0
        if depth > self.secondary_threshold:
            secondary = min(depth // self.secondary_threshold, self.secondary_max_array)
            calls += 1
            invalid = 1 if secondary == 1 else 0
        return Decision(
            primary_jobs=primary, secondary_jobs=secondary, submit_calls=calls, invalid_arrays=invalid
        )


@dataclass(frozen=True)
class PlannerRule:
    """Our rule: ``faceidx.indexing.planning.plan_submissions``, exactly what ``face_indexing`` calls."""

    name: str = "our planner"
    policy: ScalingPolicy = field(default_factory=ScalingPolicy)

    def decide(self, observation: Observation) -> Decision:
        plan = plan_submissions(
            observation.visible,
            observation.in_flight,
            observation.active_primary,
            observation.active_secondary,
            self.policy,
        )
        return Decision(
            primary_jobs=plan.primary.workers if plan.primary else 0,
            secondary_jobs=plan.secondary.workers if plan.secondary else 0,
            submit_calls=len(plan.submissions),
            invalid_arrays=sum(1 for s in plan.submissions if s.array_size == 1),
        )
