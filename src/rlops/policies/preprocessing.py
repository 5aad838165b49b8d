"""Feature preprocessing fitted from data, stored with the policy, and applied by one function everywhere.

The schema encodes raw contexts into a float matrix (one-hot categoricals, bools as 0/1, numbers as they are). A
:class:`Preprocessor` then normalises each encoded column the way ReAgent's normalisation did (Gauci et al.,
"Horizon: Facebook's Open Source Applied Reinforcement Learning Platform", 2018):

- ``identity`` for binary columns (one-hots, bools) and constant columns;
- ``standardize``: ``(x - mean) / std``;
- ``boxcox`` for positive, right-skewed columns: ``y = (x**lmbda - 1) / lmbda`` (``log x`` when ``lmbda`` is 0),
  with ``lmbda`` chosen by maximum likelihood (Box & Cox, 1964; scipy's ``boxcox_normmax``), then standardised.
  Values at or below zero (unseen when fitting) are raised to the smallest positive value seen first;

and every transformed value is clipped to ``[-clip, clip]`` (default 6 standard deviations), so one wild input
cannot dominate a linear score or saturate a network.

Training, serving and export all call :meth:`Preprocessor.transform` (the ONNX exporter writes the same
arithmetic into the graph), so the matrices the policy sees in training and in production cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from rlops.errors import ConfigError, ValidationError

#: Skewness above which a positive column gets a Box-Cox transform before standardising.
SKEW_FOR_BOXCOX = 1.0
#: Default clipping bound, in standard deviations.
DEFAULT_CLIP = 6.0


class Transform(StrEnum):
    IDENTITY = "identity"
    STANDARDIZE = "standardize"
    BOXCOX = "boxcox"


@dataclass(frozen=True)
class ColumnTransform:
    """How one encoded column is normalised (see the module docstring for the formulas)."""

    name: str
    transform: Transform
    mean: float = 0.0
    std: float = 1.0
    lmbda: float = 1.0
    floor: float = 0.0  # boxcox: inputs below this are raised to it (the smallest positive value seen)


def _boxcox(x: np.ndarray, lmbda: float) -> np.ndarray:
    if lmbda == 0.0:
        return np.log(x)
    return (np.power(x, lmbda) - 1.0) / lmbda


@dataclass(frozen=True)
class Preprocessor:
    """Per-column normalisation of the schema's encoded matrix.

    Attributes:
        columns: one :class:`ColumnTransform` per encoded column, in the schema's column order.
        clip: transformed values are clipped to ``[-clip, clip]``; ``None`` disables clipping.
    """

    columns: tuple[ColumnTransform, ...]
    clip: float | None = DEFAULT_CLIP

    @property
    def width(self) -> int:
        return len(self.columns)

    @classmethod
    def fit(cls, x: np.ndarray, names: Sequence[str], *, clip: float | None = DEFAULT_CLIP,
            boxcox: bool = True) -> Preprocessor:
        """Fit to an encoded matrix ``x`` of shape ``(n, len(names))`` (e.g. ``schema.encode(contexts)``).

        Args:
            x: encoded contexts; at least two rows.
            names: the column names (``schema.column_names()``).
            clip: bound on transformed values, in standard deviations (default 6); ``None`` for no clipping.
            boxcox: allow Box-Cox on positive, right-skewed columns (default ``True``).
        """
        from scipy import stats

        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise ValidationError("x", f"expected shape (n, {len(names)}), got {x.shape}")
        if x.shape[0] < 2:
            raise ValidationError("x", "at least two rows are needed to fit a preprocessor")
        if not np.isfinite(x).all():
            raise ValidationError("x", "holds NaN or infinite values")
        if clip is not None and not clip > 0:
            raise ValidationError("clip", f"must be positive, got {clip}")
        columns = []
        for j, name in enumerate(names):
            col = x[:, j]
            values = np.unique(col)
            if values.size <= 1 or np.isin(values, (0.0, 1.0)).all():
                columns.append(ColumnTransform(name, Transform.IDENTITY))
                continue
            if boxcox and col.min() > 0 and stats.skew(col) > SKEW_FOR_BOXCOX:
                lmbda = float(stats.boxcox_normmax(col, method="mle"))
                y = _boxcox(col, lmbda)
                std = float(y.std())
                if np.isfinite(lmbda) and np.isfinite(y).all() and std > 0:
                    columns.append(ColumnTransform(name, Transform.BOXCOX, float(y.mean()), std, lmbda,
                                                   float(col.min())))
                    continue
            std = float(col.std())
            columns.append(ColumnTransform(name, Transform.STANDARDIZE, float(col.mean()), std if std > 0 else 1.0))
        return cls(tuple(columns), clip)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """The normalised copy of an encoded matrix (float64, same shape)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValidationError("x", f"expected shape (n, {self.width}), got {x.shape}")
        out = x.copy()
        for j, c in enumerate(self.columns):
            if c.transform is Transform.IDENTITY:
                continue
            col = out[:, j]
            if c.transform is Transform.BOXCOX:
                col = _boxcox(np.maximum(col, c.floor), c.lmbda)
            out[:, j] = (col - c.mean) / c.std
            if self.clip is not None:
                np.clip(out[:, j], -self.clip, self.clip, out=out[:, j])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"clip": self.clip,
                "columns": [{**asdict(c), "transform": c.transform.value} for c in self.columns]}

    @classmethod
    def from_dict(cls, data: Any, source: str = "preprocessing") -> Preprocessor:
        if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
            raise ConfigError(f"{source}: expected a mapping with a list of columns")
        try:
            columns = tuple(ColumnTransform(**{**c, "transform": Transform(c["transform"])}) for c in data["columns"])
        except (TypeError, KeyError, ValueError) as e:
            raise ConfigError(f"{source}: a column is malformed: {e}") from e
        for c in columns:
            if not (np.isfinite([c.mean, c.std, c.lmbda, c.floor]).all() and c.std > 0):
                raise ConfigError(f"{source}: column {c.name}: mean, std, lmbda and floor must be finite, std > 0")
        clip = data.get("clip")
        if clip is not None and not (isinstance(clip, int | float) and clip > 0):
            raise ConfigError(f"{source}: clip must be a positive number or null")
        return cls(columns, None if clip is None else float(clip))
