"""The quickstart's time-left estimate (trajloom_hf.progress_estimate) as a pure function of the plan and clocks."""

import pytest

from trajloom_hf.progress_estimate import (
    StageClock,
    format_duration,
    load_factor,
    min_measured_steps,
    remaining_seconds,
    stage_remaining_s,
)


def plan():
    """bench (60 s), then two chains in parallel (VAE 100 x 1 s + 10 s, flow 100 x 0.5 s + 10 s each), then a
    100-step on-policy stage (2 s a step + 10 s)."""
    bench = StageClock(0, 0.0, 60.0)
    chains = [[StageClock(100, 1.0, 10.0), StageClock(100, 0.5, 10.0)] for _ in range(2)]
    on_policy = StageClock(100, 2.0, 10.0)
    return bench, chains, on_policy, [[[bench]], chains, [[on_policy]]]


def test_before_anything_runs_the_estimate_is_the_sum_of_the_priors():
    bench, chains, on_policy, phases = plan()
    # chains run in parallel: the phase costs one chain (110 + 60), not two
    assert remaining_seconds(phases, now=0.0) == pytest.approx(60 + 170 + 210)


def test_the_first_noisy_seconds_do_not_extrapolate():
    """A stage that is starting up (no step yet) or has done one slow step keeps its prior, minus its elapsed time."""
    bench, chains, on_policy, phases = plan()
    bench.started_at, bench.finished_at = 0.0, 60.0  # exactly its prior: load factor 1
    for chain in chains:
        chain[0].started_at = 60.0
        # 15 s for start-up and the first step: 15 s a step (25 min) if extrapolated
        chain[0].observe(75.0, 1)
    # the prior (110 s) minus the 15 s elapsed, but at least the prior time of the 99 steps left
    assert stage_remaining_s(chains[0][0], now=75.0, load=1.0) == pytest.approx(99.0)
    assert remaining_seconds(phases, now=75.0) == pytest.approx((99 + 60) + 210)
    chains[0][0].observe(80.0, 1)  # a later poll, no new step: still no rate
    assert stage_remaining_s(chains[0][0], now=80.0, load=1.0) == pytest.approx(99.0)


def test_a_measured_rate_replaces_the_prior_and_scales_the_stages_to_come():
    bench, chains, on_policy, phases = plan()
    bench.started_at, bench.finished_at = 0.0, 60.0
    for vae in (chains[0][0], chains[1][0]):
        vae.started_at = 60.0
        vae.observe(80.0, 1)  # the first step after a 20 s start-up
        vae.observe(80.0 + 3.0 * 20, 21)  # then 3 s a step: a machine 3x slower than the prior
    assert min_measured_steps(100) <= 20
    now = 140.0
    load = load_factor([bench] + [st for c in chains for st in c] + [on_policy])
    # pooled: bench 60 s / 60 s, the two VAEs 2 x 60 s measured / 2 x 20 s prior, plus 30 s "as expected"
    assert load == pytest.approx((60 + 120 + 30) / (60 + 40 + 30))
    assert stage_remaining_s(chains[0][0], now, load) == pytest.approx(79 * 3.0)
    flow = load * 60.0  # not started: prior x load
    assert remaining_seconds(phases, now) == pytest.approx(79 * 3.0 + flow + load * 210)


def test_finished_and_skipped_stages_cost_nothing_and_skipped_ones_do_not_bias_the_load():
    bench, chains, on_policy, phases = plan()
    bench.finished_at = 5.0  # skipped (its output existed): never started
    assert load_factor([bench]) == 1.0
    for chain in chains:
        for st in chain:
            st.started_at, st.finished_at = 0.0, 2 * st.prior_s  # twice the prior
    assert load_factor([bench] + [st for c in chains for st in c], pseudo_s=0) == pytest.approx(2.0)
    assert remaining_seconds(phases, now=500.0, pseudo_s=0) == pytest.approx(2.0 * 210)
    assert chains[0][1].steps_done == 100


def test_one_short_stage_far_off_its_prior_does_not_swing_the_estimate():
    """A 4 s stage that took 88 s (a cold start on a loaded machine) would make every later stage 22x longer."""
    short = StageClock(0, 0.0, 4.0, started_at=0.0, finished_at=88.0)
    later = StageClock(100, 1.0, 10.0)
    assert load_factor([short, later]) == pytest.approx((88 + 30) / (4 + 30))
    assert remaining_seconds([[[short]], [[later]]], now=88.0) < 4 * 110


def test_a_stage_past_its_prior_is_never_estimated_below_its_remaining_steps():
    st = StageClock(10, 1.0, 10.0, started_at=0.0)
    st.observe(50.0, 1)  # far slower than the prior, and one step is too few to measure
    assert stage_remaining_s(st, now=50.0, load=1.0) == pytest.approx(9.0)


def test_slowest_chain_decides_a_parallel_phase():
    fast, slow = StageClock(10, 1.0, 0.0), StageClock(10, 3.0, 0.0)
    assert remaining_seconds([[[fast], [slow]]], now=0.0) == pytest.approx(30.0)


def test_invalid_clock_and_formatting():
    with pytest.raises(ValueError, match="steps"):
        StageClock(-1, 1.0, 0.0)
    assert format_duration(45) == "45 s"
    assert format_duration(12 * 60 + 10) == "12 min"
    assert format_duration(2 * 3600 + 5 * 60) == "2 h 05 min"
    assert format_duration(float("inf")) == "?"
