"""Action-distribution shift: the Jensen-Shannon distance between the reference's action mix and each window's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from rlops.errors import ValidationError
from rlops.monitoring.drift.detector import StreamDetector, check_int, check_open_unit
from rlops.monitoring.drift.statistics import jensen_shannon


class ActionShift(StreamDetector):
    """Detects a change in how often each action is chosen, over consecutive (tumbling) windows.

    The stream is the index of the chosen action per decision. At the end of every ``window`` decisions the
    window's action frequencies are compared with the reference's by the Jensen-Shannon distance (base 2, in
    [0, 1], see :func:`~rlops.monitoring.drift.statistics.jensen_shannon`); a distance above ``threshold`` is a
    detection at the window's last decision. A policy that starts favouring one action, or stops exploring one,
    shows up here before it shows up in rewards.

    Args:
        reference: the reference's count (or probability) of each action, indexed like the actions.
        window: decisions per window, >= 1 (default 1000; the distance of a window of ``n`` decisions drawn from
            the reference itself is about ``sqrt((k - 1) / (4 n ln 2))`` for ``k`` actions, so keep ``n`` well above
            ``k / threshold**2``).
        threshold: alarm level of the distance, in (0, 1) (default 0.1).

    Raises:
        ValidationError: naming a bad parameter, or an action index outside ``0 .. len(reference) - 1``.
    """

    _ARGUMENT = "actions"

    def __init__(self, reference: Sequence[float] | npt.ArrayLike, window: int = 1000, threshold: float = 0.1) -> None:
        probabilities = np.asarray(reference, dtype=np.float64)
        if probabilities.ndim != 1 or probabilities.size == 0 or not np.isfinite(probabilities).all() or (
                probabilities < 0).any() or probabilities.sum() <= 0:
            raise ValidationError("reference", "must be a non-empty list of counts >= 0 with a positive sum")
        self.reference = probabilities / probabilities.sum()
        self.window = check_int("window", window, 1)
        self.threshold = check_open_unit("threshold", threshold)
        super().__init__()

    @property
    def n_actions(self) -> int:
        return int(self.reference.size)

    def _clear(self) -> None:
        self._counts = np.zeros(self.reference.size, dtype=np.int64)  # the current, unfinished window
        self._filled = 0
        self.last_distance: float | None = None  #: distance of the last completed window

    def _check_values(self, values: npt.NDArray[np.float64]) -> None:
        bad = (values != np.floor(values)) | (values < 0) | (values >= self.reference.size)
        if bad.any():
            first = int(np.argmax(bad))
            raise ValidationError(f"actions[{first}]", f"{values[first]!r} is not an action index in "
                                                       f"0..{self.reference.size - 1}")

    def _consume(self, values: npt.NDArray[np.float64]) -> list[int]:
        actions = values.astype(np.int64)
        k = self.reference.size
        # Position of each decision in the sequence of windows that starts with the unfinished one.
        slot = np.arange(self._filled, self._filled + actions.size) // self.window
        n_windows = int(slot[-1]) + 1
        counts = np.bincount(slot * k + actions, minlength=n_windows * k).reshape(n_windows, k)
        counts[0] += self._counts
        complete = (self._filled + actions.size) // self.window
        found = []
        for w in range(complete):
            self.last_distance = jensen_shannon(self.reference, counts[w])
            if self.last_distance > self.threshold:
                found.append((w + 1) * self.window - self._filled - 1)
        self._filled = (self._filled + actions.size) % self.window
        self._counts = counts[complete] if complete < n_windows else np.zeros(k, dtype=np.int64)
        return found
