"""Sequential guardrails: the boundary against hand-computed values, the monitor's judging, and by seeded
simulation its false-alarm rate and power, with bounds taken from the binomial so the tests are honest."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from rlops.errors import ConfigError, ValidationError
from rlops.rollout import (
    ArmMoments,
    Decision,
    Direction,
    GuardrailConfig,
    GuardrailMonitor,
    MetricGuard,
    ToleranceKind,
    contrast_sequence,
    fixed_horizon_samples,
    normal_mixture_radius,
    optimal_rho_ratio,
)

# ---- the boundary ------------------------------------------------------------------------------------------------


def test_radius_matches_a_hand_computed_value() -> None:
    # I = 100, rho = 10, alpha = 0.05: (110 * ln(110 / (10 * 0.0025))) = 110 * ln 4400 = 110 * 8.389360 = 922.8296;
    # sqrt = 30.37811; divided by I = 0.3037811.
    assert normal_mixture_radius(100.0, 10.0, 0.05) == pytest.approx(0.3037811, abs=1e-7)
    assert normal_mixture_radius(0.0, 10.0, 0.05) == math.inf


def test_radius_is_the_msprt_boundary() -> None:
    """Zero leaves the CS exactly when Johari et al.'s mixture likelihood ratio reaches 1 / alpha."""
    alpha, variance, tau = 0.05, 0.01, 0.04  # V of the estimate, mixing variance tau = 1 / rho
    radius = normal_mixture_radius(1.0 / variance, 1.0 / tau, alpha)
    for estimate in (0.9 * radius, 1.1 * radius):
        ratio = math.sqrt(variance / (variance + tau)) * math.exp(tau * estimate**2 / (2 * variance * (variance + tau)))
        assert (ratio >= 1.0 / alpha) == (estimate > radius)


def test_optimal_rho_ratio_minimises_the_radius() -> None:
    x = optimal_rho_ratio(0.05)
    assert x == pytest.approx(0.12177, abs=1e-4)
    at = normal_mixture_radius(1000.0, x * 1000.0, 0.05)
    assert at < normal_mixture_radius(1000.0, 0.8 * x * 1000.0, 0.05)
    assert at < normal_mixture_radius(1000.0, 1.25 * x * 1000.0, 0.05)
    big_l = -2 * math.log(0.05)
    assert x == pytest.approx(1 / (big_l + math.log(1 + big_l)), rel=0.05)  # Howard et al.'s closed form


def test_contrast_sequence_at_a_known_n() -> None:
    """Two arms of 200 with means 0.5 / 0.4 and sample variances 0.25 / 0.24 (n - 1 denominators)."""
    moments = ArmMoments()
    production = np.array([1.0] * 80 + [0.0] * 120)  # mean 0.4, s^2 = 0.4 * 0.6 * 200 / 199
    canary = np.array([1.0] * 100 + [0.0] * 100)  # mean 0.5, s^2 = 0.25 * 200 / 199
    moments.update(np.array([0] * 200 + [1] * 200), np.concatenate([production, canary]))
    s2_p, s2_c = 0.24 * 200 / 199, 0.25 * 200 / 199
    variance = s2_c / 200 + s2_p / 200
    rho = optimal_rho_ratio(0.05) * 150 / 200 / variance  # tune_at 150, n_eff 200
    radius = math.sqrt((1 / variance + rho) * math.log((1 / variance + rho) / (rho * 0.05**2))) * variance
    cs = contrast_sequence(moments, 1.0, 1.0, 0.0, alpha=0.05, tune_at=150)
    assert cs.estimate == pytest.approx(0.1)
    assert cs.upper - cs.estimate == pytest.approx(radius, rel=1e-12)
    assert cs.estimate - cs.lower == pytest.approx(radius, rel=1e-12)
    # By hand: V = 0.49 / 199 / 200 * 200 = 0.00246231, I = 406.122, rho = 0.121773 * 0.75 * I = 37.0911,
    # I + rho = 443.213, ln(443.213 / (37.0911 * 0.0025)) = 8.47215, sqrt(443.213 * 8.47215) / I = 0.150886.
    assert radius == pytest.approx(0.150886, abs=2e-6)


def test_moments_match_numpy_over_many_batches_with_a_large_offset() -> None:
    rng = np.random.default_rng(1)
    moments = ArmMoments()
    arms_all, values_all = [], []
    for size in (1, 7, 500, 3, 1000):
        arms = rng.integers(0, 2, size)
        values = 1e6 + rng.normal(size=size)
        moments.update(arms, values)
        arms_all.append(arms)
        values_all.append(values)
    arms, values = np.concatenate(arms_all), np.concatenate(values_all)
    for arm in (0, 1):
        assert moments.count[arm] == (arms == arm).sum()
        assert moments.mean[arm] == pytest.approx(values[arms == arm].mean(), rel=1e-14)
        assert moments.variance()[arm] == pytest.approx(values[arms == arm].var(ddof=1), rel=1e-8)


