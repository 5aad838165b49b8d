"""How several outcomes of one decision combine into one reward, vectorised over groups of rows."""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from rlops.errors import ValidationError


class Aggregation(StrEnum):
    """How the rewards of several outcomes attributed to one decision combine.

    ``first`` and ``last`` pick by outcome time; among outcomes with the same time, row order decides (the earlier
    row is first, the later row is last).
    """

    SUM = "sum"
    LAST = "last"
    MAX = "max"
    FIRST = "first"


def aggregate(rewards: np.ndarray, group: np.ndarray, ts: np.ndarray, n_groups: int,
              how: Aggregation | str = Aggregation.SUM) -> np.ndarray:
    """Combine per-outcome rewards into one reward per group (decision).

    Rows whose reward is NaN (outcomes the spec found invalid) are ignored, so a group with only invalid rows is
    NaN, like a group with no rows; the caller then applies the spec's ``missing`` rule.

    Args:
        rewards: float reward per row (outcome).
        group: integer group code per row, each in ``[0, n_groups)``.
        ts: outcome time per row (any integer unit, e.g. microseconds since the epoch); used by first/last.
        n_groups: number of groups; the result has this length.
        how: the aggregation, default sum.

    Returns:
        A float64 array of length ``n_groups``, NaN for groups without a valid row.

    Raises:
        ValidationError: the arrays are not 1-D of one length, a group code is out of range, or ``how`` is unknown.

    Example:
        >>> aggregate(np.array([1.0, 2.0, 5.0]), np.array([0, 0, 2]), np.array([10, 5, 1]), 3, "first").tolist()
        [2.0, nan, 5.0]
    """
    try:
        how = Aggregation(how)
    except ValueError as e:
        raise ValidationError("aggregation", f"unknown aggregation {how!r} (known: "
                                             f"{', '.join(a.value for a in Aggregation)})") from e
    rewards = np.asarray(rewards, dtype=np.float64)
    group = np.asarray(group)
    ts = np.asarray(ts)
    if n_groups < 0:
        raise ValidationError("n_groups", f"{n_groups} is negative")
    if rewards.ndim != 1 or group.shape != rewards.shape or ts.shape != rewards.shape:
        raise ValidationError("rewards", f"rewards, group and ts must be 1-D of one length, got shapes "
                                         f"{rewards.shape}, {group.shape} and {ts.shape}")
    if group.size and not np.issubdtype(group.dtype, np.integer):
        raise ValidationError("group", f"expected integer group codes, got dtype {group.dtype}")
    group = group.astype(np.int64, copy=False)
    if group.size and (group.min() < 0 or group.max() >= n_groups):
        raise ValidationError("group", f"group codes must be in [0, {n_groups}), got {group.min()}..{group.max()}")

    valid = ~np.isnan(rewards)
    if not valid.all():
        rewards, group, ts = rewards[valid], group[valid], ts[valid]
    out = np.full(n_groups, np.nan)
    if rewards.size == 0:
        return out
    present = np.bincount(group, minlength=n_groups) > 0
    if how is Aggregation.SUM:
        out[present] = np.bincount(group, weights=rewards, minlength=n_groups)[present]
    elif how is Aggregation.MAX:
        best = np.full(n_groups, -np.inf)
        np.maximum.at(best, group, rewards)
        out[present] = best[present]
    else:
        # sort by (group, ts, row): the first row of each run is the earliest, the last row the latest, and rows
        # with equal times stay in their original order
        order = np.lexsort((np.arange(rewards.size), ts, group))
        sorted_group = group[order]
        if how is Aggregation.FIRST:
            pick = np.r_[True, sorted_group[1:] != sorted_group[:-1]]
        else:
            pick = np.r_[sorted_group[1:] != sorted_group[:-1], True]
        out[sorted_group[pick]] = rewards[order[pick]]
    return out


__all__ = ["Aggregation", "aggregate"]
