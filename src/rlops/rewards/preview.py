"""Summaries of computed rewards, to preview a spec on logged outcomes before using it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: The quantile levels :func:`summarize` reports.
QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


@dataclass(frozen=True)
class RewardSummary:
    """Distribution of a batch of rewards.

    Only finite rewards are summarised; NaN (rows without a valid reward) and ±inf are counted in ``invalid``. With
    no finite reward, ``count`` is 0, the statistics are NaN and the histogram is empty.

    Attributes:
        count: number of finite rewards.
        invalid: number of rewards left out because they are NaN or infinite.
        mean: mean of the finite rewards.
        std: population standard deviation (``ddof=0``).
        min: smallest reward.
        max: largest reward.
        quantiles: quantile level (see :data:`QUANTILES`) to value, linear interpolation.
        edges: histogram bin edges, ``bins + 1`` increasing values (bins are half-open, the last one closed;
            edges may repeat only when the rewards span less than ``bins`` representable steps).
        counts: rewards per bin, ``bins`` values summing to ``count``.
    """

    count: int
    invalid: int
    mean: float
    std: float
    min: float
    max: float
    quantiles: dict[float, float] = field(default_factory=dict)
    edges: tuple[float, ...] = ()
    counts: tuple[int, ...] = ()


def summarize(rewards: np.ndarray, bins: int = 20) -> RewardSummary:
    """Summarise rewards: count, mean, std, min, max, quantiles and a histogram.

    Args:
        rewards: rewards, any shape (flattened); NaN and ±inf are counted as invalid and left out.
        bins: number of equal-width histogram bins over ``[min, max]``, default 20, at least 1. When all rewards
            are equal the bins span ``[value - 0.5, value + 0.5]``, as with ``np.histogram``.

    Returns:
        The summary.

    Raises:
        ValueError: ``bins`` is below 1.

    Example:
        >>> s = summarize(np.array([0.0, 1.0, 1.0, np.nan]), bins=2)
        >>> s.count, s.invalid, s.mean, s.edges, s.counts
        (3, 1, 0.6666666666666666, (0.0, 0.5, 1.0), (1, 2))
    """
    if bins < 1:
        raise ValueError(f"bins: must be at least 1, got {bins}")
    values = np.asarray(rewards, dtype=np.float64).ravel()
    finite = values[np.isfinite(values)]
    invalid = int(values.size - finite.size)
    if finite.size == 0:
        nan = math.nan
        return RewardSummary(0, invalid, nan, nan, nan, nan, {q: nan for q in QUANTILES})
    lo, hi = float(finite.min()), float(finite.max())
    counts, edges = _histogram(finite, lo, hi, bins)
    with np.errstate(over="ignore", invalid="ignore"):  # rewards near the float limit: inf rather than a warning
        levels = np.quantile(finite, QUANTILES)
        mean, std = float(finite.mean()), float(finite.std())
    return RewardSummary(
        count=int(finite.size),
        invalid=invalid,
        mean=mean,
        std=std,
        min=lo,
        max=hi,
        quantiles={q: float(v) for q, v in zip(QUANTILES, levels, strict=True)},
        edges=tuple(edges.tolist()),
        counts=tuple(counts.tolist()),
    )


def _histogram(values: np.ndarray, lo: float, hi: float, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-width bins over ``[lo, hi]``, half-open except the last; unlike ``np.histogram`` this never fails on
    spans too small for distinct edges or too large for ``hi - lo`` to be finite."""
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    # halve, space, double: exact for ordinary values, and hi - lo cannot overflow
    edges = 2.0 * np.linspace(lo / 2.0, hi / 2.0, bins + 1)
    edges[0], edges[-1] = lo, hi
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
    return np.bincount(index, minlength=bins), edges


def _edge_format(edges: tuple[float, ...]) -> str:
    largest = max(abs(e) for e in edges)
    spread = edges[-1] - edges[0]
    if largest >= 1e6 or (0 < spread < 1e-3):
        return ".3g"
    return ".2f"


def text_histogram(summary: RewardSummary, width: int = 40) -> list[str]:
    """Render the summary's histogram as text lines, one per bin.

    Each line is the bin's range, a bar of ``#`` scaled so the fullest bin is ``width`` characters, and the count,
    e.g. ``  [ 0.00,  0.50)  ######  123``. The last bin is closed (``]``).

    Args:
        summary: from :func:`summarize`.
        width: characters of the longest bar, default 40, at least 1.

    Returns:
        The lines, or ``["  (no rewards)"]`` when the summary is empty.
    """
    if width < 1:
        raise ValueError(f"width: must be at least 1, got {width}")
    if summary.count == 0 or not summary.counts:
        return ["  (no rewards)"]
    spec = _edge_format(summary.edges)
    labels = [format(e, spec) for e in summary.edges]
    label_width = max(len(label) for label in labels)
    count_width = max(len(str(c)) for c in summary.counts)
    top = max(summary.counts)
    lines = []
    last = len(summary.counts) - 1
    for i, count in enumerate(summary.counts):
        bar = "#" * round(count / top * width) if top else ""
        close = "]" if i == last else ")"
        lines.append(f"  [{labels[i]:>{label_width + 1}}, {labels[i + 1]:>{label_width + 1}}{close}  "
                     f"{bar:<{width}}  {count:>{count_width}}")
    return lines


__all__ = ["QUANTILES", "RewardSummary", "summarize", "text_histogram"]