def test_fixed_horizon_samples() -> None:
    # (1.959964 + 1.644854)^2 * (1 / 0.5 + 1 / 0.5) / 0.05^2 = 12.9947 * 4 / 0.0025 = 20791.5
    assert fixed_horizon_samples(0.05, 1.0, 1.0) == 20792
    assert fixed_horizon_samples(-0.05, 1.0, 1.0) == 20792
    with pytest.raises(ValidationError, match="power"):
        fixed_horizon_samples(0.05, 1.0, 1.0, power=1.0)


# ---- the monitor -----------------------------------------------------------------------------------------------


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="max_samples"):
        GuardrailConfig.from_dict({"min_samples": 500, "max_samples": 100})
    with pytest.raises(ConfigError, match="unique"):
        GuardrailConfig.from_dict({"metrics": [{"name": "reward"}, {"name": "reward"}]})
    with pytest.raises(ConfigError, match=r"metrics\.0\.tolerance"):
        GuardrailConfig.from_dict({"metrics": [{"name": "reward", "tolerance": -1}]})
    with pytest.raises(ConfigError, match="alpha"):
        GuardrailConfig.from_dict({"alpha": 1.5})
    assert GuardrailConfig(max_samples=3000).tune_samples == 1000


@pytest.mark.parametrize(("arms", "values", "field"), [
    ([0, 2], [1.0, 1.0], "arms"),
    ([0, 0.5], [1.0, 1.0], "arms"),
    (["a", "b"], [1.0, 1.0], "arms"),
    ([0, 1], [1.0], "values.reward"),
    ([0, 1], [1.0, math.inf], "values.reward"),
    ([0, 1], {"latency": [1.0, 1.0]}, "values"),
])
def test_bad_batches_are_refused_naming_the_field(arms: list[object], values: object, field: str) -> None:
    monitor = GuardrailMonitor()
    with pytest.raises(ValidationError) as info:
        monitor.update(arms, values)  # type: ignore[arg-type]
    assert info.value.field == field


def test_a_mapping_must_name_every_metric() -> None:
    config = GuardrailConfig(metrics=(MetricGuard(name="reward"), MetricGuard(name="errors",
                                                                              direction=Direction.LOWER_IS_BETTER)))
    with pytest.raises(ValidationError, match="'errors' is missing"):
        GuardrailMonitor(config).update([0, 1], {"reward": [1.0, 0.0]})
    with pytest.raises(ValidationError, match="mapping"):
        GuardrailMonitor(config).update([0, 1], [1.0, 0.0])


def test_nan_means_not_observed() -> None:
    monitor = GuardrailMonitor(GuardrailConfig(min_samples=2))
    result = monitor.update(np.array([True, False, True, False]), [1.0, np.nan, 0.0, 2.0])
    reward = result.metric("reward")
    assert (reward.n_canary, reward.n_production) == (2, 1)
    assert (result.n_canary, result.n_production) == (2, 2)
    assert reward.canary_mean == 0.5


def test_waits_for_min_samples_then_rolls_back_a_clearly_worse_canary() -> None:
    rng = np.random.default_rng(0)
    monitor = GuardrailMonitor(GuardrailConfig(min_samples=100, max_samples=10_000))
    first = monitor.update(np.array([0] * 50 + [1] * 50), np.r_[np.ones(50), np.zeros(50)])
    assert first.decision is Decision.CONTINUE and "waiting" in first.reason
    result = first
    while not result.decided:
        arms = rng.integers(0, 2, 200)
        result = monitor.update(arms, rng.normal(np.where(arms == 1, 0.0, 1.0), 1.0))
    assert result.decision is Decision.ROLLBACK
    reward = result.metric("reward")
    assert reward.margin.upper < 0 and reward.difference.upper < 0
    assert "reward: canary worse than tolerated" in result.reason
    # The decision is final: more data is ignored.
    again = monitor.update([1, 0], [100.0, 0.0])
    assert again is result


def test_lower_is_better_metric_rolls_back_more_errors() -> None:
    rng = np.random.default_rng(2)
    config = GuardrailConfig(metrics=(MetricGuard(name="errors", direction=Direction.LOWER_IS_BETTER),),
                             max_samples=20_000)
    monitor = GuardrailMonitor(config)
    result = monitor.result()
    while not result.decided:
        arms = rng.integers(0, 2, 500)
        result = monitor.update(arms, {"errors": (rng.random(500) < np.where(arms == 1, 0.10, 0.02)).astype(float)})
    assert result.decision is Decision.ROLLBACK
    assert result.metric("errors").difference.estimate > 0  # more errors in the canary


