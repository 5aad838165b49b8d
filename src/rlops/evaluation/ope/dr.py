"""The direct method and the doubly robust family for contextual bandits: DM, DR, SNDR, Switch-DR and DRos.

With a reward model ``q(x, a)``, ``q(x, pi_e) = sum_a pi_e(a | x) q(x, a)`` and importance weights ``w_i``, every
estimator here averages ``q(x_i, pi_e) + w'_i (r_i - q(x_i, a_i))`` and differs only in the weight ``w'``. The
definitions (and the meaning of every ``lambda_``) are exactly those of the Open Bandit Pipeline 0.5.7
(``obp.ope.DirectMethod``, ``DoublyRobust``, ``SelfNormalizedDoublyRobust``, ``SwitchDoublyRobust``,
``DoublyRobustWithShrinkage``); point estimates agree with it to 1e-8 given the same ``q_hat``:

==========  =========================================================  ============================================
estimator   ``w'``                                                     reference
==========  =========================================================  ============================================
DM          0                                                          Beygelzimer & Langford (2009)
DR          ``min(w, clip)``                                           Dudik, Langford & Li (2011)
SNDR        ``w / mean(w)``                                            Kallus & Uehara (2019)
Switch-DR   ``w * 1{w <= lambda_}`` (DM where the weight exceeds it)   Wang, Agarwal & Dudik (2017)
DRos        ``lambda_ * w / (w**2 + lambda_)``; ``w`` if ``lambda_``     Su, Dimakopoulou, Krishnamurthy & Dudik
            is ``inf``, 0 (DM) if ``lambda_`` is 0                     (2020)
==========  =========================================================  ============================================

The reward model comes from ``data.q_hat`` when given, else from the estimator's ``reward_model`` (default: 5-fold
cross-fitted ridge per action, :class:`~rlops.evaluation.ope.reward_model.CrossFitted`). To share one fit across
estimators, attach it first with :func:`~rlops.evaluation.ope.reward_model.cross_fit`.

Switch-DR and DRos choose ``lambda_`` themselves when it is ``None`` (the default): from a grid, the value
minimising an estimated mean squared error ``var / n + bias_bound**2``, where ``bias_bound`` is the upper end of a
95% normal interval on the bias ``mean((w - w') (r - q(x, a)))`` (in the spirit of Wang et al. 2017, Section 4.2,
and Su et al. 2020, Section 4). The chosen value is reported as ``Estimate.tuned``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.stats import norm

from rlops.evaluation.ope.base import DEFAULT_INTERVAL, finish
from rlops.evaluation.ope.data import BanditData
from rlops.evaluation.ope.intervals import Terms
from rlops.evaluation.ope.ips import check_lambda
from rlops.evaluation.ope.result import Estimate, IntervalSpec
from rlops.evaluation.ope.reward_model import CrossFitted, RewardModel
from rlops.evaluation.ope.support import SupportThresholds, bandit_support


@dataclass(frozen=True)
class _Parts:
    """What every member of the family needs: ``q(x_i, pi_e)``, the weights and the residuals ``r - q(x, a)``."""

    dm: np.ndarray
    w: np.ndarray
    residual: np.ndarray


def _parts(data: BanditData, model: RewardModel) -> _Parts:
    q_hat = data.q_hat if data.q_hat is not None else model.fit_predict(data)
    dm = np.einsum("ij,ij->i", data.pi_e, q_hat)
    residual = data.reward - q_hat[np.arange(data.n), data.action]
    return _Parts(dm, data.weights, residual)


def _tune(parts: _Parts, grid: np.ndarray, shrink: Callable[[np.ndarray, float], np.ndarray]) -> float:
    """The ``lambda_`` in ``grid`` with the smallest estimated MSE (see the module docstring)."""
    n = parts.w.shape[0]
    z = float(norm.ppf(0.975))
    best, best_mse = float(grid[-1]), math.inf
    for lam in grid:  # a loop over a dozen candidates; each step is vectorised over rows
        w_shrunk = shrink(parts.w, float(lam))
        correction = w_shrunk * parts.residual
        variance = float(np.var(parts.dm + correction, ddof=1)) / n
        gap = (parts.w - w_shrunk) * parts.residual
        bias = abs(float(gap.mean())) + z * float(gap.std(ddof=1)) / math.sqrt(n)
        mse = variance + bias * bias
        if mse < best_mse:
            best, best_mse = float(lam), mse
    return best


def _switch(w: np.ndarray, lam: float) -> np.ndarray:
    return w * (w <= lam)


def _shrink(w: np.ndarray, lam: float) -> np.ndarray:
    if math.isinf(lam):
        return w
    return lam * w / (w * w + lam)


@dataclass(frozen=True)
class DirectMethod:
    """The direct method: ``mean_i q(x_i, pi_e)``.

    Args:
        reward_model: used when ``data.q_hat`` is not given; default 5-fold cross-fitted ridge per action.
        thresholds: when to raise support warnings (DM uses no weights, but it extrapolates where support is poor,
            so the same diagnostics apply).

    Its interval is centred on the DM estimate but uses the spread of the doubly robust terms
    ``q(x_i, pi_e) + w_i (r_i - q(x_i, a_i))``: the spread of ``q(x_i, pi_e)`` alone ignores the reward model's own
    estimation error and undercovers badly. With a well-specified model this is conservative.
    """

    reward_model: RewardModel = field(default_factory=CrossFitted)
    thresholds: SupportThresholds = field(default_factory=SupportThresholds)

    @property
    def name(self) -> str:
        return "dm"

    def estimate(self, data: BanditData, interval: IntervalSpec = DEFAULT_INTERVAL) -> Estimate:
        p = _parts(data, self.reward_model)
        correction = p.w * p.residual
        value = float(p.dm.mean())
        result = finish(self.name, Terms(direct=p.dm + (correction - correction.mean())),
                        bandit_support(data, self.thresholds), interval)
        # the terms' mean equals the DM value up to rounding; report the DM value exactly
        return _with_value(result, value)


def _with_value(result: Estimate, value: float) -> Estimate:
    shift = value - result.value
    iv = result.interval
    return replace(result, value=value, interval=replace(iv, low=iv.low + shift, high=iv.high + shift))


@dataclass(frozen=True)
class DoublyRobust:
    """Doubly robust estimation (Dudik, Langford & Li 2011), with optional weight clipping.

    Args:
        clip: largest importance weight used in the correction (OBP's ``lambda_`` of ``DoublyRobust``); default
            ``inf``.
        reward_model: used when ``data.q_hat`` is not given; default 5-fold cross-fitted ridge per action.
        thresholds: when to raise support warnings.
    """

    clip: float = math.inf
    reward_model: RewardModel = field(default_factory=CrossFitted)
    thresholds: SupportThresholds = field(default_factory=SupportThresholds)

    def __post_init__(self) -> None:
        check_lambda("clip", self.clip)

    @property
    def name(self) -> str:
        return "dr"

    def estimate(self, data: BanditData, interval: IntervalSpec = DEFAULT_INTERVAL) -> Estimate:
        p = _parts(data, self.reward_model)
        w = p.w if math.isinf(self.clip) else np.minimum(p.w, self.clip)
        return finish(self.name, Terms(direct=p.dm + w * p.residual), bandit_support(data, self.thresholds),
                      interval)


@dataclass(frozen=True)
class SelfNormalizedDR:
    """Self-normalised doubly robust estimation: the correction's weights are divided by their mean.

    Args:
        reward_model: used when ``data.q_hat`` is not given; default 5-fold cross-fitted ridge per action.
        thresholds: when to raise support warnings.
    """

    reward_model: RewardModel = field(default_factory=CrossFitted)
    thresholds: SupportThresholds = field(default_factory=SupportThresholds)

    @property
    def name(self) -> str:
        return "sndr"

    def estimate(self, data: BanditData, interval: IntervalSpec = DEFAULT_INTERVAL) -> Estimate:
        p = _parts(data, self.reward_model)
        terms = Terms(direct=p.dm, numerator=(p.w * p.residual)[:, None], denominator=p.w[:, None])
        return finish(self.name, terms, bandit_support(data, self.thresholds), interval)


@dataclass(frozen=True)
class SwitchDR:
    """Switch doubly robust estimation (Wang, Agarwal & Dudik 2017): DR where ``w <= lambda_``, DM elsewhere.

    Args:
        lambda_: the switching threshold on the importance weight, exactly OBP's ``SwitchDoublyRobust.lambda_``
            (the correction is kept where ``w <= lambda_``); ``inf`` is DR, 0 is DM. ``None`` (default) tunes it
            from the data, among the weights' 50th-100th percentiles and ``inf``.
        reward_model: used when ``data.q_hat`` is not given; default 5-fold cross-fitted ridge per action.
        thresholds: when to raise support warnings.
    """

    lambda_: float | None = None
    reward_model: RewardModel = field(default_factory=CrossFitted)
    thresholds: SupportThresholds = field(default_factory=SupportThresholds)

    def __post_init__(self) -> None:
        check_lambda("lambda_", self.lambda_, allow_none=True)

    @property
    def name(self) -> str:
        return "switch-dr"

    def estimate(self, data: BanditData, interval: IntervalSpec = DEFAULT_INTERVAL) -> Estimate:
        p = _parts(data, self.reward_model)
        lam = self.lambda_
        if lam is None:
            positive = p.w[p.w > 0]
            grid = np.unique(np.quantile(positive, np.linspace(0.5, 1.0, 11))) if positive.size else np.array([])
            lam = _tune(p, np.append(grid, math.inf), _switch)
        terms = Terms(direct=p.dm + _switch(p.w, lam) * p.residual)
        result = finish(self.name, terms, bandit_support(data, self.thresholds), interval)
        return result if self.lambda_ is not None else replace(result, tuned=lam)


@dataclass(frozen=True)
class DRos:
    """Doubly robust estimation with optimistic shrinkage (Su, Dimakopoulou, Krishnamurthy & Dudik 2020).

    Args:
        lambda_: the shrinkage hyperparameter, exactly OBP's ``DoublyRobustWithShrinkage.lambda_``: weights become
            ``lambda_ * w / (w**2 + lambda_)``; 0 is DM, ``inf`` is DR. ``None`` (default) tunes it from the data
            on a geometric grid from 1e-3 to 1e6 (in units of squared weights) plus ``inf``.
        reward_model: used when ``data.q_hat`` is not given; default 5-fold cross-fitted ridge per action.
        thresholds: when to raise support warnings.
    """

    lambda_: float | None = None
    reward_model: RewardModel = field(default_factory=CrossFitted)
    thresholds: SupportThresholds = field(default_factory=SupportThresholds)

    def __post_init__(self) -> None:
        check_lambda("lambda_", self.lambda_, allow_none=True)

    @property
    def name(self) -> str:
        return "dros"

    def estimate(self, data: BanditData, interval: IntervalSpec = DEFAULT_INTERVAL) -> Estimate:
        p = _parts(data, self.reward_model)
        lam = self.lambda_
        if lam is None:
            lam = _tune(p, np.append(np.geomspace(1e-3, 1e6, 19), math.inf), _shrink)
        terms = Terms(direct=p.dm + _shrink(p.w, lam) * p.residual)
        result = finish(self.name, terms, bandit_support(data, self.thresholds), interval)
        return result if self.lambda_ is not None else replace(result, tuned=lam)
