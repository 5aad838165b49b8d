"""What every off-policy estimate returns: the value, an interval, support diagnostics and typed warnings."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from rlops.errors import ValidationError


class IntervalMethod(StrEnum):
    """How an estimate's interval is computed."""

    #: ``value ± z * se``, with ``se`` from the estimator's (linearised) per-unit terms. The default: cheap and,
    #: for the sample sizes logs have, accurate.
    NORMAL = "normal"
    #: Percentile bootstrap over units (rows or episodes), vectorised; ``IntervalSpec.n_bootstrap`` replicates.
    BOOTSTRAP = "bootstrap"
    #: One-sided high-confidence lower bound (the upper end is ``+inf``): the empirical-Bernstein inequality of
    #: Maurer & Pontil (2009, Theorem 4) on truncated importance-weighted rewards, as in Thomas et al. (2015),
    #: "High Confidence Off-Policy Evaluation". Valid without distributional assumptions, for gates.
    EMPIRICAL_BERNSTEIN = "empirical_bernstein"


@dataclass(frozen=True)
class IntervalSpec:
    """Which interval to compute, and its knobs.

    Args:
        method: see :class:`IntervalMethod`; default ``NORMAL``.
        level: confidence level in (0, 1); default 0.95 (a two-sided 95% interval, or for
            ``EMPIRICAL_BERNSTEIN`` a lower bound that holds with probability at least 95%).
        n_bootstrap: bootstrap replicates (``BOOTSTRAP`` only); default 1000.
        seed: seed of the bootstrap resampling and of the empirical-Bernstein data split; default 0.
        truncation: ``EMPIRICAL_BERNSTEIN`` only: the truncation ``c`` of the shifted importance-weighted terms. If
            ``None`` (default) it is chosen on a random ``holdout`` fraction of the units, and the bound is computed
            on the rest (Thomas et al. 2015, Section 4), so the bound stays valid.
        holdout: fraction of units used to choose ``truncation``; default 0.05 (Thomas et al. use 1/20).
    """

    method: IntervalMethod = IntervalMethod.NORMAL
    level: float = 0.95
    n_bootstrap: int = 1000
    seed: int = 0
    truncation: float | None = None
    holdout: float = 0.05

    def __post_init__(self) -> None:
        if not isinstance(self.method, IntervalMethod):
            raise ValidationError("interval.method", f"expected one of {[m.value for m in IntervalMethod]}")
        if not 0.0 < self.level < 1.0:
            raise ValidationError("interval.level", f"must be in (0, 1), got {self.level!r}")
        if self.n_bootstrap < 10:
            raise ValidationError("interval.n_bootstrap", f"must be at least 10, got {self.n_bootstrap!r}")
        if self.truncation is not None and not (self.truncation > 0 and math.isfinite(self.truncation)):
            raise ValidationError("interval.truncation", f"must be a finite number > 0, got {self.truncation!r}")
        if not 0.0 < self.holdout < 1.0:
            raise ValidationError("interval.holdout", f"must be in (0, 1), got {self.holdout!r}")


@dataclass(frozen=True)
class Interval:
    """A confidence interval (or a one-sided bound, with ``high = inf``) for a policy value.

    Attributes:
        low: lower end, in reward units.
        high: upper end, in reward units (``inf`` for a one-sided lower bound).
        level: confidence level, e.g. 0.95.
        method: how it was computed.
    """

    low: float
    high: float
    level: float
    method: IntervalMethod

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def width(self) -> float:
        return self.high - self.low


class SupportWarning(StrEnum):
    """Why an estimate may not be trustworthy: the logged data barely covers what the target policy does.

    Thresholds are in :class:`rlops.evaluation.ope.support.SupportThresholds`.
    """

    #: The target policy puts mass on logged actions whose logging propensity was below ``min_propensity``.
    LOW_PROPENSITY = "low_propensity"
    #: More than ``max_unsupported_mass`` of the target's probability mass is on actions the logging policy
    #: (almost) never takes: logging probability below ``min_propensity`` when the logging distribution is known,
    #: else a logged frequency below ``min_propensity``.
    UNSUPPORTED_ACTIONS = "unsupported_actions"
    #: The effective sample size of the importance weights is below ``min_ess`` or ``min_ess_fraction * n``.
    LOW_ESS = "low_ess"
    #: One unit carries more than ``max_weight_share`` of the total importance weight.
    DOMINANT_WEIGHT = "dominant_weight"


@dataclass(frozen=True)
class Estimate:
    """An estimated policy value with its uncertainty and support diagnostics.

    Attributes:
        estimator: the estimator's name, e.g. ``"dr"``.
        value: the estimated value of the target policy, in reward units (per decision for bandits, discounted
            return per episode for sequential estimators).
        interval: the confidence interval (or one-sided bound) requested.
        std_error: standard error from the linearised per-unit terms (reported whatever the interval method).
        n: number of units: logged decisions (bandits) or episodes (sequential).
        ess: Kish effective sample size of the importance weights, ``(sum w)^2 / sum w^2`` (per episode, the
            product of per-step ratios); ``nan`` if the estimator had no weights to report.
        max_weight: largest importance weight; ``nan`` if none.
        warnings: support problems found, in :class:`SupportWarning` order; empty when support looks fine.
        tuned: the hyperparameter the estimator chose from the data (Switch-DR's and DRos's ``lambda_`` when not
            given), else ``None``.
    """

    estimator: str
    value: float
    interval: Interval
    std_error: float
    n: int
    ess: float
    max_weight: float
    warnings: tuple[SupportWarning, ...] = ()
    tuned: float | None = None

    @property
    def ok(self) -> bool:
        """True when no support warning was raised."""
        return not self.warnings
