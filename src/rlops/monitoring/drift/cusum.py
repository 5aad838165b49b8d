"""Tabular two-sided CUSUM (Page 1954) for a shift of a stream's mean away from a target, vectorised over chunks."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rlops.monitoring.drift.detector import (
    Direction,
    StreamDetector,
    check_direction,
    check_finite,
    check_int,
    check_positive,
)

_MIN_BLOCK = 2048
_MAX_BLOCK = 65_536
#: A constant burn-in has no spread; this relative floor keeps ``k * sigma`` above the rounding of its mean.
_SIGMA_FLOOR = 1e-9


class CUSUM(StreamDetector):
    """Tabular CUSUM (Page 1954; Montgomery, *Introduction to Statistical Quality Control*, 6th ed., §9.1).

    With target mean ``mu`` and standard deviation ``sigma``::

        C+_t = max(0, C+_{t-1} + x_t - mu - k * sigma)        alarm when C+_t > h * sigma   (mean went up)
        C-_t = max(0, C-_{t-1} + mu - k * sigma - x_t)        alarm when C-_t > h * sigma   (mean went down)

    The defaults ``k = 0.5``, ``h = 5`` detect a shift of one ``sigma`` quickly with an in-control average run length
    of about 465 observations for normal data (Montgomery, table 9.3); raise ``h`` for fewer false alarms.
    When ``target`` or ``sigma`` is not given, it is estimated from the first ``burn_in`` observations (mean, sample
    standard deviation), during which nothing is detected. After a detection both sums restart from zero at the next
    observation, and estimated parameters are estimated again from the next ``burn_in`` observations: the new regime
    becomes the reference.

    The sums are computed in closed form per chunk, ``C_t = P_t - min(0, min_{s<=t} P_s)`` with ``P`` the running
    sum of ``x - mu - k*sigma`` since the (re)start, so a chunked stream gives exactly the same detections.

    Args:
        target: in-control mean, in the stream's units (default: estimated).
        sigma: in-control standard deviation, in the stream's units, > 0 (default: estimated).
        k: allowance (reference value) in units of ``sigma`` (default 0.5, half the shift to detect fastest).
        h: decision interval in units of ``sigma`` (default 5.0).
        burn_in: observations used to estimate what is not given, >= 2 (default 30).
        direction: report increases, decreases or both (default both).

    Raises:
        ValidationError: a parameter out of range, naming it.
    """

    def __init__(self, target: float | None = None, sigma: float | None = None, k: float = 0.5, h: float = 5.0,
                 burn_in: int = 30, direction: Direction | str = Direction.BOTH) -> None:
        self.target = None if target is None else check_finite("target", target)
        self.sigma = None if sigma is None else check_positive("sigma", sigma)
        self.k = check_positive("k", k)
        self.h = check_positive("h", h)
        self.burn_in = check_int("burn_in", burn_in, 2)
        self.direction = check_direction(direction)
        super().__init__()

    def _clear(self) -> None:
        self._restart()
        self._block = _MIN_BLOCK

    def _restart(self) -> None:
        self._buffer: list[float] = []
        known = self.target is not None and self.sigma is not None
        self._mu = self.target if known else None
        self._scale = self.sigma if known else None
        self._pos_sum = 0.0  # running sums of x - mu - k sigma and mu - k sigma - x since the restart
        self._neg_sum = 0.0
        self._pos_min = 0.0  # their running minima, starting from the empty sum 0
        self._neg_min = 0.0

    def _consume(self, values: npt.NDArray[np.float64]) -> list[int]:
        found: list[int] = []
        start, n = 0, values.size
        while start < n:
            if self._mu is None:
                start = self._fill_burn_in(values, start)
                continue
            stop = min(n, start + self._block)
            hit = self._block_step(values[start:stop])
            if hit is None:
                start = stop
                self._block = min(2 * self._block, _MAX_BLOCK)
            else:
                found.append(start + hit)
                self._restart()
                self._block = _MIN_BLOCK
                start += hit + 1
        return found

    def _fill_burn_in(self, values: npt.NDArray[np.float64], start: int) -> int:
        take = min(values.size - start, self.burn_in - len(self._buffer))
        self._buffer.extend(values[start:start + take].tolist())
        if len(self._buffer) == self.burn_in:
            sample = np.asarray(self._buffer)
            mu = float(sample.mean()) if self.target is None else self.target
            spread = float(sample.std(ddof=1)) if self.sigma is None else self.sigma
            self._mu = mu
            self._scale = max(spread, _SIGMA_FLOOR * max(1.0, abs(mu)))
            self._buffer = []
        return start + take

    def _block_step(self, x: npt.NDArray[np.float64]) -> int | None:
        assert self._mu is not None and self._scale is not None
        slack = self.k * self._scale
        limit = self.h * self._scale
        alarm = np.zeros(x.size, dtype=bool)
        pos = np.cumsum(np.concatenate(([self._pos_sum], x - (self._mu + slack))))[1:]
        neg = np.cumsum(np.concatenate(([self._neg_sum], (self._mu - slack) - x)))[1:]
        pos_min = np.minimum.accumulate(np.concatenate(([self._pos_min], pos)))[1:]
        neg_min = np.minimum.accumulate(np.concatenate(([self._neg_min], neg)))[1:]
        if self.direction is not Direction.DOWN:
            alarm |= (pos - pos_min) > limit
        if self.direction is not Direction.UP:
            alarm |= (neg - neg_min) > limit
        if alarm.any():
            return int(np.argmax(alarm))
        self._pos_sum, self._neg_sum = float(pos[-1]), float(neg[-1])
        self._pos_min, self._neg_min = float(pos_min[-1]), float(neg_min[-1])
        return None

    @property
    def statistics(self) -> tuple[float, float]:
        """Current ``(C+, C-)`` in the stream's units (zeros during a burn-in)."""
        return self._pos_sum - self._pos_min, self._neg_sum - self._neg_min
