"""The stress suite's statistics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlops.errors import ValidationError
from rlops.evaluation.stress import ControllerSummary, EpisodeOutcome, cvar, mean_interval


def test_cvar_is_the_mean_of_the_worst_tenth() -> None:
    values = [float(v) for v in range(1, 21)]  # 20 returns: the worst 10% are 1 and 2
    assert cvar(values, 0.1) == 1.5
    assert cvar(values[::-1], 0.1) == 1.5  # order does not matter
    assert cvar(values, 0.25) == 3.0  # ceil(0.25 * 20) = 5 worst: 1..5
    assert cvar([5.0, -3.0, 7.0], 0.1) == -3.0  # ceil(0.3) = 1: the single worst
    assert cvar(values, 1.0) == 10.5  # the whole sample: the mean
    assert math.isnan(cvar([], 0.1))
    with pytest.raises(ValidationError, match="cvar_alpha"):
        cvar(values, 0.0)


def test_cvar_counts_exactly_at_integer_boundaries() -> None:
    # 0.1 * 30 is 3.0000000000000004 in floating point; the tail is still 3 values, not 4
    values = [float(v) for v in range(30)]
    assert cvar(values, 0.1) == 1.0


def test_mean_interval_matches_the_t_formula_by_hand() -> None:
    x = [2.0, 4.0, 4.0, 5.0, 10.0]  # mean 5, sample sd sqrt(9) = 3
    ci = mean_interval(x, 0.95)
    t = 2.7764451051977987  # t_{0.975, 4}
    assert ci.estimate == 5.0
    assert ci.low == pytest.approx(5.0 - t * 3.0 / math.sqrt(5), rel=1e-12)
    assert ci.high == pytest.approx(5.0 + t * 3.0 / math.sqrt(5), rel=1e-12)
    assert ci.level == 0.95
    assert ci.excludes_zero()
    wide = mean_interval(x, 0.99)
    assert wide.low < ci.low and wide.high > ci.high


def test_mean_interval_degenerate_cases() -> None:
    assert mean_interval([3.0, 3.0, 3.0]).low == 3.0 == mean_interval([3.0, 3.0, 3.0]).high
    single = mean_interval([1.0])
    assert single.estimate == 1.0 and math.isnan(single.low) and not single.excludes_zero()
    assert not mean_interval([-1.0, 1.0]).excludes_zero()


def _outcome(episode: int, ret: float, steps: int, violations: int, kpi: float) -> EpisodeOutcome:
    return EpisodeOutcome(episode, ret, steps, violations, {"c": violations}, {"k": kpi})


def test_violation_rate_pools_steps_over_episodes() -> None:
    # 3 violating steps out of 10 + 5 in the first two episodes, none in the third of 5: 3 / 20
    outcomes = [_outcome(0, 1.0, 10, 2, 1.0), _outcome(1, 2.0, 5, 1, 2.0), _outcome(2, 3.0, 5, 0, 6.0)]
    summary = ControllerSummary.of(outcomes, ["c"], ["k"], 0.95, 0.1)
    assert summary.violation_rate == pytest.approx(3 / 20)
    assert summary.constraint_rates == {"c": pytest.approx(3 / 20)}
    assert summary.kpis == {"k": 3.0}
    assert summary.cvar == 1.0
    assert summary.mean_return.estimate == 2.0
    np.testing.assert_allclose([o.total_return for o in summary.episodes], [1.0, 2.0, 3.0])
