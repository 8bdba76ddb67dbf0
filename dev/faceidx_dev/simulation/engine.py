"""A discrete-event model of one SQS queue, the two AWS Batch compute environments and the GPU workers
that drain the queue, driven by a submit rule called on every DAG tick.

What is modelled (every number is a :class:`SimulationConfig` field):

- **SQS.** Messages are visible until a worker receives them (up to ``receive_max`` per receive),
  then in flight until deleted. A worker long-polls: an idle worker receives as soon as a message is
  visible; idle workers are served longest-waiting first. Order is first in, first out. The counts
  the DAG reads are exact (real ``Approximate*`` attributes may lag about a minute).
- **AWS Batch.** Every submitted job (array children counted one by one) is active at once. A job
  waits in RUNNABLE while its compute environment already runs ``capacity`` jobs (16 vCPU / 4 = 4
  primary, 256 / 4 = 64 secondary): those are the jobs stuck waiting for capacity. A placed job
  launches a spot g4dn.xlarge and pulls the image (``*_startup_s``), then runs the worker. One job is
  one instance: instance time runs from placement to the job's end.
- **The worker.** Processes ``images_per_s`` images per second, deletes a batch once it is done, and
  exits once it has received nothing for ``max_idle_s`` (MAX_IDLE). Extra jobs therefore cost a launch,
  an image pull and at least ``max_idle_s`` of idling.
- **Spot reclaims.** Each job launch is reclaimed with probability
  ``Trace.spot_interruption_fraction``, at a uniform time within ``spot_window_s`` of the launch (if it
  is still up); see :func:`reclaim_delay_s`. Its in-flight messages become visible again
  ``visibility_timeout_s`` after they were received (a hard kill), or at once with
  ``release_on_reclaim`` (a worker that releases them on SIGTERM). Batch retries the job
  (``retryStrategy`` ``attempts``: ``retry_attempts``) through RUNNABLE and a fresh start-up.
- **The DAG.** Every ``tick_s`` (the first at t=0) the rule sees visible, in-flight and active job
  counts and decides what to submit.

Time is continuous; the run ends once every message is deleted and no job is active.
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from faceidx.indexing.planning import ScalingPolicy
from faceidx_dev.simulation.policies import Observation, SubmitRule

if TYPE_CHECKING:
    from faceidx_dev.simulation.traces import Trace

Role = Literal["primary", "secondary"]
ROLES: tuple[Role, Role] = ("primary", "secondary")

_ENVIRONMENTS = ScalingPolicy()

# Event kinds; at equal times the lower number runs first (work finishes before the DAG looks).
_RETURN, _BATCH_DONE, _KILL, _STARTED, _IDLE, _TICK, _SAMPLE = range(7)

_WAITING, _STARTING, _RUNNING, _DONE, _FAILED = "waiting", "starting", "running", "done", "failed"


@dataclass(frozen=True)
class SimulationConfig:
    """The model's knobs; defaults are the production design on g4dn.xlarge spot instances."""

    tick_s: float = 300.0
    primary_startup_s: float = 120.0
    secondary_startup_s: float = 240.0
    images_per_s: float = 10.0
    receive_max: int = 10
    max_idle_s: float = 60.0
    visibility_timeout_s: float = 1800.0
    retry_attempts: int = 3
    spot_window_s: float = 900.0
    release_on_reclaim: bool = False
    primary_capacity: int = _ENVIRONMENTS.primary_capacity
    secondary_capacity: int = _ENVIRONMENTS.secondary_capacity
    sample_s: float = 30.0
    settle_limit_s: float = 2 * 86_400.0
    seed: int = 0

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be > 0 (got {getattr(self, name)})"
            for name in ("tick_s", "images_per_s", "receive_max", "sample_s", "retry_attempts")
            if getattr(self, name) <= 0
        ]
        problems += [
            f"{name} must be >= 0 (got {getattr(self, name)})"
            for name in (
                "primary_startup_s",
                "secondary_startup_s",
                "max_idle_s",
                "visibility_timeout_s",
                "spot_window_s",
                "primary_capacity",
                "secondary_capacity",
                "settle_limit_s",
            )
            if getattr(self, name) < 0
        ]
        if problems:
            raise ValueError("invalid simulation config: " + "; ".join(problems))

    def startup_s(self, role: Role) -> float:
        return self.primary_startup_s if role == "primary" else self.secondary_startup_s

    def capacity(self, role: Role) -> int:
        return self.primary_capacity if role == "primary" else self.secondary_capacity


