"""Turning outcome and context dicts into typed numpy columns, with a problem recorded per bad row.

This is the fast path of reward computation: a column is pulled out of the dicts with one list comprehension, its
value types are checked with one pass, and only rows with an unusual value are looked at one by one. A bad row never
raises; it gets a :class:`RowIssue` and a harmless filler value (0.0 or ``""``) that the caller masks out later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import numpy as np


class Scope(StrEnum):
    """Where a name's values come from: the outcome's fields or the decision's context."""

    FIELD = "field"
    CONTEXT = "context"


@dataclass(frozen=True, slots=True)
class RowIssue:
    """Why one row has no reward.

    Attributes:
        path: dotted path of the offending value, e.g. ``outcome.fields.revenue``, ``context.price`` or ``reward``.
        rule: what is wrong, so that ``f"{path}: {rule}"`` reads as a sentence.
        reason: the same as a short phrase for the batch result, e.g. ``missing field 'revenue'``.
    """

    path: str
    rule: str
    reason: str


class _Missing:
    """The value of a name that a row does not have and that has no default."""


@dataclass(frozen=True, slots=True)
class _NotAnObject:
    """The value of every name of a row that is not a mapping at all."""

    type_name: str


MISSING: Final = _Missing()

# Value types whose conversion to float64 is exact in meaning and needs no look at the value (except for finiteness
# and int overflow, which are checked on the whole column).
_NUMBER_TYPES: Final = frozenset({float, int, bool})
_FLOAT_MAX: Final = float(np.finfo(np.float64).max)


@dataclass(frozen=True, slots=True)
class ColumnSource:
    """One name the expression reads and how to read it.

    Attributes:
        name: the field or context feature name.
        scope: whether it comes from the outcome fields or the context.
        string: whether the expression compares it with strings (else it is a number; booleans count as 0/1).
        default: the value used when a row lacks the name; :data:`MISSING` when it has none (the row is then bad).
    """

    name: str
    scope: Scope
    string: bool = False
    default: Any = MISSING

    @property
    def path(self) -> str:
        """Dotted path of this name's values, e.g. ``outcome.fields.revenue``."""
        return f"{_prefix(self.scope)}.{self.name}"

    @property
    def label(self) -> str:
        """How reasons call this name, e.g. ``field 'revenue'``."""
        return f"{'field' if self.scope is Scope.FIELD else 'context feature'} {self.name!r}"


def _prefix(scope: Scope) -> str:
    return "outcome.fields" if scope is Scope.FIELD else "context"


def _get(row: Any, name: str, default: Any) -> Any:
    if isinstance(row, Mapping):
        return row.get(name, default)
    return _NotAnObject(type(row).__name__)


def _pull(rows: Sequence[Any], source: ColumnSource) -> list[Any]:
    name, default = source.name, source.default
    try:
        return [row.get(name, default) for row in rows]
    except (AttributeError, TypeError):
        # some row is not a mapping: take the careful way for all of them
        return [_get(row, name, default) for row in rows]


def _issue(source: ColumnSource, value: Any, expected: str) -> RowIssue:
    if value is MISSING:
        return RowIssue(source.path, "is missing and has no default", f"missing {source.label}")
    if isinstance(value, _NotAnObject):
        path = _prefix(source.scope)
        rule = f"expected an object, got {value.type_name}"
        return RowIssue(path, rule, f"{path}: {rule}")
    got = "null" if value is None else type(value).__name__
    rule = f"expected {expected}, got {got}"
    return RowIssue(source.path, rule, f"{source.label}: {rule}")


def _number(source: ColumnSource, value: Any) -> float | RowIssue:
    """Convert one unusual value, or say why it is not a usable number."""
    if isinstance(value, bool | np.bool_):
        return 1.0 if value else 0.0
    if isinstance(value, int | float | np.integer | np.floating):
        try:
            result = float(value)
        except OverflowError:
            rule = f"{str(value)[:20]}... is too large for a float"
            return RowIssue(source.path, rule, f"{source.label}: {rule}")
        if not math.isfinite(result):
            rule = f"{result} is not a finite number"
            return RowIssue(source.path, rule, f"{source.label}: {rule}")
        return result
    return _issue(source, value, "a number or boolean")


def _usual(values: list[Any]) -> np.ndarray:
    n = len(values)
    if set(map(type, values)) <= _NUMBER_TYPES:  # the common case, checked in one fast pass
        return np.ones(n, dtype=bool)
    return np.fromiter(map(_NUMBER_TYPES.__contains__, map(type, values)), dtype=bool, count=n)


def _to_float(values: list[Any], usual: np.ndarray) -> np.ndarray:
    if usual.all():
        return np.array(values, dtype=np.float64)
    out = np.zeros(len(values), dtype=np.float64)
    # fromiter keeps one object per row even when some values are lists (np.array would nest them)
    objects = np.fromiter(values, dtype=object, count=len(values))
    out[usual] = objects[usual].astype(np.float64)
    return out


def _number_column(values: list[Any], source: ColumnSource) -> tuple[np.ndarray, dict[int, RowIssue]]:
    usual = _usual(values)
    try:
        out = _to_float(values, usual)
    except OverflowError:  # ints beyond the float range somewhere: leave those to the careful path
        usual &= np.fromiter((not (type(v) is int and abs(v) > _FLOAT_MAX) for v in values), dtype=bool,
                             count=len(values))
        out = _to_float(values, usual)
    issues: dict[int, RowIssue] = {}
    finite = np.isfinite(out)
    for i in np.flatnonzero(~finite & usual).tolist():
        issues[i] = RowIssue(source.path, f"{out[i]} is not a finite number",
                             f"{source.label}: {out[i]} is not a finite number")
    out[~finite] = 0.0
    for i in np.flatnonzero(~usual).tolist():
        converted = _number(source, values[i])
        if isinstance(converted, RowIssue):
            issues[i] = converted
        else:
            out[i] = converted
    return out, issues


def _string_column(values: list[Any], source: ColumnSource) -> tuple[np.ndarray, dict[int, RowIssue]]:
    issues: dict[int, RowIssue] = {}
    if any(type(v) is not str for v in values):
        for i, value in enumerate(values):
            if not isinstance(value, str):
                issues[i] = _issue(source, value, "a string")
        values = [v if isinstance(v, str) else "" for v in values]
    # strings never nest, so numpy keeps this 1-D
    return np.array(values, dtype=object), issues


def extract_column(rows: Sequence[Any], source: ColumnSource) -> tuple[np.ndarray, dict[int, RowIssue]]:
    """Read one name from every row.

    Args:
        rows: outcome field dicts or context dicts, one per row.
        source: the name and how to read it.

    Returns:
        The column (float64, or ``object`` holding ``str`` for string names) and the issues of bad rows by row
        index; bad rows hold 0.0 or ``""``.
    """
    values = _pull(rows, source)
    if source.string:
        return _string_column(values, source)
    return _number_column(values, source)


__all__ = ["MISSING", "ColumnSource", "RowIssue", "Scope", "extract_column"]
