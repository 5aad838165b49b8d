"""Page-Hinkley test for a change in the mean of a stream, vectorised over chunks."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rlops.errors import ValidationError
from rlops.monitoring.drift.detector import (
    Direction,
    StreamDetector,
    check_direction,
    check_int,
    check_non_negative,
    check_positive,
)

#: First block after a (re)start; blocks double up to ``_MAX_BLOCK`` while nothing is detected, so a detection
#: costs at most one block of recomputation and a quiet stream runs in large vectorised blocks.
_MIN_BLOCK = 2048
_MAX_BLOCK = 65_536
_SLACK_SIGN = np.array([[-1.0], [1.0]])
_TEST_SIGN = np.array([[1.0], [-1.0]])
_NUMERATOR = np.array([1.0])


class PageHinkley(StreamDetector):
    """Page-Hinkley test (Page 1954; Hinkley 1971) on the deviations of a stream from its running mean.

    With ``mean_t`` the mean of the observations since the last (re)start, including ``x_t``::

        up_t   = alpha * up_{t-1}   + (x_t - mean_t) - delta      detects increases: up_t - min(up)     > threshold
        down_t = alpha * down_{t-1} + (x_t - mean_t) + delta      detects decreases: max(down) - down_t > threshold

    A detection needs at least ``min_instances`` observations since the (re)start; after one the detector starts
    afresh at the next observation. This is the definition of river's ``drift.PageHinkley`` (same parameter names
    and defaults), so both detect at the same observations on the same stream up to floating-point rounding (the
    running mean here is a cumulative sum divided by the count, river's is updated incrementally).

    Args:
        delta: tolerated drift per observation, in the stream's units (default 0.005).
        threshold: alarm level ``lambda`` of the cumulative statistic, in the stream's units (default 50.0).
        alpha: forgetting factor in (0, 1] applied to the cumulative sums (default 1 - 1e-4; 1.0 is the classic
            test without forgetting).
        min_instances: observations since the (re)start before a detection is allowed (default 30).
        direction: report increases, decreases or both (default both).

    Raises:
        ValidationError: a parameter out of range, naming it.
    """

    def __init__(self, delta: float = 0.005, threshold: float = 50.0, alpha: float = 1 - 0.0001,
                 min_instances: int = 30, direction: Direction | str = Direction.BOTH) -> None:
        self.delta = check_non_negative("delta", delta)
        self.threshold = check_positive("threshold", threshold)
        self.alpha = check_positive("alpha", alpha)
        if self.alpha > 1.0:
            raise ValidationError("alpha", f"must be in (0, 1], got {alpha!r}")
        self.min_instances = check_int("min_instances", min_instances, 1)
        self.direction = check_direction(direction)
        super().__init__()

    def _clear(self) -> None:
        self._count = 0  # observations since the (re)start
        self._sum = 0.0  # their sum, accumulated left to right
        # The two cumulative sums side by side, [up, down], and the running [min(up), min(-down)]: the down test is
        # the up test on -down, so both go through the same array operations.
        self._level = np.zeros(2)
        self._low = np.full(2, np.inf)
        self._block = _MIN_BLOCK

    def _consume(self, values: npt.NDArray[np.float64]) -> list[int]:
        found: list[int] = []
        start = 0
        n = values.size
        while start < n:
            stop = min(n, start + self._block)
            hit = self._block_step(values[start:stop])
            if hit is None:
                start = stop
                self._block = min(2 * self._block, _MAX_BLOCK)
            else:
                found.append(start + hit)
                self._clear()
                start += hit + 1
        return found

    def _block_step(self, x: npt.NDArray[np.float64]) -> int | None:
        """Advance over ``x``; on a detection return its position and leave the state to be cleared."""
        m = x.size
        # Prepending the carried sums keeps every partial sum the same as when the stream comes in one piece.
        sums = np.cumsum(np.concatenate(([self._sum], x)))[1:]
        counts = np.arange(self._count + 1, self._count + m + 1, dtype=np.float64)
        deviation = x - sums / counts
        z = deviation + _SLACK_SIGN * self.delta  # rows: deviation - delta, deviation + delta
        if self.alpha == 1.0:
            level = np.cumsum(np.concatenate((self._level[:, None], z), axis=1), axis=1)[:, 1:]
        else:
            from scipy.signal import lfilter  # imported on first use: scipy.signal takes most of a second to import

            level = np.asarray(lfilter(_NUMERATOR, [1.0, -self.alpha], z, axis=1,
                                       zi=(self.alpha * self._level)[:, None])[0], dtype=np.float64)
        signed = level * _TEST_SIGN  # rows: up, -down
        low = np.minimum.accumulate(np.concatenate((self._low[:, None], signed), axis=1), axis=1)[:, 1:]
        rise = signed - low  # rows: up - min(up), max(down) - down
        if self.direction is Direction.BOTH:
            alarm = (rise > self.threshold).any(axis=0)
        else:
            alarm = rise[0 if self.direction is Direction.UP else 1] > self.threshold
        alarm[:max(0, self.min_instances - self._count - 1)] = False
        if alarm.any():
            return int(np.argmax(alarm))
        self._count += m
        self._sum = float(sums[-1])
        self._level = level[:, -1].copy()
        self._low = low[:, -1].copy()
        return None
