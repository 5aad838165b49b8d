"""The streaming drift detector protocol, and the base class that checks input and parameters for every detector.

A detector watches one stream of numbers (a version's reward, a feature's mean, latency, the chosen action, the
served propensity) and says at which observations it saw a change. The protocol is as small as river's
``update``/``drift_detected``, but array-first: :meth:`DriftDetector.update_many` consumes a whole chunk in
vectorised code and returns the positions of its detections, and the state carries over between calls, so feeding a
stream in chunks gives the same detections as feeding it at once.

Example:
    >>> import numpy as np
    >>> from rlops.monitoring.drift import PageHinkley
    >>> detector = PageHinkley(threshold=20.0)
    >>> stream = np.r_[np.zeros(500), np.ones(500)]
    >>> detector.update_many(stream).tolist()
    [520]
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from enum import StrEnum
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from rlops.errors import ValidationError

Indices = npt.NDArray[np.int64]


@runtime_checkable
class DriftDetector(Protocol):
    """What every streaming detector offers."""

    @property
    def n_seen(self) -> int:
        """Observations consumed since construction or the last :meth:`reset`."""
        ...

    def update(self, value: float) -> bool:
        """Consume one observation; ``True`` when it completes a detection."""
        ...

    def update_many(self, values: npt.ArrayLike) -> Indices:
        """Consume a chunk of observations in order; positions within ``values`` where a change was detected."""
        ...

    def reset(self) -> None:
        """Forget everything seen, as if newly constructed with the same parameters."""
        ...


class Direction(StrEnum):
    """Which changes of the mean a one-dimensional test reports."""

    UP = "up"
    DOWN = "down"
    BOTH = "both"


class StreamDetector(ABC):
    """Base of the detectors here: validates each chunk once, counts observations, offers :meth:`update`.

    Subclasses implement :meth:`_consume` on a validated float64 array and :meth:`_clear`.
    """

    #: Name of the argument in error messages (``values[12]: ...``).
    _ARGUMENT = "values"

    def __init__(self) -> None:
        self._n_seen = 0
        self._clear()

    @property
    def n_seen(self) -> int:
        return self._n_seen

    def update(self, value: float) -> bool:
        """Consume one observation; ``True`` when it completes a detection.

        A convenience for tests and low-rate streams: each call goes through the vectorised path, so feeding
        arrays to :meth:`update_many` is much faster.
        """
        return bool(self.update_many(np.array([value], dtype=np.float64)).size)

    def update_many(self, values: npt.ArrayLike) -> Indices:
        """Consume ``values`` in order and return the positions (0-based, within ``values``) of detections.

        Raises:
            ValidationError: ``values`` is not a one-dimensional array of finite numbers (naming the first bad
                position), or a value breaks the detector's own rule (e.g. a propensity outside (0, 1]).
        """
        array = _as_stream(values, self._ARGUMENT)
        self._check_values(array)
        found = self._consume(array) if array.size else np.empty(0, dtype=np.int64)
        self._n_seen += int(array.size)
        return np.asarray(found, dtype=np.int64)

    def reset(self) -> None:
        self._n_seen = 0
        self._clear()

    def _check_values(self, values: npt.NDArray[np.float64]) -> None:  # noqa: B027 - optional hook, no-op default
        """Refuse values outside the detector's domain (finite numbers are always checked before)."""

    @abstractmethod
    def _consume(self, values: npt.NDArray[np.float64]) -> Indices | list[int]:
        """Process a non-empty chunk, carrying state over; positions of detections within the chunk."""

    @abstractmethod
    def _clear(self) -> None:
        """Set the state to that of a fresh detector."""


def _as_stream(values: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValidationError(name, f"expected an array of numbers ({e})") from e
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ValidationError(name, f"expected a one-dimensional array, got shape {array.shape}")
    finite = np.isfinite(array)
    if not finite.all():
        first = int(np.argmin(finite))
        raise ValidationError(f"{name}[{first}]", f"{array[first]} is not a finite number")
    return array


# ---- parameter checks shared by the detectors: each names the parameter and the rule -------------------------------


def check_positive(name: str, value: float) -> float:
    if not _is_real(value) or not math.isfinite(value) or value <= 0:
        raise ValidationError(name, f"must be a finite number > 0, got {value!r}")
    return float(value)


def check_non_negative(name: str, value: float) -> float:
    if not _is_real(value) or not math.isfinite(value) or value < 0:
        raise ValidationError(name, f"must be a finite number >= 0, got {value!r}")
    return float(value)


def check_open_unit(name: str, value: float) -> float:
    if not _is_real(value) or not 0.0 < value < 1.0:
        raise ValidationError(name, f"must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def check_finite(name: str, value: float) -> float:
    if not _is_real(value) or not math.isfinite(value):
        raise ValidationError(name, f"must be a finite number, got {value!r}")
    return float(value)


def check_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValidationError(name, f"must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_direction(value: Direction | str) -> Direction:
    try:
        return Direction(value)
    except ValueError as e:
        raise ValidationError("direction", f"must be one of {[d.value for d in Direction]}, got {value!r}") from e


def _is_real(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