@dataclass(frozen=True)
class Sample:
    """The state every ``sample_s``: SQS counts and jobs by phase (both queues together)."""

    t: float
    visible: int
    in_flight: int
    running: int
    starting: int
    waiting: int

    @property
    def backlog(self) -> int:
        return self.visible + self.in_flight


@dataclass(frozen=True)
class SimulationResult:
    """What one (trace, rule) run measured. Times are seconds from the start of the trace."""

    trace: str
    rule: str
    messages: int
    messages_done: int
    settled: bool
    end_s: float
    last_arrival_s: float
    last_done_s: float
    instance_s: float
    wait_p50_s: float
    wait_p95_s: float
    wait_max_s: float
    jobs_submitted: int
    submit_calls: int
    invalid_arrays: int
    peak_active: int
    peak_active_primary: int
    peak_active_secondary: int
    peak_waiting: int
    jobs_waited: int
    spot_interruptions: int
    messages_redelivered: int
    failed_jobs: int
    samples: tuple[Sample, ...] = field(repr=False)

    @property
    def drain_s(self) -> float:
        """From the last arrival until the last message is deleted."""
        return max(0.0, self.last_done_s - self.last_arrival_s)

    @property
    def gpu_hours(self) -> float:
        return self.instance_s / 3600.0

    def cost_usd(self, spot_usd_per_hour: float) -> float:
        return self.gpu_hours * spot_usd_per_hour


@dataclass(slots=True, eq=False)
class _Job:
    id: int
    role: Role
    attempt: int = 1
    state: str = _WAITING
    placed_at: float = 0.0
    batch: list[tuple[int, int]] = field(default_factory=list)
    batch_size: int = 0
    received_at: float = 0.0
    idle_token: int = 0
    waited: bool = False


def reclaim_delay_s(seed: int, job_id: int, attempt: int, fraction: float, window_s: float) -> float | None:
    """When spot reclaims this job attempt, in seconds after its launch, or None if it is spared.

    Depends only on its arguments, so two rules that launch the same job number share the same luck.
    """
    if fraction <= 0:
        return None
    luck = random.Random(f"{seed}:{job_id}:{attempt}")  # noqa: S311 - simulation luck, not security
    return luck.uniform(0.0, window_s) if luck.random() < fraction else None


