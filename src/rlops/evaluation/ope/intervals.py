"""Per-unit terms of an estimator and the intervals computed from them (normal, bootstrap, empirical Bernstein).

Every estimator here reduces to the same shape (a "unit" is a logged decision, or an episode)::

    value = mean_i(direct_i) + sum_t [ sum_i numerator_it / sum_i denominator_it ]

Plain estimators (IPS, DM, DR, PDIS, ...) only have ``direct`` terms; self-normalised ones (SNIPS, SNDR, WPDIS)
add ratio terms, one column ``t`` per normalisation (one for bandits, one per time step for WPDIS). From this one
description the module derives

- the standard error, by linearisation (delta method): the ratio parts contribute
  ``(numerator_it - R_t * denominator_it) / mean_i(denominator_it)``;
- a percentile bootstrap that resamples units and recomputes the whole expression (ratios included), vectorised in
  chunks of replicates;
- the one-sided empirical-Bernstein lower bound, for estimators that declare non-negative ``lower`` terms whose mean
  plus ``lower_offset`` cannot exceed the true value in expectation (see :func:`bernstein_lower_bound`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from rlops.errors import ValidationError
from rlops.evaluation.ope.result import Interval, IntervalMethod, IntervalSpec

#: Elements gathered per bootstrap chunk (replicates x units); bounds the bootstrap's extra memory (~64 MB).
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class Terms:
    """Per-unit contributions of an estimate (see the module docstring).

    Attributes:
        direct: ``(n,)`` terms averaged as they are.
        numerator: ``(n, T)`` numerators of self-normalised parts, or ``None``.
        denominator: ``(n, T)`` their denominators (same shape), or ``None``.
        lower: ``(n,)`` non-negative terms for the empirical-Bernstein bound, or ``None`` if the estimator has no
            valid one; ``E[lower] + lower_offset <= true value``.
        lower_offset: see ``lower``.
    """

    direct: np.ndarray
    numerator: np.ndarray | None = None
    denominator: np.ndarray | None = None
    lower: np.ndarray | None = None
    lower_offset: float = 0.0

    @property
    def n(self) -> int:
        return int(self.direct.shape[0])

    def _ratios(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-column ratio ``R_t`` and mean denominator (columns with no weight contribute 0)."""
        assert self.numerator is not None and self.denominator is not None
        den = self.denominator.mean(axis=0)
        num = self.numerator.mean(axis=0)
        safe = np.where(den > 0, den, 1.0)
        return np.where(den > 0, num / safe, 0.0), safe

    def value(self) -> float:
        """The point estimate."""
        value = float(self.direct.mean())
        if self.numerator is not None:
            ratio, _ = self._ratios()
            value += float(ratio.sum())
        return value

    def influence(self) -> np.ndarray:
        """Linearised per-unit terms whose mean is :meth:`value` and whose spread gives the standard error."""
        if self.numerator is None or self.denominator is None:
            return self.direct
        ratio, den = self._ratios()
        linear = (self.numerator - ratio * self.denominator) / den
        return self.direct + ratio.sum() + linear.sum(axis=1)

    def std_error(self) -> float:
        n = self.n
        if n < 2:
            return math.inf
        return float(np.std(self.influence(), ddof=1) / math.sqrt(n))

    def packed(self) -> np.ndarray:
        """``(1 + 2T, n)`` rows ``[direct, numerator columns, denominator columns]``, each contiguous."""
        if self.numerator is None or self.denominator is None:
            return self.direct[None, :]
        return np.ascontiguousarray(np.vstack([self.direct[None, :], self.numerator.T, self.denominator.T]))

    def resampled(self, packed: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Values on resampled units: ``packed`` from :meth:`packed`, ``index`` ``(b, n)``; returns ``(b,)``."""
        n = index.shape[1]
        # one gather per column (a handful), each vectorised over replicates and units; measured faster than
        # gathering rows of a packed matrix or counting draws with bincount and multiplying
        sums = np.zeros((index.shape[0], packed.shape[0]))  # (b, 1 + 2T)
        for j, column in enumerate(packed):
            if column.any():  # SNIPS and WPDIS have no direct part: skip gathering zeros
                sums[:, j] = np.take(column, index).sum(axis=1)
        values = sums[:, 0] / n
        if self.numerator is not None:
            t = self.numerator.shape[1]
            num, den = sums[:, 1:1 + t], sums[:, 1 + t:]
            safe = np.where(den > 0, den, 1.0)
            values = values + np.where(den > 0, num / safe, 0.0).sum(axis=1)
        return values


def normal_interval(value: float, se: float, level: float) -> Interval:
    """``value ± z_{(1+level)/2} * se``."""
    z = float(norm.ppf(0.5 + level / 2.0))
    return Interval(value - z * se, value + z * se, level, IntervalMethod.NORMAL)


def bootstrap_interval(terms: Terms, spec: IntervalSpec) -> Interval:
    """Percentile bootstrap over units, ``spec.n_bootstrap`` replicates drawn from ``spec.seed``."""
    n = terms.n
    packed = terms.packed()
    chunk = max(1, _CHUNK_ELEMENTS // n)
    rng = np.random.default_rng(spec.seed)
    values = np.empty(spec.n_bootstrap)
    for start in range(0, spec.n_bootstrap, chunk):  # a loop over chunks of replicates, never over units
        b = min(chunk, spec.n_bootstrap - start)
        index = rng.integers(0, n, size=(b, n))  # int64: what take() indexes with, no conversion
        values[start:start + b] = terms.resampled(packed, index)
    alpha = 1.0 - spec.level
    low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return Interval(float(low), float(high), spec.level, IntervalMethod.BOOTSTRAP)


def _bernstein(mean: np.ndarray, var: np.ndarray, c: np.ndarray, n: int, delta: float) -> np.ndarray:
    """Maurer & Pontil (2009), Theorem 4, for variables in ``[0, c]``: ``mean - sqrt(2 V ln(2/d) / n) - 7 c ln(2/d)
    / (3 (n - 1))`` is below the true mean with probability at least ``1 - d`` (``V`` the unbiased variance)."""
    log_term = math.log(2.0 / delta)
    return mean - np.sqrt(2.0 * var * log_term / n) - 7.0 * c * log_term / (3.0 * (n - 1))


def _truncated_moments(x: np.ndarray, cs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased variance of ``min(x, c)`` for each ``c`` in ``cs`` (vectorised over ``cs``)."""
    y = np.minimum(x[None, :], cs[:, None])
    return y.mean(axis=1), y.var(axis=1, ddof=1)


def bernstein_lower_bound(lower: np.ndarray, offset: float, spec: IntervalSpec) -> float:
    """High-confidence lower bound on a value from non-negative terms (Thomas et al. 2015, Theorem 1).

    The terms ``X_i >= 0`` are truncated at ``c`` (``Y_i = min(X_i, c)``, which can only lower their mean, so the
    bound stays valid) and Maurer & Pontil's empirical-Bernstein inequality is applied to ``Y`` on ``[0, c]``.
    Without a given ``spec.truncation``, ``c`` is chosen on a random ``spec.holdout`` share of the units to
    maximise the bound predicted for the remaining units, and the bound is computed on those remaining units only.
    """
    n = int(lower.shape[0])
    delta = 1.0 - spec.level
    if spec.truncation is not None:
        if n < 2:
            raise ValidationError("data", "an empirical-Bernstein bound needs at least 2 units")
        c = np.array([spec.truncation])
        mean, var = _truncated_moments(lower, c)
        return float(_bernstein(mean, var, c, n, delta)[0]) + offset
    n_pre = max(2, math.ceil(spec.holdout * n))
    n_post = n - n_pre
    if n_post < 2:
        raise ValidationError("data", f"an empirical-Bernstein bound with a {spec.holdout:g} holdout needs more than "
                                      f"{n_pre + 1} units, got {n}; pass interval.truncation to use them all")
    order = np.random.default_rng(spec.seed).permutation(n)
    pre, post = lower[order[:n_pre]], lower[order[n_pre:]]
    candidates = np.unique(np.quantile(pre, np.linspace(0.5, 1.0, 51)))
    candidates = candidates[candidates > 0]
    if candidates.size == 0:  # every held-out term is 0: any positive truncation gives the same (zero) mean
        candidates = np.array([1.0])
    mean, var = _truncated_moments(pre, candidates)
    predicted = _bernstein(mean, var, candidates, n_post, delta)
    c = candidates[[int(np.argmax(predicted))]]
    mean, var = _truncated_moments(post, c)
    return float(_bernstein(mean, var, c, n_post, delta)[0]) + offset


def compute_interval(terms: Terms, value: float, se: float, spec: IntervalSpec, estimator: str) -> Interval:
    """The interval ``spec`` asks for, around ``value`` (whose standard error is ``se``)."""
    if spec.method is IntervalMethod.NORMAL:
        return normal_interval(value, se, spec.level)
    if spec.method is IntervalMethod.BOOTSTRAP:
        return bootstrap_interval(terms, spec)
    if terms.lower is None:
        raise ValidationError("interval.method", f"an empirical-Bernstein bound needs terms bounded below, which "
                                                 f"'{estimator}' does not have (or reward_bounds is not set); use "
                                                 f"'ips' or 'pdis' with reward_bounds")
    return Interval(bernstein_lower_bound(terms.lower, terms.lower_offset, spec), math.inf, spec.level,
                    IntervalMethod.EMPIRICAL_BERNSTEIN)
