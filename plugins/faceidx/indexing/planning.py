"""How many GPU workers to start, and where: the scaling rule of ``face_indexing``.

A pure function over plain numbers: no Airflow, no boto3. The DAG feeds it the SQS depth and the
number of Batch jobs already active, and submits exactly what it returns.

The rule (defaults from the original design, with its two faults fixed):

==========  ==========================================================  ==================================
Queue       Target workers                                              Submitted this tick
==========  ==========================================================  ==================================
primary     ``primary_workers`` (1) when ``visible >= 1``, capped by    target - active primary jobs
            the environment: ``primary_max_vcpus // vcpus_per_job``
secondary   ``min(visible // secondary_threshold, secondary_max_array)``  target - active secondary jobs:
            (1000 and 10), capped by ``secondary_max_vcpus //            <= 0 nothing, 1 a plain job,
            vcpus_per_job``                                              >= 2 an array job of that size
==========  ==========================================================  ==================================

Fault 1 of the original design: an array of size 1 is rejected by AWS Batch (sizes are 2..10,000),
so a deficit of exactly one worker is submitted as a plain job. Fault 2: it submitted on every tick
without counting the jobs already queued or running, which piles up workers without limit; here the
jobs already active are subtracted first (KEDA's ``default`` scaling strategy). Running jobs are never
stopped: workers drain the queue and exit by themselves.

Examples with the defaults and no active jobs: depth 0 submits nothing; 1..1999 one primary job;
1000..1999 also a plain secondary job; 2000 a primary job plus an array of 2; 11,000 and above a
primary job plus an array of 10.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

ARRAY_SIZE_MIN = 2
ARRAY_SIZE_MAX = 10_000

QueueRole = Literal["primary", "secondary"]


class PolicyError(ValueError):
    """A scaling policy that cannot be applied; the message says which value to change."""


def _knob(default: int, minimum: int, description: str, maximum: int | None = None) -> Any:
    """A ScalingPolicy field: its default, bounds and description are the face_indexing Param's."""
    bounds = {"minimum": minimum, **({"maximum": maximum} if maximum is not None else {})}
    return field(default=default, metadata={"description": description, **bounds})


@dataclass(frozen=True)
class ScalingPolicy:
    """The knobs of the rule. Every field is a ``face_indexing`` DAG Param of the same name, built
    from the field (``faceidx.indexing.params``): default, bounds and description are written here only.
    The capacity defaults equal infra/'s maxvCpus and the job definition's VCPU (a test checks it)."""

    secondary_threshold: int = _knob(1000, 1, "Messages per secondary worker.")
    secondary_max_array: int = _knob(
        10,
        0,
        f"Most secondary workers at once (at most {ARRAY_SIZE_MAX}, the AWS Batch array limit).",
        maximum=ARRAY_SIZE_MAX,
    )
    primary_workers: int = _knob(1, 0, "Primary workers to keep while there is a backlog.")
    primary_max_vcpus: int = _knob(16, 0, "The primary compute environment's maxvCpus (caps its workers).")
    secondary_max_vcpus: int = _knob(
        256, 0, "The secondary compute environment's maxvCpus (caps its workers)."
    )
    vcpus_per_job: int = _knob(4, 1, "VCPU of the job definition (one worker).")
    min_depth: int = _knob(1, 1, "Visible messages needed to run at all.")

    def __post_init__(self) -> None:
        problems = []
        for spec in fields(self):
            value = getattr(self, spec.name)
            low, high = spec.metadata["minimum"], spec.metadata.get("maximum")
            if value < low:
                problems.append(f"{spec.name} must be >= {low} (got {value})")
            if high is not None and value > high:
                problems.append(
                    f"{spec.name} must be <= {high} (got {value}): {spec.metadata['description']}"
                )
        if problems:
            raise PolicyError("invalid scaling policy: " + "; ".join(problems))

    @property
    def primary_capacity(self) -> int:
        """How many jobs the primary compute environment can run at once."""
        return self.primary_max_vcpus // self.vcpus_per_job

    @property
    def secondary_capacity(self) -> int:
        """How many jobs the secondary compute environment can run at once."""
        return self.secondary_max_vcpus // self.vcpus_per_job

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> ScalingPolicy:
        """Build from DAG Params (extra keys are ignored, missing ones take the defaults)."""
        names = cls.__dataclass_fields__.keys()
        kwargs = {k: int(values[k]) for k in names if k in values and values[k] is not None}
        return cls(**kwargs)


