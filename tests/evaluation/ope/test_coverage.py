"""Correctness, way 1: synthetic bandits with an exactly known target value.

Over 200 seeds, each estimator's 95% normal interval must cover the truth at least 90% of the time, and its error
must shrink with n. The coverage figures are printed (``pytest -s``) and recorded in ``docs/evaluation.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from rlops.evaluation.ope import (
    IPS,
    SNIPS,
    BanditData,
    DirectMethod,
    DoublyRobust,
    DRos,
    Estimator,
    IntervalMethod,
    IntervalSpec,
    SelfNormalizedDR,
    SwitchDR,
    cross_fit,
)
from tests.evaluation.ope.synthetic import make_bandit

ESTIMATORS: dict[str, Callable[[], Estimator[BanditData]]] = {
    "ips": IPS,
    "snips": SNIPS,
    "dm": DirectMethod,
    "dr": DoublyRobust,
    "sndr": SelfNormalizedDR,
    "switch-dr": SwitchDR,
    "dros": DRos,
}
SEEDS = 200
PROBLEM = make_bandit()


def _run(n: int, seeds: int) -> dict[str, np.ndarray]:
    """``(seeds, 3)`` arrays of (value, low, high) per estimator."""
    out = {name: np.empty((seeds, 3)) for name in ESTIMATORS}
    estimators = {name: make() for name, make in ESTIMATORS.items()}
    for seed in range(seeds):  # one small data set per seed; every estimator shares its cross-fitted model
        data = cross_fit(PROBLEM.sample(n, seed=seed))
        for name, estimator in estimators.items():
            est = estimator.estimate(data)
            out[name][seed] = (est.value, est.interval.low, est.interval.high)
    return out


@pytest.fixture(scope="module")
def small() -> dict[str, np.ndarray]:
    return _run(500, SEEDS)


def test_intervals_cover_the_truth(small: dict[str, np.ndarray]) -> None:
    truth = PROBLEM.truth
    lines = [f"truth {truth:.4f} (logging policy {PROBLEM.logging_value:.4f}), n=500, {SEEDS} seeds"]
    coverage = {}
    for name, rows in small.items():
        coverage[name] = float(np.mean((rows[:, 1] <= truth) & (truth <= rows[:, 2])))
        lines.append(f"  {name:<10} coverage {coverage[name]:.3f}  bias {rows[:, 0].mean() - truth:+.4f}  "
                     f"mean width {np.mean(rows[:, 2] - rows[:, 1]):.4f}")
    print("\n".join(lines))
    for name, c in coverage.items():
        assert c >= 0.90, f"{name}: coverage {c:.3f} < 0.90"


def test_error_shrinks_with_n(small: dict[str, np.ndarray]) -> None:
    truth = PROBLEM.truth
    large = _run(4000, 60)
    for name in ESTIMATORS:
        rmse_small = math.sqrt(float(np.mean((small[name][:, 0] - truth) ** 2)))
        errors = large[name][:, 0] - truth
        rmse_large = math.sqrt(float(np.mean(errors**2)))
        assert rmse_large < 0.5 * rmse_small, name  # sqrt(8) ~ 2.8x in theory
        bias, noise = float(errors.mean()), float(errors.std(ddof=1)) / math.sqrt(len(errors))
        assert abs(bias) < 4 * noise + 1e-3, f"{name}: bias {bias:+.4f} at n=4000"


def test_bootstrap_and_bernstein_cover_too() -> None:
    truth = PROBLEM.truth
    boot = IntervalSpec(method=IntervalMethod.BOOTSTRAP, n_bootstrap=200)
    bern = IntervalSpec(method=IntervalMethod.EMPIRICAL_BERNSTEIN)
    covered_boot, below = [], []
    for seed in range(60):
        data = PROBLEM.sample(500, seed=1000 + seed)
        covered_boot.append(SNIPS().estimate(data, boot).interval.contains(truth))
        below.append(IPS().estimate(data, bern).interval.low <= truth)
    assert np.mean(covered_boot) >= 0.85
    assert all(below)  # a 95% bound that holds without assumptions is conservative: it never failed here
