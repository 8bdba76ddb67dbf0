"""The engine on cases small enough to check by hand.

Defaults unless a test says otherwise: a tick every 300 s (the first at t=0), primary start-up 120 s,
10 images/s per worker, 10 messages per receive, MAX_IDLE 60 s, visibility timeout 1800 s.
"""

from __future__ import annotations

import pytest

from faceidx_dev.simulation.engine import SimulationConfig, reclaim_delay_s, simulate
from faceidx_dev.simulation.policies import Decision, Observation, OriginalDesignRule, PlannerRule
from tests.support.simulation import RecordingRule, ScriptedRule, make_trace


@pytest.mark.parametrize(("images_per_s", "drained_at"), [(10.0, 130.0), (5.0, 140.0), (1.0, 220.0)])
def test_one_worker_drains_at_start_up_plus_work(images_per_s, drained_at):
    # tick 0 sees 100 messages -> one primary job -> up at 120 s -> 100 / rate seconds of work
    result = simulate(make_trace([0.0] * 100), PlannerRule(), SimulationConfig(images_per_s=images_per_s))
    assert result.settled
    assert result.messages_done == 100
    assert result.jobs_submitted == 1
    assert result.drain_s == pytest.approx(drained_at)
    # the instance is billed from launch until MAX_IDLE after the queue went empty
    assert result.instance_s == pytest.approx(drained_at + 60.0)
    assert result.end_s == pytest.approx(drained_at + 60.0)
    assert result.wait_max_s == pytest.approx(drained_at)


def test_message_waits_are_per_batch():
    # 10 batches of 10, finished at 121, 122, ..., 130 s
    result = simulate(make_trace([0.0] * 100), PlannerRule())
    assert result.wait_p50_s == pytest.approx(125.5)
    assert result.wait_p95_s == pytest.approx(130.0)


def test_the_dag_sees_visible_and_in_flight_separately():
    rule = RecordingRule(PlannerRule())
    simulate(make_trace([0.0] * 999), rule, SimulationConfig(images_per_s=1.0))
    # t=0: nothing running yet (999 is below the secondary threshold). t=300: batches of 10 took 10 s
    # each since 120 s: 18 deleted, the 19th just received (in flight), 809 still visible.
    assert rule.seen[0] == Observation(visible=999, in_flight=0, active_primary=0, active_secondary=0)
    assert rule.seen[1] == Observation(visible=809, in_flight=10, active_primary=1, active_secondary=0)


@pytest.mark.parametrize(
    ("second_arrival", "jobs", "last_done", "end"),
    [
        # the worker is idle since 120.1 s: a message at 180.0 s comes before MAX_IDLE runs out
        (180.0, 1, 180.1, 240.1),
        # at 181 s it has exited at 180.1 s: the message waits for the 300 s tick and a new start-up
        (181.0, 2, 420.1, 480.1),
    ],
)
def test_worker_exits_after_max_idle(second_arrival, jobs, last_done, end):
    result = simulate(make_trace([0.0, second_arrival]), PlannerRule())
    assert result.jobs_submitted == jobs
    assert result.last_done_s == pytest.approx(last_done)
    assert result.end_s == pytest.approx(end)


def test_jobs_beyond_capacity_wait_runnable_and_still_cost():
    # six primary jobs on a 4-job environment, nothing to do: 4 run 0..180 s, the other 2 wait
    # RUNNABLE until 180 s, then run 180..360 s. Each costs start-up (120) + MAX_IDLE (60).
    rule = ScriptedRule({0.0: Decision(primary_jobs=6, submit_calls=1)})
    result = simulate(make_trace([]), rule)
    assert result.settled
    assert result.peak_active == result.peak_active_primary == 6
    assert result.peak_waiting == 2
    assert result.jobs_waited == 2
    assert result.instance_s == pytest.approx(6 * 180.0)
    assert result.end_s == pytest.approx(360.0)


