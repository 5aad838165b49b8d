"""Typed context features: one class per kind, each validating a raw value and encoding it as floats."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlops.errors import ValidationError

#: Longest string accepted for a categorical value; longer ones are refused before anything is stored.
MAX_STRING_LENGTH = 1024
#: Largest integer an int feature may take: the encoded matrix is float64, which holds integers exactly up to 2**53.
MAX_EXACT_INT = 2**53
_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_float(path: str, value: int | float) -> float:
    try:
        return float(value)
    except OverflowError as e:  # an int beyond float range, e.g. 10**400
        raise ValidationError(path, "integer is too large for a float") from e


def _check_finite(path: str, value: float) -> float:
    if math.isnan(value) or math.isinf(value):
        raise ValidationError(path, f"{value} is not a finite number")
    return float(value)


def _check_bounds(path: str, value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise ValidationError(path, f"{value!r} is below the minimum {minimum!r}")
    if maximum is not None and value > maximum:
        raise ValidationError(path, f"{value!r} is above the maximum {maximum!r}")


class _Feature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME_PATTERN, description="Feature name, a Python-style identifier.")
    description: str = ""

    @property
    def required(self) -> bool:
        """A feature is optional exactly when it declares a default."""
        return getattr(self, "default", None) is None

    @property
    def width(self) -> int:
        """Number of matrix columns this feature encodes to."""
        return 1

    def column_names(self) -> list[str]:
        return [self.name]

    def validate_value(self, value: Any, path: str) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def encode_into(self, value: Any, out: list[float]) -> None:
        out.append(float(value))


class FloatFeature(_Feature):
    """A real number with optional inclusive bounds."""

    type: Literal["float"] = "float"
    min: float | None = None
    max: float | None = None
    default: float | None = None

    @model_validator(mode="after")
    def _bounds_ordered(self) -> FloatFeature:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"feature {self.name}: min {self.min} is above max {self.max}")
        return self

    def validate_value(self, value: Any, path: str) -> float:
        kind = type(value)
        if kind is float or kind is int:  # the hot path: no bools (type(True) is bool), no subclasses
            result = _as_float(path, value)
            if math.isfinite(result) and (self.min is None or result >= self.min) and (
                    self.max is None or result <= self.max):
                return result
        elif not _is_number(value):
            raise ValidationError(path, f"expected a number, got {type(value).__name__}")
        result = _check_finite(path, _as_float(path, value))
        _check_bounds(path, result, self.min, self.max)
        return result


class IntFeature(_Feature):
    """An integer with optional inclusive bounds (a float with an integral value is refused, not rounded)."""

    type: Literal["int"] = "int"
    min: int | None = None
    max: int | None = None
    default: int | None = None

    def validate_value(self, value: Any, path: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValidationError(path, f"expected an integer, got {type(value).__name__}")
        if not -MAX_EXACT_INT <= value <= MAX_EXACT_INT:  # encoded as float64: beyond 2**53 it would change
            raise ValidationError(path, f"integer of {len(str(abs(value)))} digits is too large (at most 2**53)")
        _check_bounds(path, value, self.min, self.max)
        return value


class BoolFeature(_Feature):
    """true or false (numbers and strings are refused)."""

    type: Literal["bool"] = "bool"
    default: bool | None = None

    def validate_value(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise ValidationError(path, f"expected true or false, got {type(value).__name__}")
        return value


class CategoricalFeature(_Feature):
    """A string from a vocabulary, one-hot encoded in vocabulary order.

    ``unknown: error`` refuses values outside the vocabulary; ``unknown: other`` maps them to an extra "other"
    column (the raw value is still logged).
    """

    type: Literal["categorical"] = "categorical"
    vocabulary: list[str] = Field(min_length=1)
    unknown: Literal["error", "other"] = "error"
    default: str | None = None

    @model_validator(mode="after")
    def _vocabulary_unique(self) -> CategoricalFeature:
        if len(set(self.vocabulary)) != len(self.vocabulary):
            raise ValueError(f"feature {self.name}: vocabulary has duplicate entries")
        if self.default is not None and self.default not in self.vocabulary and self.unknown == "error":
            raise ValueError(f"feature {self.name}: default {self.default!r} is not in the vocabulary")
        return self

    @property
    def width(self) -> int:
        return len(self.vocabulary) + (1 if self.unknown == "other" else 0)

    def column_names(self) -> list[str]:
        names = [f"{self.name}={v}" for v in self.vocabulary]
        return [*names, f"{self.name}=<other>"] if self.unknown == "other" else names

    def validate_value(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise ValidationError(path, f"expected a string, got {type(value).__name__}")
        if len(value) > MAX_STRING_LENGTH:
            raise ValidationError(path, f"string of {len(value)} characters is longer than {MAX_STRING_LENGTH}")
        if value not in self._index and self.unknown == "error":
            shown = self.vocabulary[:10]
            raise ValidationError(path, f"{value!r} is not in the vocabulary {shown}")
        return value

    @property
    def _index(self) -> dict[str, int]:
        cached: dict[str, int] | None = self.__dict__.get("_index_cache")
        if cached is None:
            cached = {v: i for i, v in enumerate(self.vocabulary)}
            object.__setattr__(self, "_index_cache", cached)  # frozen model: cache outside pydantic fields
        return cached

    def encode_into(self, value: Any, out: list[float]) -> None:
        row = [0.0] * self.width
        row[self._index.get(value, len(self.vocabulary))] = 1.0
        out.extend(row)


class VectorFeature(_Feature):
    """A fixed-size vector of finite floats with optional element-wise bounds (same for every element)."""

    type: Literal["vector"] = "vector"
    size: int = Field(ge=1, le=100_000)
    min: float | None = None
    max: float | None = None
    default: list[float] | None = None

    @property
    def width(self) -> int:
        return self.size

    def column_names(self) -> list[str]:
        return [f"{self.name}[{i}]" for i in range(self.size)]

    def validate_value(self, value: Any, path: str) -> list[float]:
        if not isinstance(value, Sequence) or isinstance(value, str | bytes):
            raise ValidationError(path, f"expected a list of {self.size} numbers, got {type(value).__name__}")
        if len(value) != self.size:
            raise ValidationError(path, f"expected {self.size} numbers, got {len(value)}")
        result: list[float] = []
        for i, item in enumerate(value):
            item_path = f"{path}[{i}]"
            if not _is_number(item):
                raise ValidationError(item_path, f"expected a number, got {type(item).__name__}")
            number = _check_finite(item_path, _as_float(item_path, item))
            _check_bounds(item_path, number, self.min, self.max)
            result.append(number)
        return result

    def encode_into(self, value: Any, out: list[float]) -> None:
        out.extend(value)


Feature = Annotated[
    FloatFeature | IntFeature | BoolFeature | CategoricalFeature | VectorFeature,
    Field(discriminator="type"),
]
