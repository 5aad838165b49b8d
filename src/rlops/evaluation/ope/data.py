"""Logged bandit feedback plus a target policy's action distribution, validated once before any estimator runs.

Every estimator in :mod:`rlops.evaluation.ope` reads a :class:`BanditData`. Its constructor checks every array
(shapes, dtypes, ranges, finiteness, rows of distributions summing to one) and raises
:class:`rlops.errors.ValidationError` naming the offending field and the first bad row, so that nothing is computed
from bad input. The checks are vectorised: about 0.1 s per million rows with ten actions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from rlops.errors import ValidationError

#: Tolerance for a probability row summing to one.
SUM_TOLERANCE = 1e-6


def _first_row(bad: np.ndarray) -> int:
    rows = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1)) if bad.ndim > 1 else np.flatnonzero(bad)
    return int(rows[0])


def as_float(field: str, value: Any, ndim: int) -> np.ndarray:
    """``value`` as a float64 array with ``ndim`` dimensions, or a ValidationError naming ``field``."""
    if value is None:
        raise ValidationError(field, "is missing")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValidationError(field, f"expected numbers: {e}") from e
    if arr.ndim != ndim:
        raise ValidationError(field, f"expected a {ndim}-d array, got shape {arr.shape}")
    return arr


def check_finite(field: str, arr: np.ndarray, what: str = "finite numbers") -> None:
    """Raise naming ``field`` and the first row holding NaN or infinity."""
    total = float(np.sum(arr)) if arr.size else 0.0
    if np.isfinite(total):  # fast path: no temporary the size of the array
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        row = _first_row(bad)
        raise ValidationError(field, f"expected {what}, row {row} has {arr.reshape(arr.shape[0], -1)[row]}"
                                     if arr.ndim > 1 else f"expected {what}, row {row} is {arr[row]}")


def as_index(field: str, value: Any, n_actions: int) -> np.ndarray:
    """``value`` as int64 action indices in ``[0, n_actions)``."""
    if value is None:
        raise ValidationError(field, "is missing")
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValidationError(field, f"expected a 1-d array of action indices, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValidationError(field, f"expected integer action indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= n_actions):
        bad = (arr < 0) | (arr >= n_actions)
        row = _first_row(bad)
        raise ValidationError(field, f"row {row} is {arr[row]}, outside [0, {n_actions}) "
                                     f"(n_actions is the width of pi_e)")
    return arr


def check_distribution(field: str, arr: np.ndarray) -> None:
    """Rows of ``arr`` must be probability vectors: finite, in [0, 1], summing to one."""
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if not (lo >= 0.0 and hi <= 1.0 + SUM_TOLERANCE):  # also catches NaN
        bad = ~((arr >= 0.0) & (arr <= 1.0 + SUM_TOLERANCE))
        row = _first_row(bad)
        raise ValidationError(field, f"probabilities must be finite and in [0, 1]; row {row} is {arr[row]}")
    sums = arr.sum(axis=1)
    bad_sum = np.abs(sums - 1.0) > SUM_TOLERANCE
    if bad_sum.any():
        row = _first_row(bad_sum)
        raise ValidationError(field, f"each row must sum to 1 (within {SUM_TOLERANCE:g}); row {row} sums to "
                                     f"{sums[row]!r}")


def check_propensity(field: str, value: Any, n: int, *, discrete: bool = True) -> np.ndarray:
    """Logging propensities: present, finite, > 0 and (for discrete actions) <= 1."""
    if value is None:
        raise ValidationError(field, "is missing: off-policy estimates need the logging policy's propensities")
    arr = as_float(field, value, 1)
    if arr.shape[0] != n:
        raise ValidationError(field, f"expected {n} rows (as action), got {arr.shape[0]}")
    if np.isnan(arr).any():
        raise ValidationError(field, f"is missing (NaN) at row {_first_row(np.isnan(arr))}")
    upper = 1.0 if discrete else np.inf
    if arr.size and not (arr.min() > 0.0 and arr.max() <= upper):
        bad = ~((arr > 0.0) & (arr <= upper))
        row = _first_row(bad)
        rule = "in (0, 1]" if discrete else "finite and > 0"
        raise ValidationError(field, f"must be {rule}; row {row} is {arr[row]!r}")
    return arr


@dataclass(frozen=True, eq=False)  # arrays: compare the fields, not the holder
class BanditData:
    """Logged contextual-bandit feedback and the target policy to evaluate on it.

    All arrays are validated (and converted to float64 / int64) on construction.

    Args:
        action: ``(n,)`` logged action indices in ``[0, K)``.
        reward: ``(n,)`` observed rewards, finite.
        propensity: ``(n,)`` the logging policy's probability of the logged action, in ``(0, 1]``.
        pi_e: ``(n, K)`` the target policy's action distribution on each logged context; rows sum to 1.
        x: ``(n, d)`` context features; needed only to fit a reward model (DM and the DR family without ``q_hat``).
        q_hat: ``(n, K)`` precomputed reward-model predictions ``q(x_i, a)``; if given, DM and the DR family use
            them as they are instead of fitting a model (use cross-fitted predictions, see
            :func:`rlops.evaluation.ope.reward_model.cross_fit`).
        pi_b: ``(n, K)`` the logging policy's full distribution, when known (the event log's ``probabilities``);
            used for support diagnostics, and checked against ``propensity``.
        reward_bounds: ``(low, high)`` bounds on the reward known a priori (e.g. from the reward spec); needed for
            empirical-Bernstein bounds, and every reward must lie within them.

    Example:
        >>> import numpy as np
        >>> data = BanditData(action=np.array([0, 1]), reward=np.array([1.0, 0.0]),
        ...                   propensity=np.array([0.5, 0.5]), pi_e=np.array([[1.0, 0.0], [1.0, 0.0]]))
        >>> data.n, data.n_actions
        (2, 2)
    """

    action: np.ndarray
    reward: np.ndarray
    propensity: np.ndarray
    pi_e: np.ndarray
    x: np.ndarray | None = None
    q_hat: np.ndarray | None = None
    pi_b: np.ndarray | None = None
    reward_bounds: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        pi_e = as_float("pi_e", self.pi_e, 2)
        n, k = pi_e.shape
        if k < 1:
            raise ValidationError("pi_e", "needs at least one action column")
        if n < 1:
            raise ValidationError("pi_e", "needs at least one row")
        action = as_index("action", self.action, k)
        if action.shape[0] != n:
            raise ValidationError("action", f"expected {n} rows (as pi_e), got {action.shape[0]}")
        reward = as_float("reward", self.reward, 1)
        if reward.shape[0] != n:
            raise ValidationError("reward", f"expected {n} rows (as pi_e), got {reward.shape[0]}")
        check_finite("reward", reward)
        propensity = check_propensity("propensity", self.propensity, n)
        check_distribution("pi_e", pi_e)
        x = None
        if self.x is not None:
            x = as_float("x", self.x, 2)
            if x.shape[0] != n:
                raise ValidationError("x", f"expected {n} rows (as pi_e), got {x.shape[0]}")
            check_finite("x", x)
        q_hat = None
        if self.q_hat is not None:
            q_hat = as_float("q_hat", self.q_hat, 2)
            if q_hat.shape != (n, k):
                raise ValidationError("q_hat", f"expected shape {(n, k)} (as pi_e), got {q_hat.shape}")
            check_finite("q_hat", q_hat)
        pi_b = None
        if self.pi_b is not None:
            pi_b = as_float("pi_b", self.pi_b, 2)
            if pi_b.shape != (n, k):
                raise ValidationError("pi_b", f"expected shape {(n, k)} (as pi_e), got {pi_b.shape}")
            check_distribution("pi_b", pi_b)
            logged = pi_b[np.arange(n), action]
            off = np.abs(logged - propensity) > 1e-6 * np.maximum(1.0, propensity)
            if off.any():
                row = _first_row(off)
                raise ValidationError("propensity", f"row {row} is {propensity[row]!r} but pi_b gives the logged "
                                                    f"action {logged[row]!r}")
        bounds = None
        if self.reward_bounds is not None:
            try:
                low, high = (float(b) for b in self.reward_bounds)
            except (TypeError, ValueError) as e:
                raise ValidationError("reward_bounds", "expected (low, high)") from e
            if not (np.isfinite(low) and np.isfinite(high) and low < high):
                raise ValidationError("reward_bounds", f"expected finite low < high, got {(low, high)}")
            outside = (reward < low) | (reward > high)
            if outside.any():
                row = _first_row(outside)
                raise ValidationError("reward", f"row {row} is {reward[row]!r}, outside reward_bounds "
                                                f"{(low, high)}")
            bounds = (low, high)
        for name, value in (("action", action), ("reward", reward), ("propensity", propensity), ("pi_e", pi_e),
                            ("x", x), ("q_hat", q_hat), ("pi_b", pi_b), ("reward_bounds", bounds)):
            object.__setattr__(self, name, value)

    @property
    def n(self) -> int:
        """Number of logged decisions."""
        return int(self.pi_e.shape[0])

    @property
    def n_actions(self) -> int:
        """Number of actions ``K`` (the width of ``pi_e``)."""
        return int(self.pi_e.shape[1])

    @cached_property
    def target_at_logged(self) -> np.ndarray:
        """``pi_e(a_i | x_i)``: the target's probability of each logged action, ``(n,)``."""
        return self.pi_e[np.arange(self.n), self.action]

    @cached_property
    def weights(self) -> np.ndarray:
        """Importance weights ``w_i = pi_e(a_i | x_i) / pi_b(a_i | x_i)``, ``(n,)``."""
        return self.target_at_logged / self.propensity

    def with_q_hat(self, q_hat: np.ndarray) -> BanditData:
        """The same data with reward-model predictions ``q_hat (n, K)`` attached (validated)."""
        return dataclasses.replace(self, q_hat=q_hat)

    def with_target(self, pi_e: np.ndarray) -> BanditData:
        """The same logged data with another target policy's distribution ``pi_e (n, K)``."""
        return dataclasses.replace(self, pi_e=pi_e)