def _run(config: GuardrailConfig, canary_mean: float, rng: np.random.Generator, batch: int = 100,
         production_mean: float = 1.0) -> tuple[Decision, int]:
    monitor = GuardrailMonitor(config)
    seen = 0
    while True:
        arms = rng.integers(0, 2, batch)
        result = monitor.update(arms, rng.normal(np.where(arms == 1, canary_mean, production_mean), 1.0))
        seen += batch
        if result.decided:
            return result.decision, seen


def test_a_degradation_inside_the_tolerance_is_promoted() -> None:
    """3% worse with 10% relative tolerance: acceptable, so proven within tolerance (early) or at max."""
    config = GuardrailConfig(metrics=(MetricGuard(name="reward", tolerance=0.10,
                                                  tolerance_kind=ToleranceKind.RELATIVE),),
                             min_samples=100, max_samples=20_000, tune_at=2_000)
    decisions = [_run(config, 0.97, np.random.default_rng(s), batch=500)[0] for s in range(5)]
    assert decisions == [Decision.PROMOTE] * 5


def test_absolute_tolerance_moves_the_margin() -> None:
    moments = ArmMoments()
    moments.update(np.array([0, 0, 1, 1]), np.array([1.0, 2.0, 1.0, 2.0]))
    guard = MetricGuard(name="reward", tolerance=0.25)
    assert guard.contrast() == (1.0, 1.0, 0.25)
    assert contrast_sequence(moments, *guard.contrast(), alpha=0.05, tune_at=10).estimate == 0.25
    lower = MetricGuard(name="latency", direction=Direction.LOWER_IS_BETTER, tolerance=0.1,
                        tolerance_kind=ToleranceKind.RELATIVE)
    assert lower.contrast() == (-1.0, -1.1, 0.0)  # margin = 1.1 * production - canary


# ---- by simulation ---------------------------------------------------------------------------------------------

RUNS = 100
ALPHA = 0.05
#: Effect 0.2 sd: the fixed-horizon test (two-sided 0.05, power 0.95) needs 1,300 decisions.
EFFECT = 0.2
FIXED = fixed_horizon_samples(EFFECT, 1.0, 1.0, alpha=ALPHA, power=0.95)
CONFIG = GuardrailConfig(alpha=ALPHA, min_samples=50, tune_at=FIXED // 2, max_samples=3 * FIXED // 2)
#: A count above this has probability < 0.001 if the false-rollback rate is at its guaranteed bound alpha.
MAX_FALSE = int(binom.ppf(0.999, RUNS, ALPHA))
#: A count below this has probability < 0.001 if the power is 0.95.
MIN_DETECTED = int(binom.ppf(0.001, RUNS, 0.95))


def _simulate(canary_mean: float, seed: int) -> list[tuple[Decision, int]]:
    seeds = np.random.SeedSequence(seed).spawn(RUNS)
    return [_run(CONFIG, canary_mean, np.random.default_rng(s)) for s in seeds]


def test_false_rollbacks_of_a_a_canaries_stay_under_alpha() -> None:
    outcomes = _simulate(1.0, seed=10)
    false = sum(d is Decision.ROLLBACK for d, _ in outcomes)
    assert MAX_FALSE == 13
    assert false <= MAX_FALSE, f"{false}/{RUNS} A/A canaries rolled back"
    assert all(d is Decision.PROMOTE for d, _ in outcomes if d is not Decision.ROLLBACK)


def test_the_same_bound_catches_naive_peeking() -> None:
    """The harness can fail: a z-test at one-sided 0.05 checked after every batch exceeds the bound above."""
    def peeking(rng: np.random.Generator) -> bool:
        moments = ArmMoments()
        for _ in range(CONFIG.max_samples * 2 // 100):
            arms = rng.integers(0, 2, 100)
            moments.update(arms, rng.normal(1.0, 1.0, 100))
            var = moments.variance()
            z = (moments.mean[1] - moments.mean[0]) / math.sqrt(var[1] / moments.count[1] + var[0] / moments.count[0])
            if z < -1.645:
                return True
        return False

    seeds = np.random.SeedSequence(10).spawn(RUNS)
    false = sum(peeking(np.random.default_rng(s)) for s in seeds)
    assert false > MAX_FALSE


def test_a_degraded_canary_is_rolled_back_in_time() -> None:
    outcomes = _simulate(1.0 - EFFECT, seed=11)
    detected = [n for d, n in outcomes if d is Decision.ROLLBACK]
    assert MIN_DETECTED == 87
    assert len(detected) >= MIN_DETECTED, f"only {len(detected)}/{RUNS} degraded canaries rolled back"
    assert float(np.median(detected)) <= 2 * FIXED  # the goal of issue 6: within 2x the fixed horizon


