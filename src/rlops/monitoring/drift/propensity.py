"""Propensity collapse: a window whose smallest propensity or effective sample size falls below a floor."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rlops.errors import ValidationError
from rlops.monitoring.drift.detector import StreamDetector, check_int, check_open_unit


class PropensityCollapse(StreamDetector):
    """Detects when logged propensities stop supporting off-policy evaluation and learning, per tumbling window.

    The stream is the propensity of each served decision (the probability the serving policy gave the action it
    chose, in (0, 1]). At the end of every ``window`` decisions the window is flagged when

    - its smallest propensity is below ``min_propensity`` (an importance weight above ``1 / min_propensity``), or
    - the effective sample size of its inverse-propensity weights ``w = 1 / p``, as a fraction of the window,
      ``(sum w)**2 / (n * sum w**2)`` (Kish 1965), is below ``min_ess_fraction``. It is 1 when every decision had
      the same propensity and falls as a few rare explorations come to dominate the weights: epsilon-greedy over
      10 actions gives about 0.11 at epsilon 0.1 and 0.012 at epsilon 0.01.

    Args:
        window: decisions per window, >= 1 (default 1000).
        min_propensity: floor for the smallest propensity, in (0, 1) (default 0.001).
        min_ess_fraction: floor for the effective-sample-size fraction, in (0, 1) (default 0.02).

    Raises:
        ValidationError: naming a bad parameter, or a propensity outside (0, 1].
    """

    _ARGUMENT = "propensities"

    def __init__(self, window: int = 1000, min_propensity: float = 0.001, min_ess_fraction: float = 0.02) -> None:
        self.window = check_int("window", window, 1)
        self.min_propensity = check_open_unit("min_propensity", min_propensity)
        self.min_ess_fraction = check_open_unit("min_ess_fraction", min_ess_fraction)
        super().__init__()

    def _clear(self) -> None:
        self._filled = 0
        self._minimum = np.inf
        self._weights = 0.0  # running sums of 1/p and 1/p**2 since the current window began
        self._squares = 0.0
        self.last_min_propensity: float | None = None  #: of the last completed window
        self.last_ess_fraction: float | None = None

    def _check_values(self, values: npt.NDArray[np.float64]) -> None:
        bad = (values <= 0) | (values > 1)
        if bad.any():
            first = int(np.argmax(bad))
            raise ValidationError(f"propensities[{first}]", f"{values[first]!r} is not in (0, 1]")

    def _consume(self, values: npt.NDArray[np.float64]) -> list[int]:
        weights = 1.0 / values
        found = []
        start = 0
        while start < values.size:
            take = min(values.size - start, self.window - self._filled)
            part = slice(start, start + take)
            self._minimum = min(self._minimum, float(values[part].min()))
            # Left-to-right running sums continued from the carried ones: the same numbers however the stream is cut.
            self._weights = float(np.cumsum(np.concatenate(([self._weights], weights[part])))[-1])
            self._squares = float(np.cumsum(np.concatenate(([self._squares], weights[part] ** 2)))[-1])
            self._filled += take
            start += take
            if self._filled == self.window:
                ess = self._weights ** 2 / (self.window * self._squares)
                self.last_min_propensity, self.last_ess_fraction = self._minimum, ess
                if self._minimum < self.min_propensity or ess < self.min_ess_fraction:
                    found.append(start - 1)
                self._filled, self._minimum, self._weights, self._squares = 0, np.inf, 0.0, 0.0
        return found
