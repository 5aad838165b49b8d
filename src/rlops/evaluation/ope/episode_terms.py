"""What the sequential estimators share: discounts, cumulative importance ratios, PDDR terms, episode support."""

from __future__ import annotations

import math

import numpy as np

from rlops.errors import ValidationError
from rlops.evaluation.ope.episodes import EpisodeData
from rlops.evaluation.ope.support import Support, SupportThresholds, diagnose


def check_discount(discount: float) -> None:
    if isinstance(discount, bool) or not isinstance(discount, int | float) or not 0.0 < discount <= 1.0:
        raise ValidationError("discount", f"must be in (0, 1], got {discount!r}")


def cumulative_ratios(data: EpisodeData) -> np.ndarray:
    """``(E, T)`` cumulative importance ratios ``W_t``; a clear error when the target's densities are missing."""
    ratio = data.ratio
    if ratio is None:
        raise ValidationError("target_density", "is missing: importance sampling over continuous actions needs "
                                                "the target's density at each logged action")
    return np.cumprod(data.pad(ratio, 1.0), axis=1)


def discounts(data: EpisodeData, discount: float) -> np.ndarray:
    return discount ** np.arange(data.horizon, dtype=np.float64)


def episode_support(data: EpisodeData, cumulative: np.ndarray | None, thresholds: SupportThresholds) -> Support:
    """Diagnostics on per-episode weights (the product of every step's ratio)."""
    if cumulative is None:
        return Support(math.nan, math.nan, ())
    eps = thresholds.min_propensity
    mass = 0.0
    low = False
    if data.pi_e is not None:
        target = data.pi_e[np.arange(data.n), data.action]
        low = bool(np.any((data.propensity < eps) & (target > 0)))
        frequency = np.bincount(data.action, minlength=data.pi_e.shape[1]) / data.n
        mass = float(data.pi_e.sum(axis=0)[frequency < eps].sum()) / data.n
    return diagnose(cumulative[:, -1], thresholds, low_propensity=low, unsupported_mass=mass)


def pddr_terms(data: EpisodeData, q_hat: np.ndarray, v_hat: np.ndarray, discount: float) -> np.ndarray:
    """Per-episode PDDR values from per-row ``Q(s_t, a_t)`` and ``V(s_t)``."""
    w = cumulative_ratios(data)
    previous = np.hstack([np.ones((w.shape[0], 1)), w[:, :-1]])
    g = discounts(data, discount)
    q, v = data.pad(q_hat, 0.0), data.pad(v_hat, 0.0)
    return (w * (data.pad(data.reward, 0.0) - q) + previous * v) @ g
