"""Support diagnostics: effective sample size, the largest weight, and warnings when the logs barely cover the target.

An importance-weighted estimate is only as good as the overlap between the logging and the target policy. These
checks are cheap (one pass over the weights, one over ``pi_e``) and run with every estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlops.errors import ValidationError
from rlops.evaluation.ope.data import BanditData
from rlops.evaluation.ope.result import SupportWarning


@dataclass(frozen=True)
class SupportThresholds:
    """When to warn about poor support.

    Args:
        min_propensity: a logging probability below this counts as "almost never taken"; default 0.01.
        max_unsupported_mass: warn (``UNSUPPORTED_ACTIONS``) when more than this share of the target's probability
            mass falls on such actions; default 0.01.
        min_ess: warn (``LOW_ESS``) when the effective sample size is below this; default 100.
        min_ess_fraction: ... or below this fraction of the number of units; default 0.01.
        max_weight_share: warn (``DOMINANT_WEIGHT``) when one unit holds more than this share of the total
            importance weight; default 0.05.
    """

    min_propensity: float = 0.01
    max_unsupported_mass: float = 0.01
    min_ess: float = 100.0
    min_ess_fraction: float = 0.01
    max_weight_share: float = 0.05

    def __post_init__(self) -> None:
        for name in ("min_propensity", "max_unsupported_mass", "min_ess_fraction", "max_weight_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValidationError(f"thresholds.{name}", f"must be in [0, 1], got {value!r}")
        if not self.min_ess >= 0.0:
            raise ValidationError("thresholds.min_ess", f"must be >= 0, got {self.min_ess!r}")


@dataclass(frozen=True)
class Support:
    """The diagnostics an :class:`~rlops.evaluation.ope.result.Estimate` carries."""

    ess: float
    max_weight: float
    warnings: tuple[SupportWarning, ...]


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` (0 when every weight is 0)."""
    total = float(weights.sum())
    squares = float(np.dot(weights, weights))
    return total * total / squares if squares > 0 else 0.0


def diagnose(
    weights: np.ndarray,
    thresholds: SupportThresholds,
    *,
    low_propensity: bool = False,
    unsupported_mass: float = 0.0,
) -> Support:
    """Diagnostics from per-unit importance weights.

    Args:
        weights: ``(n,)`` per-unit importance weights (per episode: the product of per-step ratios).
        thresholds: when to warn.
        low_propensity: whether the target put mass on a logged action whose propensity was below
            ``thresholds.min_propensity``.
        unsupported_mass: share of the target's mass on actions the logging policy (almost) never takes.
    """
    n = int(weights.shape[0])
    ess = effective_sample_size(weights)
    max_weight = float(weights.max()) if n else math.nan
    total = float(weights.sum())
    found: list[SupportWarning] = []
    if low_propensity:
        found.append(SupportWarning.LOW_PROPENSITY)
    if unsupported_mass > thresholds.max_unsupported_mass:
        found.append(SupportWarning.UNSUPPORTED_ACTIONS)
    if ess < thresholds.min_ess or ess < thresholds.min_ess_fraction * n:
        found.append(SupportWarning.LOW_ESS)
    if total > 0 and max_weight / total > thresholds.max_weight_share:
        found.append(SupportWarning.DOMINANT_WEIGHT)
    return Support(ess, max_weight, tuple(found))


def bandit_support(data: BanditData, thresholds: SupportThresholds) -> Support:
    """Diagnostics for bandit data (see :class:`~rlops.evaluation.ope.result.SupportWarning`)."""
    eps = thresholds.min_propensity
    low = bool(np.any((data.propensity < eps) & (data.target_at_logged > 0)))
    n, k = data.n, data.n_actions
    if data.pi_b is not None:  # the logging distribution is known: mass the target puts where the logger barely goes
        mass = float(data.pi_e[data.pi_b < eps].sum()) / n
    else:  # only logged propensities: fall back to how often each action was logged
        frequency = np.bincount(data.action, minlength=k) / n
        mass = float(data.pi_e.sum(axis=0)[frequency < eps].sum()) / n
    return diagnose(data.weights, thresholds, low_propensity=low, unsupported_mass=mass)
