"""Helpers for the scaling-simulator tests: hand-made traces and submit rules that record what they see."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from faceidx_dev.simulation.policies import Decision, Observation, SubmitRule
from faceidx_dev.simulation.traces import Trace


def make_trace(times: list[float], spot: float = 0.0, name: str = "hand-made") -> Trace:
    return Trace(
        name=name,
        description="test",
        arrivals=np.asarray(times, dtype=float),
        spot_interruption_fraction=spot,
    )


@dataclass
class ScriptedRule:
    """Submits what ``script`` says at the tick at that time (seconds), records what it saw."""

    script: dict[float, Decision] = field(default_factory=dict)
    name: str = "scripted"
    seen: dict[float, Observation] = field(default_factory=dict)
    _tick: int = 0
    tick_s: float = 300.0

    def decide(self, observation: Observation) -> Decision:
        t = self._tick * self.tick_s
        self._tick += 1
        self.seen[t] = observation
        return self.script.get(t, Decision())


@dataclass
class RecordingRule:
    """Wraps a rule and records the observation at every tick."""

    inner: SubmitRule
    seen: list[Observation] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    def decide(self, observation: Observation) -> Decision:
        self.seen.append(observation)
        return self.inner.decide(observation)
