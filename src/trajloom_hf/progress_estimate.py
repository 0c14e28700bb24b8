"""Remaining-time estimate of a run made of stages with step budgets (the quickstart's progress bar).

A run is a list of *phases* executed one after the other; a phase is a list of *chains* running at the same time;
a chain is a list of stages run in order. Every stage has a budget in steps (0 for a stage without training steps)
and a prior: the seconds per step and the start-up seconds it takes on an idle machine. The estimate is

* a finished stage: nothing left;
* a stage that has run at least ``min_measured_steps(steps)`` steps since it was first seen stepping: its
  remaining steps at its **measured** rate (steps between the first and the latest observation over the seconds
  between them, so the start-up time and the first slow steps do not count);
* any other stage (not started, starting up, or too few steps to measure): its prior, multiplied by the *load
  factor* (the measured time over the prior time of the stages measured so far, both plus ``pseudo_s`` seconds of
  "as expected", so one short stage far off its prior cannot swing the whole estimate; 1 before any measurement),
  minus the time it has already run;

then the sum over each chain's stages, the slowest chain of a phase, and the sum over phases. It never
extrapolates from a stage's first seconds, and a loaded machine shows up in every later stage's estimate through
the load factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple


@dataclass
class StageClock:
    """What is known about one stage: its budget and prior, and the observations so far (seconds on one clock).

    ``first_seen``: ``(time, steps)`` of the first observation with ``steps > 0``; ``last_seen``: the latest one;
    ``started_at`` / ``finished_at``: when the stage started / ended (``None`` if not yet)."""

    steps: int
    seconds_per_step: float
    overhead_s: float
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    first_seen: Optional[Tuple[float, int]] = None
    last_seen: Optional[Tuple[float, int]] = None

    def __post_init__(self):
        if self.steps < 0 or self.seconds_per_step < 0 or self.overhead_s < 0:
            raise ValueError(f"StageClock: steps, seconds_per_step and overhead_s must be >= 0, got {self.steps}, "
                             f"{self.seconds_per_step}, {self.overhead_s}")

    @property
    def prior_s(self) -> float:
        """Idle-machine duration of the whole stage."""
        return self.overhead_s + self.steps * self.seconds_per_step

    @property
    def steps_done(self) -> int:
        if self.finished_at is not None:
            return self.steps
        return min(self.last_seen[1], self.steps) if self.last_seen else 0

    def observe(self, now: float, steps: int) -> None:
        """Record that ``steps`` steps are done at time ``now`` (call it on every poll while the stage runs)."""
        if steps > 0:
            if self.first_seen is None:
                self.first_seen = (now, steps)
            self.last_seen = (now, steps)


def min_measured_steps(steps: int) -> int:
    """Steps a stage must run (past its first observed step) before its own rate replaces the prior."""
    return max(2, min(10, steps // 5))


def measured_seconds_per_step(stage: StageClock) -> Optional[float]:
    """Seconds per step between the first and the latest observation, or ``None`` with too few steps."""
    if stage.first_seen is None or stage.last_seen is None:
        return None
    (t0, s0), (t1, s1) = stage.first_seen, stage.last_seen
    if s1 - s0 < min_measured_steps(stage.steps) or t1 <= t0:
        return None
    return (t1 - t0) / (s1 - s0)


PSEUDO_S = 30.0  # seconds of "as the prior says" in the load factor (shrinks the first measurements towards 1)


def load_factor(stages: Sequence[StageClock], pseudo_s: float = PSEUDO_S) -> float:
    """Measured over prior time, pooled over the finished stages (whole duration) and the running stages with a
    measured rate (their steps), each side plus ``pseudo_s``; 1.0 when nothing is measured yet."""
    measured = prior = float(pseudo_s)
    for st in stages:
        if st.finished_at is not None and st.started_at is not None and st.prior_s > 0:
            measured += st.finished_at - st.started_at
            prior += st.prior_s
        else:
            rate = measured_seconds_per_step(st)
            if rate is not None and st.seconds_per_step > 0:
                n = st.last_seen[1] - st.first_seen[1]
                measured += rate * n
                prior += st.seconds_per_step * n
    return measured / prior if prior > 0 else 1.0


def stage_remaining_s(stage: StageClock, now: float, load: float) -> float:
    """Seconds left in one stage at time ``now`` (see the module docstring)."""
    if stage.finished_at is not None:
        return 0.0
    rate = measured_seconds_per_step(stage)
    if rate is not None:
        return max(stage.steps - stage.steps_done, 0) * rate
    expected = load * stage.prior_s
    if stage.started_at is None:
        return expected
    # running on the prior: what is left of it, but never less than the prior time of the steps still to do
    floor = load * stage.seconds_per_step * max(stage.steps - stage.steps_done, 0)
    return max(expected - (now - stage.started_at), floor)


def remaining_seconds(phases: Sequence[Sequence[Sequence[StageClock]]], now: float,
                      pseudo_s: float = PSEUDO_S) -> float:
    """Seconds left in the whole run: phases in sequence, chains of a phase in parallel, stages of a chain in
    sequence."""
    every: List[StageClock] = [st for phase in phases for chain in phase for st in chain]
    load = load_factor(every, pseudo_s)
    total = 0.0
    for phase in phases:
        total += max((sum(stage_remaining_s(st, now, load) for st in chain) for chain in phase), default=0.0)
    return total


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min"``, ``"2 h 05 min"``."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60:02d} min"
