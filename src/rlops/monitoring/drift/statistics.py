"""Distances between two histograms over the same bins: PSI, Jensen-Shannon distance, Cramér's V.

Each takes the reference's counts and the live window's counts over identical bins (or categories), so that the
numbers are recomputable from a stored profile and a window. All three are effect sizes, not tests: they do not
grow with the number of observations, which is why drift is judged on them and not on p-values.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rlops.errors import ValidationError

#: Proportions below this are raised to it before taking logs in :func:`psi` (an empty bin would be infinite).
PSI_EPSILON = 1e-4


def _proportions(counts: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    array = np.asarray(counts, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValidationError(name, f"expected a non-empty one-dimensional array of counts, got shape {array.shape}")
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValidationError(name, "counts must be finite and >= 0")
    total = array.sum()
    if total <= 0:
        raise ValidationError(name, "counts sum to zero")
    return array / total


def _same_bins(reference: npt.NDArray[np.float64], live: npt.NDArray[np.float64]) -> None:
    if reference.size != live.size:
        raise ValidationError("live", f"has {live.size} bins, the reference {reference.size}")


def psi(reference: npt.ArrayLike, live: npt.ArrayLike, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index ``sum((q - p) * ln(q / p))`` of live proportions ``q`` against reference ``p``.

    Proportions are floored at ``epsilon`` (default 1e-4) before the logarithm. Common reading (Siddiqi, *Credit
    Risk Scorecards*, 2006): below 0.1 stable, 0.1-0.25 a moderate shift, above 0.25 a significant one. With the
    reference's deciles as bins, a mean shift of 0.3 standard deviations of a normal feature gives about 0.1.

    Args:
        reference: reference counts (or proportions) per bin.
        live: live counts per bin, same bins.
        epsilon: floor for proportions, > 0.
    """
    p = _proportions(reference, "reference")
    q = _proportions(live, "live")
    _same_bins(p, q)
    p = np.maximum(p, epsilon)
    q = np.maximum(q, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(reference: npt.ArrayLike, live: npt.ArrayLike) -> float:
    """Jensen-Shannon distance (square root of the divergence, base-2 logarithms), in [0, 1].

    Equal to ``scipy.spatial.distance.jensenshannon(p, q, base=2)``; 0 for identical histograms, 1 for disjoint
    ones. Empty bins need no smoothing.
    """
    p = _proportions(reference, "reference")
    q = _proportions(live, "live")
    _same_bins(p, q)
    m = (p + q) / 2.0
    divergence = (_kl(p, m) + _kl(q, m)) / 2.0
    return float(np.sqrt(max(divergence, 0.0)))


def _kl(p: npt.NDArray[np.float64], m: npt.NDArray[np.float64]) -> float:
    mass = p > 0
    return float(np.sum(p[mass] * np.log2(p[mass] / m[mass])))


def cramers_v(reference: npt.ArrayLike, live: npt.ArrayLike) -> float:
    """Cramér's V of the 2 x k table (reference, live) x categories, with both rows weighted equally, in [0, 1].

    ``V = sqrt(sum((p - q)**2 / (2 * (p + q))))`` over categories seen in either. This is the usual Cramér's V
    ``sqrt(chi2 / N)`` of the contingency table when both samples have the same size; weighting the rows equally
    makes it independent of how large the stored reference happens to be (with unequal sizes the usual V shrinks
    by ``2 * sqrt(n_ref * n_live) / N``). Cohen's reading for one degree of freedom: 0.1 small, 0.3 medium, 0.5
    large.
    """
    p = _proportions(reference, "reference")
    q = _proportions(live, "live")
    _same_bins(p, q)
    seen = (p + q) > 0
    return float(np.sqrt(np.sum((p[seen] - q[seen]) ** 2 / (2.0 * (p[seen] + q[seen])))))
