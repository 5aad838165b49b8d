"""Sequential guardrails: compare a canary with production after every batch without inflating false alarms.

A canary serves a share of the traffic next to production. After every batch of decisions the monitor updates,
per metric (reward, error rate, latency...), an anytime-valid confidence sequence (CS) for the difference of the
two arms' means, and decides:

* **ROLLBACK** as soon as some metric shows the canary worse than tolerated (the CS of the tolerance margin lies
  entirely below zero);
* **PROMOTE** as soon as every metric shows the canary within tolerance (every margin's CS lies above zero), or
  once every metric has ``max_samples`` observations in each arm (the canary is then declared not worse);
* **CONTINUE** otherwise.

Because the CS covers the true difference at *all* sample sizes at once with probability at least ``1 - alpha``,
looking after every batch (or every decision) and stopping on the first crossing keeps the false-rollback rate at
most ``alpha`` (Bonferroni-split across metrics). A fixed-horizon z-test checked after every batch does not: its
false-alarm rate grows without bound with the number of looks.

The boundary
------------
For one metric the estimate is the contrast ``m = a * mean_canary - b * mean_production + c`` (the *margin*: how
far the canary is inside its tolerance; ``a, b, c`` encode direction and tolerance, see :class:`MetricGuard`). Its
plug-in variance is ``V = a**2 s_c**2 / n_c + b**2 s_p**2 / n_p`` and its information ``I = 1 / V``. The centred
sum ``I * (m_hat - m)`` behaves as a Brownian motion in information time, and the two-sided normal-mixture boundary
of Robbins (1970) in the form of Howard, Ramdas, McAuliffe & Sekhon (2021, "Time-uniform, nonparametric,
nonasymptotic confidence sequences", Ann. Statist. 49(2), Proposition 5 / Eq. (14)) gives the radius::

    radius(I) = sqrt((I + rho) * log((I + rho) / (rho * alpha**2))) / I

which is exactly the mixture sequential probability ratio test (mSPRT) of Johari, Koomen, Pekelis & Walsh (2017,
"Peeking at A/B tests", KDD) as Optimizely's Stats Engine runs it with mixing variance ``tau = 1 / rho``: zero
leaves the CS when the mixture likelihood ratio reaches ``1 / alpha``. ``rho`` is tuned so that the CS is
narrowest after ``tune_at`` observations per arm (Howard et al. 2021, Section 3.5), on the standardised scale of
Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas (2024, "Time-uniform central limit theory and asymptotic confidence
sequences", Ann. Statist.), whose results make the plug-in variances asymptotically valid for any metric with a
finite variance; for bounded or sub-Gaussian metrics with known variance it is exact.

Assumptions: decisions are randomised between the arms (a sticky split by unit is fine when units are many and
independent), observations are independent across decisions, and each metric has a finite variance. Heavy-tailed
metrics such as raw latency converge slowly: guard the log of the latency, or cap it.

Example:
    >>> import numpy as np
    >>> monitor = GuardrailMonitor(GuardrailConfig(min_samples=50, max_samples=5_000))
    >>> rng = np.random.default_rng(0)
    >>> arms = rng.integers(0, 2, size=400)                       # 1 = canary, 0 = production
    >>> rewards = rng.normal(np.where(arms == 1, 0.5, 1.0), 1.0)  # a much worse canary
    >>> monitor.update(arms, rewards).decision
    <Decision.ROLLBACK: 'rollback'>
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from functools import lru_cache
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlops.configfile import parse_model
from rlops.errors import ValidationError


class Arm(IntEnum):
    """Which side of the split a decision was served by; the monitor takes arms as these integers."""

    PRODUCTION = 0
    CANARY = 1


class Direction(StrEnum):
    """Which way a metric is better."""

    HIGHER_IS_BETTER = "higher_is_better"  # reward, conversion
    LOWER_IS_BETTER = "lower_is_better"  # error rate, latency, cost


class ToleranceKind(StrEnum):
    """How a metric's tolerated degradation is expressed."""

    ABSOLUTE = "absolute"  # in the metric's units
    RELATIVE = "relative"  # a fraction of production's mean (for metrics with a positive mean)


