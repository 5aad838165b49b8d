"""The raw input of an exported graph: one float64 column per scalar feature, where categoricals are codes.

ONNX graphs take numbers, not strings, so the one step of :meth:`rlops.schema.Schema.encode` that cannot run inside
the graph is the lookup of a categorical value in its vocabulary. The edge runtime does only that (and turns
booleans into 0/1); the exported graph does the rest, so that its input is the raw features and its first nodes
rebuild exactly the matrix ``Schema.encode`` makes::

    raw column per feature             encoded columns (Schema.encode)
    float / int   -> the value         1 column: the value
    bool          -> 0.0 or 1.0        1 column: the same
    categorical   -> its code: index   one-hot over the vocabulary (plus an "other" column when unknown is
                     in the vocabulary, "other"): ``encoded[:, j] = (raw[:, source[j]] == code[j])``
                     len(vocabulary)
                     for "other"
    vector(size)  -> size columns      the same size columns

In the graph (and in :meth:`RawLayout.encode`, its numpy twin), with ``gathered = raw[:, source]``::

    encoded = gathered * keep + (gathered == code)

where ``keep`` is 1 for pass-through columns and 0 for one-hot ones, and ``code`` is NaN for pass-through columns
(NaN equals nothing). A handful of operations whatever the schema, and exact: the gather is a product with a 0/1
selection matrix (each sum has one term ``x * 1``, the others are zeros), codes are small integers, and adding a
zero or multiplying by one changes no finite value.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rlops.schema import BoolFeature, CategoricalFeature, FloatFeature, IntFeature, Schema, VectorFeature


class RawKind(StrEnum):
    """How one feature appears in the raw input."""

    NUMBER = "number"  # float or int: the value
    BOOL = "bool"  # 0.0 for false, 1.0 for true
    CODE = "code"  # categorical: the value's index in the vocabulary (len(vocabulary) for an unknown value)
    VECTOR = "vector"  # `size` columns, the elements


class RawColumn(BaseModel):
    """One feature's place in the raw input.

    Attributes:
        feature: the feature's name.
        kind: how the value is written (see :class:`RawKind`).
        start: first raw column.
        width: raw columns (``size`` for vectors, else 1).
        vocabulary: categorical only, in code order.
        unknown_code: categorical with ``unknown: other``: the code of a value outside the vocabulary
            (``len(vocabulary)``); ``None`` when unknown values are refused.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    feature: str
    kind: RawKind
    start: int = Field(ge=0)
    width: int = Field(ge=1)
    vocabulary: list[str] | None = None
    unknown_code: int | None = None


class RawLayout(BaseModel):
    """Where each feature sits in the raw input, and how the graph turns the raw input into the encoded matrix."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    columns: list[RawColumn]

    @classmethod
    def from_schema(cls, schema: Schema) -> RawLayout:
        """The layout of ``schema``'s features, in schema order."""
        columns: list[RawColumn] = []
        start = 0
        for feature in schema.features:
            if isinstance(feature, CategoricalFeature):
                unknown = len(feature.vocabulary) if feature.unknown == "other" else None
                column = RawColumn(feature=feature.name, kind=RawKind.CODE, start=start, width=1,
                                   vocabulary=list(feature.vocabulary), unknown_code=unknown)
            elif isinstance(feature, VectorFeature):
                column = RawColumn(feature=feature.name, kind=RawKind.VECTOR, start=start, width=feature.size)
            elif isinstance(feature, BoolFeature):
                column = RawColumn(feature=feature.name, kind=RawKind.BOOL, start=start, width=1)
            elif isinstance(feature, FloatFeature | IntFeature):
                column = RawColumn(feature=feature.name, kind=RawKind.NUMBER, start=start, width=1)
            else:  # pragma: no cover - the schema's feature union is closed
                raise TypeError(f"unknown feature type {type(feature).__name__}")
            columns.append(column)
            start += column.width
        return cls(columns=columns)

    @property
    def width(self) -> int:
        """Number of raw columns."""
        return sum(c.width for c in self.columns)

    def gather_plan(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(source, is_code, code)``, one entry per encoded column.

        ``source[j]`` is the raw column encoded column ``j`` reads; for one-hot columns ``is_code[j]`` is true and
        ``code[j]`` is the code that sets it to 1 (0 elsewhere, unused).
        """
        source: list[int] = []
        is_code: list[bool] = []
        code: list[float] = []
        for column in self.columns:
            if column.kind is RawKind.CODE:
                n_codes = len(column.vocabulary or []) + (0 if column.unknown_code is None else 1)
                source.extend([column.start] * n_codes)
                is_code.extend([True] * n_codes)
                code.extend(float(c) for c in range(n_codes))
            else:
                source.extend(range(column.start, column.start + column.width))
                is_code.extend([False] * column.width)
                code.extend([0.0] * column.width)
        return np.array(source, dtype=np.int64), np.array(is_code, dtype=bool), np.array(code, dtype=np.float64)

    @property
    def is_identity(self) -> bool:
        """Whether the encoded matrix is the raw input itself (no categorical feature)."""
        return all(c.kind is not RawKind.CODE for c in self.columns)

    def encode(self, raw: np.ndarray) -> np.ndarray:
        """What the graph's first nodes compute: the ``Schema.encode`` matrix from the raw input, in numpy."""
        source, is_code, code = self.gather_plan()
        gathered = raw[:, source]
        return gathered * (~is_code) + (gathered == np.where(is_code, code, np.nan))
