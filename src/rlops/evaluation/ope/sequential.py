"""Importance sampling over episodes: per-decision IS, weighted per-decision IS, and per-decision doubly robust.

With per-step ratios ``rho_t = pi_e(a_t | s_t) / pi_b(a_t | s_t)``, cumulative ratios ``W_t = rho_0 ... rho_t``
(``W_{-1} = 1``) and discount ``gamma``, for each episode:

- PDIS (Precup, Sutton & Singh 2000): ``sum_t gamma^t W_t r_t``, averaged over episodes. Unbiased.
- WPDIS (weighted PDIS; Precup et al. 2000, Thomas 2015): ``sum_t gamma^t sum_e W_et r_et / sum_e W_et``. Biased
  but consistent, much lower variance; invariant to adding a constant to every reward when episodes have equal
  length.
- PDDR (Jiang & Li 2016; Thomas & Brunskill 2016):
  ``sum_t gamma^t (W_t (r_t - Q(s_t, a_t)) + W_{t-1} V(s_t))`` with a model ``Q`` and ``V(s) = E_{a ~ pi_e} Q(s,
  a)``. Unbiased whatever the model; the better the model, the lower the variance. The model comes from
  ``EpisodeData.q_hat``/``v_hat`` when given, else from FQE cross-fitted over episodes (each episode's ``Q`` from
  a fit on the other folds).

Episodes that end early stay in an absorbing state (reward 0, ratio 1) up to the longest episode's length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rlops.errors import ValidationError
from rlops.evaluation.ope.base import DEFAULT_INTERVAL, finish
from rlops.evaluation.ope.episode_terms import (
    check_discount,
    cumulative_ratios,
    discounts,
    episode_support,
    pddr_terms,
)
from rlops.evaluation.ope.episodes import EpisodeData
from rlops.evaluation.ope.fqe import FQE
from rlops.evaluation.ope.intervals import Terms
from rlops.evaluation.ope.result import Estimate, IntervalSpec
from rlops.evaluation.ope.support import SupportThresholds


@dataclass(frozen=True)
class PDIS:
    """Per-decision importance sampling.

    Args:
        discount: ``gamma`` in (0, 1]; default 1 (the undiscounted return of each episode).
        thresholds: when to raise support warnings.

    The empirical-Bernstein bound is available with ``reward_bounds`` when rewards are non-negative, or when every
    episode has the same length (then rewards are shifted by their lower bound first).
    """

    discount: float = 1.0
    thresholds: SupportThresholds = field(default_factory=SupportThresholds)

    def __post_init__(self) -> None:
        check_discount(self.discount)

    @property
    def name(self) -> str:
        return "pdis"

    def estimate(self, data: EpisodeData, interval: IntervalSpec = DEFAULT_INTERVAL) -> Estimate:
        w = cumulative_ratios(data)
        g = discounts(data, self.discount)
        reward = data.pad(data.reward, 0.0)
        direct = (w * reward) @ g
        lower, offset = None, 0.0
        if data.reward_bounds is not None:
            low = data.reward_bounds[0]
            if low >= 0:
                lower = direct
            elif np.all(data.lengths == data.horizon):
                lower, offset = (w * (reward - low)) @ g, low * float(g.sum())
        return finish(self.name, Terms(direct=direct, lower=lower, lower_offset=offset),
                      episode_support(data, w, self.thresholds), interval)


@dataclass(frozen=True)
class WPDIS:
    """Weighted (self-normalised) per-decision importance sampling.

    Args:
        discount: ``gamma`` in (0, 1]; default 1.
        thresholds: when to raise support warnings.
    """

    discount: float = 1.0
    thresholds: SupportThresholds = field(default_factory=SupportThresholds)

    def __post_init__(self) -> None:
        check_discount(self.discount)

    @property
    def name(self) -> str:
        return "wpdis"

    def estimate(self, data: EpisodeData, interval: IntervalSpec = DEFAULT_INTERVAL) -> Estimate:
        w = cumulative_ratios(data)
        g = discounts(data, self.discount)
        terms = Terms(direct=np.zeros(data.n_episodes), numerator=w * data.pad(data.reward, 0.0) * g,
                      denominator=w)
        return finish(self.name, terms, episode_support(data, w, self.thresholds), interval)


@dataclass(frozen=True)
class PDDR:
    """Per-decision doubly robust estimation.

    Args:
        discount: ``gamma`` in (0, 1]; default 1.
        model: the FQE configuration used to fit ``Q`` when the data has no ``q_hat``/``v_hat``; its discount is
            replaced by ``discount``.
        folds: episode folds for cross-fitting that model (>= 2); default 2.
        thresholds: when to raise support warnings.
    """

    discount: float = 1.0
    model: FQE = field(default_factory=FQE)
    folds: int = 2
    thresholds: SupportThresholds = field(default_factory=SupportThresholds)

    def __post_init__(self) -> None:
        check_discount(self.discount)
        if self.folds < 2:
            raise ValidationError("folds", f"must be at least 2, got {self.folds!r}")

    @property
    def name(self) -> str:
        return "pddr"

    def estimate(self, data: EpisodeData, interval: IntervalSpec = DEFAULT_INTERVAL) -> Estimate:
        w = cumulative_ratios(data)  # fail on missing densities before fitting anything
        if data.q_hat is not None and data.v_hat is not None:
            q_hat, v_hat = data.q_hat, data.v_hat
        else:
            q_hat, v_hat = self.model.cross_fit(data, self.folds, discount=self.discount)
        terms = Terms(direct=pddr_terms(data, q_hat, v_hat, self.discount))
        return finish(self.name, terms, episode_support(data, w, self.thresholds), interval)