class Decision(StrEnum):
    """What the guardrail says after a batch."""

    CONTINUE = "continue"
    ROLLBACK = "rollback"
    PROMOTE = "promote"


class MetricGuard(BaseModel):
    """One metric the canary is compared on.

    Attributes:
        name: the metric's name, as given to :meth:`GuardrailMonitor.update`.
        direction: which way is better (default: higher, as for a reward).
        tolerance: how much worse the canary may be and still be acceptable, >= 0 (default 0: any significant
            degradation rolls back).
        tolerance_kind: ``absolute`` (metric units, default) or ``relative`` (a fraction of production's mean).

    With direction higher-is-better the canary is acceptable while its *margin*
    ``mean_c - (1 - r) * mean_p + e`` is >= 0 (``r`` the relative tolerance, ``e`` the absolute one); with
    lower-is-better, while ``(1 + r) * mean_p + e - mean_c`` is >= 0. A relative tolerance on a metric whose mean
    can be negative is meaningless; use an absolute one there.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=100)
    direction: Direction = Direction.HIGHER_IS_BETTER
    tolerance: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    tolerance_kind: ToleranceKind = ToleranceKind.ABSOLUTE

    def contrast(self) -> tuple[float, float, float]:
        """``(a, b, c)`` with margin ``= a * mean_canary - b * mean_production + c``."""
        relative = self.tolerance if self.tolerance_kind is ToleranceKind.RELATIVE else 0.0
        absolute = self.tolerance if self.tolerance_kind is ToleranceKind.ABSOLUTE else 0.0
        if self.direction is Direction.HIGHER_IS_BETTER:
            return 1.0, 1.0 - relative, absolute
        return -1.0, -(1.0 + relative), absolute


class GuardrailConfig(BaseModel):
    """How a canary is judged against production.

    Attributes:
        metrics: the metrics compared (default: one, ``reward``, higher is better, no tolerance). Names are unique.
        alpha: the probability, over the whole canary however often it is checked, of a false ROLLBACK (a canary
            no worse than tolerated rolled back) or a false early PROMOTE; split evenly across metrics. Default 0.05.
        min_samples: observations each arm needs on a metric before that metric can decide (protects the plug-in
            variances). Default 100.
        max_samples: once every metric has this many observations in each arm and nothing rolled back, the canary
            is declared not worse and promoted. Default 100,000.
        tune_at: observations per arm (of an even split) at which the confidence sequences are narrowest; set it
            where you expect a real degradation to be caught, e.g. the fixed-horizon sample of
            :func:`fixed_horizon_samples` divided by 2. Default ``max_samples // 3``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    metrics: tuple[MetricGuard, ...] = Field(default=(MetricGuard(name="reward"),), min_length=1)
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    min_samples: int = Field(default=100, ge=2)
    max_samples: int = Field(default=100_000, ge=2)
    tune_at: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> GuardrailConfig:
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"metric names must be unique, got {names}")
        if self.max_samples < self.min_samples:
            raise ValueError(f"max_samples ({self.max_samples}) must be >= min_samples ({self.min_samples})")
        return self

    @classmethod
    def from_dict(cls, data: Any, source: str = "guardrails") -> GuardrailConfig:
        """Validate a parsed YAML/JSON mapping; a bad one is a :class:`~rlops.errors.ConfigError` naming the field."""
        return parse_model(cls, data, source, "guardrail")

    @property
    def tune_samples(self) -> int:
        """``tune_at``, or its default ``max_samples // 3``."""
        return self.tune_at if self.tune_at is not None else max(1, self.max_samples // 3)

    @property
    def metric_alpha(self) -> float:
        """The level each metric's confidence sequence is built at: ``alpha / len(metrics)``."""
        return self.alpha / len(self.metrics)


# ---- compute: the boundary --------------------------------------------------------------------------------------


def normal_mixture_radius(information: float, rho: float, alpha: float) -> float:
    """Half-width, in the estimate's units, of the two-sided normal-mixture confidence sequence.

    ``sqrt((I + rho) * log((I + rho) / (rho * alpha**2))) / I`` (Howard et al. 2021, Eq. (14), divided by the
    information to move from the sum to the mean scale).

    Args:
        information: ``I``, the inverse variance of the estimate (for a mean of ``n`` unit-variance observations,
            ``n``), > 0.
        rho: the mixing precision in the same units, > 0 (the prior on the drift is ``N(0, 1 / rho)``).
        alpha: the miscoverage over all times, in (0, 1).

    Returns:
        The radius; ``inf`` when ``information`` is 0 (nothing observed).

    Example:
        >>> round(normal_mixture_radius(100.0, 10.0, 0.05), 5)
        0.30378
    """
    if not 0.0 < alpha < 1.0:
        raise ValidationError("alpha", f"must be in (0, 1), got {alpha}")
    if rho <= 0.0:
        raise ValidationError("rho", f"must be > 0, got {rho}")
    if information <= 0.0:
        return math.inf
    total = information + rho
    return math.sqrt(total * math.log(total / (rho * alpha * alpha))) / information


@lru_cache(maxsize=64)
def optimal_rho_ratio(alpha: float) -> float:
    """``rho / I*`` that makes :func:`normal_mixture_radius` smallest at information ``I*``.

    Minimising ``(1 + x) * log((1 + x) / (x * alpha**2))`` over ``x = rho / I*`` gives
    ``log((1 + x) / (x * alpha**2)) = 1 / x``, whose left minus right side increases in ``x``; solved here by
    bisection on ``log x``. Close to ``1 / (L + log(1 + L))`` with ``L = -2 log alpha`` (Howard et al. 2021,
    Section 3.5); 0.1218 for ``alpha = 0.05``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValidationError("alpha", f"must be in (0, 1), got {alpha}")
    lo, hi = -40.0, 40.0  # log x
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        x = math.exp(mid)
        if math.log((1.0 + x) / (x * alpha * alpha)) - 1.0 / x < 0.0:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


def fixed_horizon_samples(effect: float, variance_canary: float, variance_production: float, *,
                          alpha: float = 0.05, power: float = 0.95, canary_share: float = 0.5) -> int:
    """Total decisions (both arms) a single look at a two-sided level-``alpha`` z-test needs for ``power``.

    ``n = (z_{1 - alpha/2} + z_{power})**2 * (var_c / share + var_p / (1 - share)) / effect**2``: the yardstick a
    sequential test's time to detection is compared with (the same error rates, but one look fixed in advance).

    Args:
        effect: the true difference of means to detect, in metric units (its sign is ignored), != 0.
        variance_canary: per-observation variance in the canary arm (``p (1 - p)`` for a Bernoulli reward).
        variance_production: the same in production.
        alpha: two-sided level, in (0, 1); the rollback side alone is then at ``alpha / 2``. Default 0.05.
        power: probability of detecting ``effect``, in (0, 1). Default 0.95.
        canary_share: the canary's share of the traffic, in (0, 1). Default 0.5.
    """
    for name, value in (("alpha", alpha), ("power", power), ("canary_share", canary_share)):
        if not 0.0 < value < 1.0:
            raise ValidationError(name, f"must be in (0, 1), got {value}")
    if effect == 0.0 or not math.isfinite(effect):
        raise ValidationError("effect", f"must be a finite non-zero difference, got {effect}")
    if variance_canary < 0.0 or variance_production < 0.0:
        raise ValidationError("variance", "must be >= 0")
    z = NormalDist().inv_cdf
    spread = variance_canary / canary_share + variance_production / (1.0 - canary_share)
    return math.ceil((z(1.0 - alpha / 2.0) + z(power)) ** 2 * spread / effect**2)


# ---- compute: running moments of both arms ----------------------------------------------------------------------


class ArmMoments:
    """Count, mean and sum of squared deviations of one metric in each arm, merged batch by batch.

    Batches are merged with the pairwise update of Chan, Golub & LeVeque (1979), so a long canary does not lose
    precision to ``sum(x**2) - n * mean**2`` cancellation.
    """

    def __init__(self) -> None:
        self.count = np.zeros(2, dtype=np.int64)
        self.mean = np.zeros(2)
        self.m2 = np.zeros(2)

    def update(self, arms: NDArray[np.int64], values: NDArray[np.float64]) -> None:
        """Fold in a batch; ``arms`` are 0/1, ``values`` finite (rows with NaN must be dropped before)."""
        counts = np.bincount(arms, minlength=2)
        if counts.sum() == 0:
            return
        sums = np.bincount(arms, weights=values, minlength=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
        m2 = np.bincount(arms, weights=(values - means[arms]) ** 2, minlength=2)
        total = self.count + counts
        delta = means - self.mean
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, counts / np.maximum(total, 1), 0.0)
        self.mean = self.mean + delta * share
        self.m2 = self.m2 + m2 + delta**2 * self.count * share
        self.count = total

    def variance(self) -> NDArray[np.float64]:
        """Unbiased sample variance per arm (0 with fewer than two observations)."""
        return np.where(self.count > 1, self.m2 / np.maximum(self.count - 1, 1), 0.0)


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence-sequence bounds at one time."""

    estimate: float
    lower: float
    upper: float


def contrast_sequence(moments: ArmMoments, a: float, b: float, c: float, *, alpha: float,
                      tune_at: int) -> Interval:
    """The CS of ``a * mean_canary - b * mean_production + c`` from both arms' moments.

    The mixing precision is ``rho = x* * tune_at / n_eff * I`` with ``x* = optimal_rho_ratio(alpha)`` and
    ``n_eff = (a**2 s_c**2 + b**2 s_p**2) / V``, the per-arm sample of an even split with the same precision: on
    the standardised scale the CS is narrowest at ``n_eff = tune_at``.
    """
    n_p, n_c = (int(n) for n in moments.count)
    mean_p, mean_c = (float(m) for m in moments.mean)
    var_p, var_c = (float(v) for v in moments.variance())
    estimate = a * mean_c - b * mean_p + c
    if n_c < 2 or n_p < 2:
        return Interval(estimate, -math.inf, math.inf)
    unit = a * a * var_c + b * b * var_p
    variance = a * a * var_c / n_c + b * b * var_p / n_p
    if variance <= 0.0 or unit <= 0.0:
        return Interval(estimate, -math.inf, math.inf)  # no spread seen yet: no information
    information = 1.0 / variance
    n_eff = unit * information
    rho = optimal_rho_ratio(alpha) * tune_at / n_eff * information
    radius = normal_mixture_radius(information, rho, alpha)
    return Interval(estimate, estimate - radius, estimate + radius)


# ---- judge -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricResult:
    """One metric after a batch: the numbers and what they say.

    Attributes:
        metric: the metric's name.
        decision: ROLLBACK (worse than tolerated), PROMOTE (within tolerance, or ``max_samples`` reached) or
            CONTINUE, for this metric alone.
        n_canary: observations of the metric in the canary arm.
        n_production: the same in production.
        canary_mean: the canary's mean.
        production_mean: production's mean.
        difference: ``canary_mean - production_mean`` with its confidence sequence at ``alpha``.
        margin: how far inside its tolerance the canary is (``>= 0`` acceptable; see :class:`MetricGuard`) with
            its confidence sequence at ``alpha``: the decision reads this one.
        alpha: the level of this metric's sequences (the config's ``alpha`` split across metrics).
    """

    metric: str
    decision: Decision
    n_canary: int
    n_production: int
    canary_mean: float
    production_mean: float
    difference: Interval
    margin: Interval
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        def finite(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {"metric": self.metric, "decision": self.decision.value, "n_canary": self.n_canary,
                "n_production": self.n_production, "canary_mean": self.canary_mean,
                "production_mean": self.production_mean, "alpha": self.alpha,
                **{f"{key}_{part}": finite(getattr(interval, part))
                   for key, interval in (("difference", self.difference), ("margin", self.margin))
                   for part in ("estimate", "lower", "upper")}}


@dataclass(frozen=True)
class GuardrailResult:
    """The guardrail's verdict after a batch.

    Attributes:
        decision: CONTINUE, ROLLBACK or PROMOTE for the canary as a whole.
        reason: one sentence with the numbers behind the decision.
        metrics: every metric's numbers, in config order.
        n_canary: decisions seen in the canary arm (over all batches).
        n_production: decisions seen in production.
        batches: batches consumed.
    """

    decision: Decision
    reason: str
    metrics: tuple[MetricResult, ...]
    n_canary: int
    n_production: int
    batches: int

    @property
    def decided(self) -> bool:
        """True once the canary was rolled back or promoted (the monitor then ignores further batches)."""
        return self.decision is not Decision.CONTINUE

    def metric(self, name: str) -> MetricResult:
        for m in self.metrics:
            if m.metric == name:
                return m
        raise ValidationError("metric", f"unknown metric {name!r} (known: {[m.metric for m in self.metrics]})")

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision.value, "reason": self.reason, "n_canary": self.n_canary,
                "n_production": self.n_production, "batches": self.batches,
                "metrics": [m.to_dict() for m in self.metrics]}


def judge_metric(guard: MetricGuard, moments: ArmMoments, config: GuardrailConfig) -> MetricResult:
    """Build one metric's confidence sequences and judge them (no state: the same moments, the same result)."""
    alpha = config.metric_alpha
    tune = config.tune_samples
    a, b, c = guard.contrast()
    margin = contrast_sequence(moments, a, b, c, alpha=alpha, tune_at=tune)
    difference = contrast_sequence(moments, 1.0, 1.0, 0.0, alpha=alpha, tune_at=tune)
    n_p, n_c = (int(n) for n in moments.count)
    enough = min(n_p, n_c) >= config.min_samples
    if enough and margin.upper < 0.0:
        decision = Decision.ROLLBACK
    elif (enough and margin.lower > 0.0) or min(n_p, n_c) >= config.max_samples:
        decision = Decision.PROMOTE
    else:
        decision = Decision.CONTINUE
    return MetricResult(guard.name, decision, n_c, n_p, float(moments.mean[1]), float(moments.mean[0]),
                        difference, margin, alpha)


def _reason(results: Sequence[MetricResult], decision: Decision, config: GuardrailConfig) -> str:
    if decision is Decision.ROLLBACK:
        worst = min((r for r in results if r.decision is Decision.ROLLBACK), key=lambda r: r.margin.upper)
        return (f"{worst.metric}: canary worse than tolerated (margin {worst.margin.estimate:.4g}, confidence "
                f"sequence [{worst.margin.lower:.4g}, {worst.margin.upper:.4g}] below 0 at alpha {worst.alpha:.3g}; "
                f"canary {worst.canary_mean:.4g} vs production {worst.production_mean:.4g}, n = {worst.n_canary:,} "
                f"/ {worst.n_production:,})")
    if decision is Decision.PROMOTE:
        if all(min(r.n_canary, r.n_production) >= config.max_samples for r in results):
            return (f"no metric worse than tolerated after {config.max_samples:,} observations per arm: canary "
                    "declared not worse")
        return "every metric's margin confidence sequence is above 0: canary within tolerance on all metrics"
    waiting = [r for r in results if min(r.n_canary, r.n_production) < config.min_samples]
    if waiting:
        return f"waiting for {config.min_samples:,} observations per arm on " + ", ".join(r.metric for r in waiting)
    return "no metric decided yet: " + "; ".join(
        f"{r.metric} margin {r.margin.estimate:.4g} in [{r.margin.lower:.4g}, {r.margin.upper:.4g}]" for r in results)


# ---- the monitor ------------------------------------------------------------------------------------------------


class GuardrailMonitor:
    """Consumes ``(arm, value)`` batches and says CONTINUE, ROLLBACK or PROMOTE after each one.

    Args:
        config: metrics, alpha, sample limits (default: one ``reward`` metric, alpha 0.05).

    The decision is final: once ROLLBACK or PROMOTE, later batches are ignored and the same result is returned
    (continuing to look after stopping would spend error the test no longer has).
    """

    def __init__(self, config: GuardrailConfig | None = None) -> None:
        self.config = config if config is not None else GuardrailConfig()
        self._moments = {m.name: ArmMoments() for m in self.config.metrics}
        self._batches = 0
        self._arm_counts = np.zeros(2, dtype=np.int64)
        self._final: GuardrailResult | None = None

    def update(self, arms: ArrayLike, values: ArrayLike | Mapping[str, ArrayLike]) -> GuardrailResult:
        """Fold in one batch of decisions and judge.

        Args:
            arms: per decision, 1 (or True) for the canary and 0 (or False) for production; see :class:`Arm`.
            values: per decision, the metric's value, as one array when the config has one metric, or a mapping
                ``metric name -> array`` naming every configured metric. NaN means "not observed for this
                decision" (a reward that has not arrived) and is skipped; infinities are refused.

        Raises:
            ValidationError: arms not 0/1, lengths differ, a metric missing or unknown, an infinite value.
        """
        if self._final is not None:
            return self._final
        arm = _arms(arms)
        columns = self._columns(values, len(arm))
        for name, column in columns.items():
            seen = ~np.isnan(column)
            self._moments[name].update(arm[seen], column[seen])
        self._arm_counts += np.bincount(arm, minlength=2)
        self._batches += 1
        result = self.result()
        if result.decided:
            self._final = result
        return result

    def result(self) -> GuardrailResult:
        """The verdict on everything consumed so far (without consuming anything)."""
        if self._final is not None:
            return self._final
        results = tuple(judge_metric(m, self._moments[m.name], self.config) for m in self.config.metrics)
        if any(r.decision is Decision.ROLLBACK for r in results):
            decision = Decision.ROLLBACK
        elif all(r.decision is Decision.PROMOTE for r in results):
            decision = Decision.PROMOTE
        else:
            decision = Decision.CONTINUE
        return GuardrailResult(decision, _reason(results, decision, self.config), results,
                               int(self._arm_counts[Arm.CANARY]), int(self._arm_counts[Arm.PRODUCTION]),
                               self._batches)

    def _columns(self, values: ArrayLike | Mapping[str, ArrayLike], n: int) -> dict[str, NDArray[np.float64]]:
        names = [m.name for m in self.config.metrics]
        if isinstance(values, Mapping):
            unknown = sorted(set(values) - set(names))
            if unknown:
                raise ValidationError("values", f"unknown metric {unknown[0]!r} (configured: {names})")
            missing = [k for k in names if k not in values]
            if missing:
                raise ValidationError("values", f"metric {missing[0]!r} is missing (configured: {names})")
            mapping = dict(values)
        elif len(names) == 1:
            mapping = {names[0]: values}
        else:
            raise ValidationError("values", f"give a mapping of metric name to values for the metrics {names}")
        columns = {}
        for name in names:
            try:
                column = np.asarray(mapping[name], dtype=np.float64).reshape(-1)
            except (TypeError, ValueError) as e:
                raise ValidationError(f"values.{name}", f"must be numbers: {e}") from e
            if len(column) != n:
                raise ValidationError(f"values.{name}", f"has {len(column)} values for {n} arms")
            if np.isinf(column).any():
                raise ValidationError(f"values.{name}", "must be finite (NaN marks a missing value)")
            columns[name] = column
        return columns


def _arms(arms: ArrayLike) -> NDArray[np.int64]:
    try:
        raw = np.asarray(arms).reshape(-1)
    except (TypeError, ValueError) as e:
        raise ValidationError("arms", f"must be an array of 0 (production) and 1 (canary): {e}") from e
    if raw.dtype == np.bool_:
        return raw.astype(np.int64)
    if raw.size and not np.issubdtype(raw.dtype, np.number):
        raise ValidationError("arms", f"must be 0 (production) or 1 (canary), got values of type {raw.dtype}")
    as_int = raw.astype(np.int64) if raw.size else np.zeros(0, dtype=np.int64)
    if raw.size and (not np.array_equal(as_int, raw) or as_int.min() < 0 or as_int.max() > 1):
        bad = raw[(as_int != raw) | (as_int < 0) | (as_int > 1)][0]
        raise ValidationError("arms", f"must be 0 (production) or 1 (canary), got {bad!r}")
    return as_int