def test_original_rule_piles_up_runnable_jobs():
    # slow workers (0.1 image/s) on 999 messages: the queue stays non-empty for many ticks, and the
    # original rule adds a primary job on each, beyond the 4 the environment runs
    config = SimulationConfig(images_per_s=0.1)
    trace = make_trace([0.0] * 999)
    ours, original = simulate(trace, PlannerRule(), config), simulate(trace, OriginalDesignRule(), config)
    assert ours.jobs_submitted == 1
    assert ours.peak_waiting == 0
    assert original.peak_active_primary > config.primary_capacity
    assert original.peak_waiting > 0
    assert original.instance_s > ours.instance_s


def _seed_where_only_the_first_launch_is_reclaimed(fraction: float, window: float) -> tuple[int, float]:
    for seed in range(1000):
        first = reclaim_delay_s(seed, 0, 1, fraction, window)
        if (
            first is not None
            and reclaim_delay_s(seed, 0, 2, fraction, window) is None
            and reclaim_delay_s(seed, 1, 1, fraction, window) is None
        ):
            return seed, first
    raise AssertionError("no such seed in 0..999")


@pytest.mark.parametrize("release", [False, True])
def test_spot_reclaim_mid_batch(release):
    # one batch of 10 messages taking 1000 s (0.01 image/s, no start-up); job 0 is reclaimed at d < 100 s
    seed, d = _seed_where_only_the_first_launch_is_reclaimed(0.5, 100.0)
    config = SimulationConfig(
        seed=seed,
        primary_startup_s=0.0,
        images_per_s=0.01,
        spot_window_s=100.0,
        release_on_reclaim=release,
    )
    result = simulate(make_trace([0.0] * 10, spot=0.5), PlannerRule(), config)
    assert result.settled
    assert result.messages_done == 10
    assert result.spot_interruptions == 1
    assert result.messages_redelivered == 10
    if release:
        # released at d; Batch's retry (attempt 2) starts at d and takes them again
        assert result.jobs_submitted == 1
        assert result.last_done_s == pytest.approx(d + 1000.0)
        assert result.instance_s == pytest.approx(d + 1000.0 + 60.0)
    else:
        # hidden until 0 + 1800 s; the retry found an empty queue and exited at d + 60 s; the tick at
        # 1800 s sees them and starts job 1, which takes 1000 s
        assert result.jobs_submitted == 2
        assert result.last_done_s == pytest.approx(2800.0)
        assert result.instance_s == pytest.approx(d + 60.0 + 1060.0)


def test_reclaim_luck_depends_only_on_seed_job_and_attempt():
    draws = [reclaim_delay_s(7, job, 1, 0.1, 900.0) for job in range(200)]
    assert draws == [reclaim_delay_s(7, job, 1, 0.1, 900.0) for job in range(200)]
    hits = [d for d in draws if d is not None]
    assert 5 <= len(hits) <= 40  # about 10% of 200
    assert all(0.0 <= d <= 900.0 for d in hits)
    assert reclaim_delay_s(7, 0, 1, 0.0, 900.0) is None


def test_same_inputs_same_result():
    trace = make_trace([float(i) for i in range(0, 3000, 3)], spot=0.3)
    config = SimulationConfig(seed=5)
    assert simulate(trace, OriginalDesignRule(), config) == simulate(trace, OriginalDesignRule(), config)


def test_a_rule_that_never_submits_does_not_settle():
    result = simulate(make_trace([0.0] * 5), ScriptedRule(), SimulationConfig(settle_limit_s=900.0))
    assert not result.settled
    assert result.messages_done == 0
    assert result.end_s > 900.0
    assert result.samples[-1].visible == 5


def test_samples_track_backlog_and_workers():
    result = simulate(make_trace([0.0] * 100), PlannerRule(), SimulationConfig(sample_s=60.0))
    by_time = {s.t: s for s in result.samples}
    assert (by_time[0.0].visible, by_time[0.0].starting, by_time[0.0].running) == (100, 1, 0)
    assert (by_time[120.0].backlog, by_time[120.0].running) == (100, 1)
    assert (by_time[180.0].backlog, by_time[180.0].running) == (0, 1)
    assert result.samples[-1].running == 0


@pytest.mark.parametrize("field", ["tick_s", "images_per_s", "receive_max", "retry_attempts"])
def test_config_refuses_non_positive_values(field):
    with pytest.raises(ValueError, match=field):
        SimulationConfig(**{field: 0})
