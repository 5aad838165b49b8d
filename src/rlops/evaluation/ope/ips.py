"""Importance sampling for contextual bandits: IPS (optionally clipped) and self-normalised IPS.

With importance weights ``w_i = pi_e(a_i | x_i) / pi_b(a_i | x_i)`` (definitions as in the Open Bandit Pipeline,
``obp.ope.InverseProbabilityWeighting`` and ``SelfNormalizedInverseProbabilityWeighting``; point estimates agree with
obp 0.5.7 to 1e-8, see ``tests/evaluation/ope/test_obp_parity.py``):

- IPS: ``mean_i(min(w_i, clip) * r_i)`` (Horvitz & Thompson 1952; Strehl et al. 2010). Unbiased when ``clip`` is
  infinite (the default) and the logging policy covers the target's actions.
- SNIPS: ``sum_i w_i r_i / sum_i w_i`` (Swaminathan & Joachims 2015). Slightly biased, far less variance; invariant
  to adding a constant to every reward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rlops.errors import ValidationError
from rlops.evaluation.ope.base import DEFAULT_INTERVAL, finish
from rlops.evaluation.ope.data import BanditData
from rlops.evaluation.ope.intervals import Terms
from rlops.evaluation.ope.result import Estimate, IntervalSpec
from rlops.evaluation.ope.support import SupportThresholds, bandit_support


def check_lambda(field_name: str, value: float | None, *, allow_none: bool = False) -> None:
    """Hyperparameters named ``lambda_`` follow OBP: a number >= 0, ``inf`` allowed, NaN not."""
    if value is None and allow_none:
        return
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValidationError(field_name, f"must be a number >= 0 (inf allowed), got {value!r}")


@dataclass(frozen=True)
class IPS:
    """Inverse propensity scoring with optional weight clipping.

    Args:
        clip: largest importance weight used; larger weights are clipped to it (OBP's ``lambda_``). Default
            ``inf``: no clipping, unbiased. Clipping trades bias (always downward for non-negative rewards) for
            variance.
        thresholds: when to raise support warnings.

    The empirical-Bernstein bound (``IntervalMethod.EMPIRICAL_BERNSTEIN``) is available when the data declares
    ``reward_bounds``: it bounds ``mean(min(w, clip) (r - r_min)) + r_min`` from below, which is below the true
    value in expectation whatever the clipping (Thomas et al. 2015).
    """

    clip: float = math.inf
    thresholds: SupportThresholds = field(default_factory=SupportThresholds)

    def __post_init__(self) -> None:
        check_lambda("clip", self.clip)

    @property
    def name(self) -> str:
        return "ips"

    def estimate(self, data: BanditData, interval: IntervalSpec = DEFAULT_INTERVAL) -> Estimate:
        w = data.weights if math.isinf(self.clip) else np.minimum(data.weights, self.clip)
        lower, offset = None, 0.0
        if data.reward_bounds is not None:
            offset = data.reward_bounds[0]
            lower = w * (data.reward - offset)
        terms = Terms(direct=w * data.reward, lower=lower, lower_offset=offset)
        return finish(self.name, terms, bandit_support(data, self.thresholds), interval)


@dataclass(frozen=True)
class SNIPS:
    """Self-normalised inverse propensity scoring (Swaminathan & Joachims 2015).

    Args:
        thresholds: when to raise support warnings.

    Its normal interval linearises the ratio (delta method); its bootstrap resamples numerator and denominator
    together.
    """

    thresholds: SupportThresholds = field(default_factory=SupportThresholds)

    @property
    def name(self) -> str:
        return "snips"

    def estimate(self, data: BanditData, interval: IntervalSpec = DEFAULT_INTERVAL) -> Estimate:
        w = data.weights
        terms = Terms(direct=np.zeros(data.n), numerator=(w * data.reward)[:, None], denominator=w[:, None])
        return finish(self.name, terms, bandit_support(data, self.thresholds), interval)