class _Run:
    def __init__(self, trace: Trace, rule: SubmitRule, config: SimulationConfig) -> None:
        import numpy as np

        self.trace, self.rule, self.cfg = trace, rule, config
        self.arrivals: list[float] = trace.arrivals.tolist()
        self.done = np.full(len(self.arrivals), np.nan)
        self.now = 0.0
        self.heap: list[tuple[float, int, int, Any, int]] = []
        self.seq = 0
        # SQS: visible messages are index ranges into ``arrivals``; fresh arrivals join lazily.
        self.queue: deque[list[int]] = deque()
        self.arrived = 0
        self.visible = 0
        self.in_flight = 0
        # Batch
        self.jobs = 0
        self.waiting: dict[Role, deque[_Job]] = {r: deque() for r in ROLES}
        self.starting: dict[Role, int] = dict.fromkeys(ROLES, 0)
        self.running: dict[Role, int] = dict.fromkeys(ROLES, 0)
        self.active: dict[Role, int] = dict.fromkeys(ROLES, 0)
        self.idle: list[_Job] = []
        self.up: set[_Job] = set()
        # measurements
        self.instance_s = 0.0
        self.last_done = 0.0
        self.completed = 0
        self.submit_calls = 0
        self.invalid_arrays = 0
        self.peak_active = 0
        self.peak_role: dict[Role, int] = dict.fromkeys(ROLES, 0)
        self.peak_waiting = 0
        self.jobs_waited = 0
        self.interruptions = 0
        self.redelivered = 0
        self.failed = 0
        self.samples: list[Sample] = []

    # -- events -----------------------------------------------------------------------------------
    def push(self, t: float, kind: int, job: Any = None, token: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, kind, self.seq, job, token))

    def run(self) -> SimulationResult:
        arrivals, total = self.arrivals, len(self.arrivals)
        limit = self.trace.last_arrival_s + self.cfg.settle_limit_s
        self.push(0.0, _TICK)
        self.push(0.0, _SAMPLE)
        settled = False
        handlers: dict[int, Callable[[Any, int], None]] = {
            _RETURN: self.on_return,
            _BATCH_DONE: self.on_batch_done,
            _KILL: self.on_kill,
            _STARTED: self.on_started,
            _IDLE: self.on_idle,
            _TICK: self.on_tick,
            _SAMPLE: self.on_sample,
        }
        while True:
            next_event = self.heap[0][0]
            if self.idle and self.arrived < total and arrivals[self.arrived] <= next_event:
                # an idle worker's long poll returns as soon as a message lands
                self.now = arrivals[self.arrived]
                self.admit()
                self.dispatch()
                continue
            t, kind, _, job, token = heapq.heappop(self.heap)
            self.now = t
            self.admit()
            handlers[kind](job, token)
            if self.idle and self.visible:
                self.dispatch()
            if (
                self.arrived == total
                and not self.visible
                and not self.in_flight
                and not self.active["primary"]
                and not self.active["secondary"]
            ):
                settled = True
                break
            if t > limit:
                break
        self.record_sample()
        for job in self.up:  # only when the run hit settle_limit_s: bill what is still up
            self.instance_s += self.now - job.placed_at
        return self.result(settled)

    def on_tick(self, _job: Any, _token: int) -> None:
        decision = self.rule.decide(
            Observation(self.visible, self.in_flight, self.active["primary"], self.active["secondary"])
        )
        self.submit_calls += decision.submit_calls
        self.invalid_arrays += decision.invalid_arrays
        wanted: tuple[tuple[Role, int], ...] = (
            ("primary", decision.primary_jobs),
            ("secondary", decision.secondary_jobs),
        )
        for role, count in wanted:
            new = [self.new_job(role) for _ in range(count)]
            self.place(role)
            self.mark_waited(j for j in new if j.state == _WAITING)
        self.track_peaks()
        self.push(self.now + self.cfg.tick_s, _TICK)

    def on_sample(self, _job: Any, _token: int) -> None:
        self.record_sample()
        self.push(self.now + self.cfg.sample_s, _SAMPLE)

    def record_sample(self) -> None:
        self.samples.append(
            Sample(
                t=self.now,
                visible=self.visible,
                in_flight=self.in_flight,
                running=self.running["primary"] + self.running["secondary"],
                starting=self.starting["primary"] + self.starting["secondary"],
                waiting=len(self.waiting["primary"]) + len(self.waiting["secondary"]),
            )
        )

    def on_started(self, job: _Job, attempt: int) -> None:
        if job.attempt != attempt or job.state != _STARTING:
            return
        job.state = _RUNNING
        self.starting[job.role] -= 1
        self.running[job.role] += 1
        self.poll(job)

    def on_batch_done(self, job: _Job, attempt: int) -> None:
        if job.attempt != attempt or job.state != _RUNNING:
            return  # the worker was reclaimed mid-batch: its messages come back by visibility timeout
        for start, stop in job.batch:
            self.done[start:stop] = self.now
        self.in_flight -= job.batch_size
        self.completed += job.batch_size
        self.last_done = self.now
        job.batch, job.batch_size = [], 0
        self.poll(job)

    def on_idle(self, job: _Job, token: int) -> None:
        if job.state != _RUNNING or job.batch_size or token != job.idle_token:
            return
        self.idle.remove(job)
        job.state = _DONE
        self.running[job.role] -= 1
        self.active[job.role] -= 1
        self.instance_s += self.now - job.placed_at
        self.up.discard(job)
        self.place(job.role)

    def on_kill(self, job: _Job, attempt: int) -> None:
        if job.attempt != attempt or job.state not in (_STARTING, _RUNNING):
            return
        self.interruptions += 1
        if job.batch_size:
            back = (
                self.now if self.cfg.release_on_reclaim else job.received_at + self.cfg.visibility_timeout_s
            )
            self.push(back, _RETURN, job.batch, job.batch_size)
            job.batch, job.batch_size = [], 0
        if job in self.idle:
            self.idle.remove(job)
        (self.starting if job.state == _STARTING else self.running)[job.role] -= 1
        self.instance_s += self.now - job.placed_at
        self.up.discard(job)
        if job.attempt < self.cfg.retry_attempts:
            job.attempt += 1
            job.state = _WAITING
            self.waiting[job.role].append(job)
        else:
            job.state = _FAILED
            self.active[job.role] -= 1
            self.failed += 1
        self.place(job.role)
        if job.state == _WAITING:
            self.mark_waited([job])
        self.track_peaks()

    def on_return(self, ranges: list[tuple[int, int]], size: int) -> None:
        for start, stop in reversed(ranges):
            self.queue.appendleft([start, stop])
        self.visible += size
        self.in_flight -= size
        self.redelivered += size

    # -- SQS ----------------------------------------------------------------------------------------
    def admit(self) -> None:
        if self.arrived < len(self.arrivals) and self.arrivals[self.arrived] <= self.now:
            upto = bisect_right(self.arrivals, self.now, self.arrived)
            if self.queue and self.queue[-1][1] == self.arrived:
                self.queue[-1][1] = upto
            else:
                self.queue.append([self.arrived, upto])
            self.visible += upto - self.arrived
            self.arrived = upto

    def receive(self, job: _Job) -> bool:
        if not self.visible:
            return False
        need = min(self.cfg.receive_max, self.visible)
        taken: list[tuple[int, int]] = []
        size = need
        while need:
            head = self.queue[0]
            count = head[1] - head[0]
            if count <= need:
                taken.append((head[0], head[1]))
                self.queue.popleft()
                need -= count
            else:
                taken.append((head[0], head[0] + need))
                head[0] += need
                need = 0
        self.visible -= size
        self.in_flight += size
        job.batch, job.batch_size, job.received_at = taken, size, self.now
        self.push(self.now + size / self.cfg.images_per_s, _BATCH_DONE, job, job.attempt)
        return True

    def poll(self, job: _Job) -> None:
        """A running worker without a batch asks for one, or starts (re)counting its idle time."""
        if not self.receive(job):
            job.idle_token += 1
            self.idle.append(job)
            self.push(self.now + self.cfg.max_idle_s, _IDLE, job, job.idle_token)

    def dispatch(self) -> None:
        while self.idle and self.visible:
            self.receive(self.idle.pop(0))

    # -- Batch --------------------------------------------------------------------------------------
    def new_job(self, role: Role) -> _Job:
        job = _Job(id=self.jobs, role=role)
        self.jobs += 1
        self.waiting[role].append(job)
        self.active[role] += 1
        return job

    def place(self, role: Role) -> None:
        waiting, capacity = self.waiting[role], self.cfg.capacity(role)
        while waiting and self.starting[role] + self.running[role] < capacity:
            job = waiting.popleft()
            job.state, job.placed_at = _STARTING, self.now
            self.starting[role] += 1
            self.up.add(job)
            self.push(self.now + self.cfg.startup_s(role), _STARTED, job, job.attempt)
            delay = reclaim_delay_s(
                self.cfg.seed,
                job.id,
                job.attempt,
                self.trace.spot_interruption_fraction,
                self.cfg.spot_window_s,
            )
            if delay is not None:
                self.push(self.now + delay, _KILL, job, job.attempt)

    def mark_waited(self, jobs: Any) -> None:
        for job in jobs:
            if not job.waited:
                job.waited = True
                self.jobs_waited += 1

    def track_peaks(self) -> None:
        self.peak_active = max(self.peak_active, self.active["primary"] + self.active["secondary"])
        for role in ROLES:
            self.peak_role[role] = max(self.peak_role[role], self.active[role])
        self.peak_waiting = max(
            self.peak_waiting, len(self.waiting["primary"]) + len(self.waiting["secondary"])
        )

    # -- result -------------------------------------------------------------------------------------
    def result(self, settled: bool) -> SimulationResult:
        import numpy as np

        finished = ~np.isnan(self.done)
        waits = self.done[finished] - self.trace.arrivals[finished]
        p50, p95, worst = (
            (float(np.percentile(waits, 50)), float(np.percentile(waits, 95)), float(waits.max()))
            if len(waits)
            else (0.0, 0.0, 0.0)
        )
        return SimulationResult(
            trace=self.trace.name,
            rule=self.rule.name,
            messages=len(self.arrivals),
            messages_done=int(finished.sum()),
            settled=settled,
            end_s=self.now,
            last_arrival_s=self.trace.last_arrival_s,
            last_done_s=self.last_done,
            instance_s=self.instance_s,
            wait_p50_s=p50,
            wait_p95_s=p95,
            wait_max_s=worst,
            jobs_submitted=self.jobs,
            submit_calls=self.submit_calls,
            invalid_arrays=self.invalid_arrays,
            peak_active=self.peak_active,
            peak_active_primary=self.peak_role["primary"],
            peak_active_secondary=self.peak_role["secondary"],
            peak_waiting=self.peak_waiting,
            jobs_waited=self.jobs_waited,
            spot_interruptions=self.interruptions,
            messages_redelivered=self.redelivered,
            failed_jobs=self.failed,
            samples=tuple(self.samples),
        )


def simulate(trace: Trace, rule: SubmitRule, config: SimulationConfig | None = None) -> SimulationResult:
    """Run ``rule`` against ``trace`` until every message is deleted and every job has ended."""
    return _Run(trace, rule, config or SimulationConfig()).run()