@dataclass(frozen=True)
class Submission:
    """One SubmitJob call: a plain job (``array_size`` None) or an array job of ``array_size``."""

    role: QueueRole
    workers: int
    array_size: int | None

    @property
    def array_properties(self) -> dict[str, int] | None:
        """What ``BatchOperator(array_properties=...)`` takes: None for a plain job."""
        return None if self.array_size is None else {"size": self.array_size}

    @property
    def shape(self) -> str:
        return "plain job" if self.array_size is None else f"array job of {self.array_size}"

    @property
    def with_article(self) -> str:
        return f"a {self.shape}" if self.array_size is None else f"an {self.shape}"


@dataclass(frozen=True)
class ScalingPlan:
    """What to submit this tick, and why, in words a data engineer can read in the task log."""

    visible: int
    in_flight: int
    active_primary: int
    active_secondary: int
    primary_target: int
    secondary_target: int
    primary: Submission | None
    secondary: Submission | None
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def submissions(self) -> tuple[Submission, ...]:
        return tuple(s for s in (self.primary, self.secondary) if s is not None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, for XCom."""
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        for role in ("primary", "secondary"):
            sub = getattr(self, role)
            if sub is not None:
                data[role]["array_properties"] = sub.array_properties
        return data


def _submission(role: QueueRole, deficit: int) -> Submission | None:
    if deficit <= 0:
        return None
    if deficit == 1:
        return Submission(role=role, workers=1, array_size=None)
    size = min(deficit, ARRAY_SIZE_MAX)
    return Submission(role=role, workers=size, array_size=size)


def still_open(role: QueueRole, planned: int, target: int, active_now: int) -> Submission | None:
    """The submission left to make when the submit task runs: the plan's, shrunk by the workers that
    appeared since the plan counted (another run's submit). ``None`` when nothing is left."""
    return _submission(role, min(planned, target - active_now))


def plan_submissions(
    visible: int,
    in_flight: int,
    active_primary: int,
    active_secondary: int,
    policy: ScalingPolicy | None = None,
) -> ScalingPlan:
    """Decide which Batch jobs to submit now.

    ``visible`` is the SQS backlog (ApproximateNumberOfMessages), ``in_flight`` the messages being
    worked on (ApproximateNumberOfMessagesNotVisible); ``active_*`` count jobs in SUBMITTED, PENDING,
    RUNNABLE, STARTING or RUNNING (array children counted one by one).
    """
    policy = policy or ScalingPolicy()
    for name, value in (
        ("visible", visible),
        ("in_flight", in_flight),
        ("active_primary", active_primary),
        ("active_secondary", active_secondary),
    ):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")

    reasons: list[str] = []
    if visible < policy.min_depth:
        reasons.append(
            f"visible backlog {visible} is below min_depth {policy.min_depth}: nothing to submit"
            + (f" ({in_flight} messages are already being processed)" if in_flight else "")
        )
        return ScalingPlan(
            visible, in_flight, active_primary, active_secondary, 0, 0, None, None, tuple(reasons)
        )

    primary_target = min(policy.primary_workers, policy.primary_capacity)
    primary = _submission("primary", primary_target - active_primary)
    if primary_target < policy.primary_workers:
        reasons.append(
            f"primary: primary_workers {policy.primary_workers} capped to {primary_target}, "
            f"what {policy.primary_max_vcpus} vCPUs run at {policy.vcpus_per_job} vCPUs per job"
        )
    if primary:
        reasons.append(
            f"primary: target {primary_target} worker(s), {active_primary} active: "
            f"submit {primary.with_article}"
        )
    else:
        reasons.append(
            f"primary: target {primary_target} worker(s), {active_primary} already active: submit nothing"
        )

    wanted = min(visible // policy.secondary_threshold, policy.secondary_max_array)
    secondary_target = min(wanted, policy.secondary_capacity)
    rule = f"min({visible} // {policy.secondary_threshold}, {policy.secondary_max_array}) = {wanted}" + (
        f", capped to capacity {secondary_target}" if secondary_target < wanted else ""
    )
    secondary = _submission("secondary", secondary_target - active_secondary)
    if secondary:
        note = (
            " (a deficit of 1 is a plain job: Batch rejects arrays of size 1)"
            if secondary.workers == 1
            else ""
        )
        reasons.append(
            f"secondary: target {rule}, {active_secondary} active: submit {secondary.with_article}{note}"
        )
    elif secondary_target == 0:
        reasons.append(f"secondary: target {rule}: backlog too small for the secondary queue")
    else:
        reasons.append(f"secondary: target {rule}, {active_secondary} already active: submit nothing")

    return ScalingPlan(
        visible=visible,
        in_flight=in_flight,
        active_primary=active_primary,
        active_secondary=active_secondary,
        primary_target=primary_target,
        secondary_target=secondary_target,
        primary=primary,
        secondary=secondary,
        reasons=tuple(reasons),
    )
