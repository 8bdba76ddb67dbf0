"""Traces are deterministic for a seed and shaped as their names say."""

from __future__ import annotations

import numpy as np
import pytest

from faceidx_dev.simulation.traces import DAY_S, Trace, burst, daily_cycle, standard_traces, steady_trickle


def test_same_seed_same_trace_other_seed_other_trace():
    assert np.array_equal(steady_trickle(seed=3).arrivals, steady_trickle(seed=3).arrivals)
    assert not np.array_equal(steady_trickle(seed=3).arrivals, steady_trickle(seed=4).arrivals)


def test_trickle_rate_and_span():
    trace = steady_trickle(rate_per_s=2.0, duration_s=3600.0)
    assert 7000 < trace.messages < 7400  # Poisson(7200): +-4.7 sigma
    assert trace.arrivals[0] >= 0
    assert trace.last_arrival_s < 3600


def test_burst_lands_at_once():
    trace = burst(messages=50_000, at_s=10.0)
    assert trace.messages == 50_000
    assert set(trace.arrivals.tolist()) == {10.0}


def test_daily_cycle_peaks_at_noon():
    trace = daily_cycle(peak_per_s=16.0, trough_per_s=0.5)
    per_hour = np.histogram(trace.arrivals, bins=24, range=(0, DAY_S))[0]
    assert per_hour.argmax() in (11, 12)
    assert per_hour[11] > 10 * per_hour[0]
    assert trace.last_arrival_s < DAY_S


def test_standard_traces():
    traces = standard_traces(seed=0, spot_interruption_fraction=0.1)
    assert [t.name for t in traces] == ["steady trickle", "burst", "daily cycle", "burst + spot"]
    assert [t.spot_interruption_fraction for t in traces] == [0, 0, 0, 0.1]


@pytest.mark.parametrize(("times", "spot"), [([2.0, 1.0], 0.0), ([-1.0], 0.0), ([0.0], 1.5), ([[0.0]], 0.0)])
def test_invalid_traces_are_refused(times, spot):
    with pytest.raises(ValueError, match="trace 'bad'"):
        Trace("bad", "", np.asarray(times), spot)
