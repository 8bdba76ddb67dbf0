"""Arrival traces: the times (seconds from the start) at which image messages land in the SQS queue.

Every trace is deterministic for a given seed. numpy is imported inside the builders, not at module
level, because Airflow imports every module under ``plugins/``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

DAY_S = 86_400.0


@dataclass(frozen=True, eq=False)
class Trace:
    """Sorted arrival times in seconds, plus the share of worker launches that spot reclaims."""

    name: str
    description: str
    arrivals: np.ndarray
    spot_interruption_fraction: float = 0.0

    def __post_init__(self) -> None:
        import numpy as np

        times = np.asarray(self.arrivals, dtype=np.float64)
        if times.ndim != 1:
            raise ValueError(f"trace {self.name!r}: arrivals must be a flat list of times")
        if len(times) and (times[0] < 0 or np.any(np.diff(times) < 0)):
            raise ValueError(f"trace {self.name!r}: arrival times must be >= 0 and sorted")
        if not 0.0 <= self.spot_interruption_fraction <= 1.0:
            raise ValueError(
                f"trace {self.name!r}: spot_interruption_fraction must be in [0, 1], "
                f"got {self.spot_interruption_fraction}"
            )
        object.__setattr__(self, "arrivals", times)

    @property
    def messages(self) -> int:
        return len(self.arrivals)

    @property
    def last_arrival_s(self) -> float:
        return float(self.arrivals[-1]) if len(self.arrivals) else 0.0


def steady_trickle(rate_per_s: float = 2.0, duration_s: float = 6 * 3600.0, seed: int = 0) -> Trace:
    """A Poisson stream of ``rate_per_s`` images per second (a fifth of one worker by default)."""
    import numpy as np

    rng = np.random.default_rng([seed, 1])
    count = int(rng.poisson(rate_per_s * duration_s))
    times = np.sort(rng.uniform(0.0, duration_s, size=count))
    return Trace(
        name="steady trickle",
        description=f"Poisson, {rate_per_s:g} images/s for {duration_s / 3600:g} h",
        arrivals=times,
    )


def burst(
    messages: int = 50_000, at_s: float = 0.0, spot_interruption_fraction: float = 0.0, name: str = "burst"
) -> Trace:
    """``messages`` images landing at once (a bulk upload or a re-index)."""
    import numpy as np

    description = f"{messages:,} images at t={at_s:g} s"
    if spot_interruption_fraction:
        description += f", {spot_interruption_fraction:.0%} of worker launches reclaimed by spot"
    return Trace(
        name=name,
        description=description,
        arrivals=np.full(messages, float(at_s)),
        spot_interruption_fraction=spot_interruption_fraction,
    )


def daily_cycle(peak_per_s: float = 16.0, trough_per_s: float = 0.5, seed: int = 0) -> Trace:
    """One day of uploads: a cosine from ``trough_per_s`` at midnight to ``peak_per_s`` at noon
    (Poisson counts per second, spread uniformly inside each second)."""
    import numpy as np

    rng = np.random.default_rng([seed, 2])
    seconds = np.arange(int(DAY_S), dtype=np.float64)
    rate = (
        trough_per_s + (peak_per_s - trough_per_s) * (1.0 - np.cos(2 * math.pi * (seconds + 0.5) / DAY_S)) / 2
    )
    counts = rng.poisson(rate)
    starts = np.repeat(seconds, counts)
    times = np.sort(starts + rng.uniform(0.0, 1.0, size=len(starts)))
    return Trace(
        name="daily cycle",
        description=f"24 h cosine, {trough_per_s:g} to {peak_per_s:g} images/s",
        arrivals=times,
    )


def standard_traces(seed: int = 0, spot_interruption_fraction: float = 0.10) -> list[Trace]:
    """The four traces of the README's scaling table."""
    return [
        steady_trickle(seed=seed),
        burst(),
        daily_cycle(seed=seed),
        burst(name="burst + spot", spot_interruption_fraction=spot_interruption_fraction),
    ]
