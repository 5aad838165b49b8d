"""Contexts to the raw input of an exported graph, validated by the schema's rules, without a loop per value.

Two batch shapes are accepted: a list of context dicts (what the service takes) and columns, a mapping of feature
name to a list or numpy array of that feature's values (what a feature store or a dataframe hands over). Both go
through checks written as a handful of numpy and C-level operations per feature (exact types, finiteness, bounds,
vocabulary). Anything those checks do not plainly accept is handed to :meth:`rlops.schema.Schema.validate_context`,
row by row, which either accepts it (numpy scalars, defaults, unknown categories) or raises the same error, naming
the field and the rule, that the service would. So the fast path never accepts what the schema refuses, and never
encodes a value differently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain, repeat
from typing import Any

import numpy as np

from rlops.edge.layout import RawColumn, RawKind, RawLayout
from rlops.errors import ValidationError
from rlops.schema import CategoricalFeature, FloatFeature, IntFeature, Schema, VectorFeature
from rlops.schema.features import MAX_EXACT_INT, MAX_STRING_LENGTH

_NUMBERS = frozenset((float, int))
_INTS = frozenset((int,))
_BOOLS = frozenset((bool,))
_STRINGS = frozenset((str,))
_SEQUENCES = frozenset((list, tuple))


class _Refused(Exception):
    """The fast path does not accept this batch as it is: validate it row by row instead."""


def _in_bounds(values: np.ndarray, feature: Any) -> bool:
    if feature.min is not None and not bool((values >= feature.min).all()):
        return False
    return feature.max is None or bool((values <= feature.max).all())


class ContextEncoder:
    """Validates contexts against a schema and writes them as the raw input of the exported graph.

    Args:
        schema: the schema the policy was exported with.
        layout: the raw layout (``RawLayout.from_schema(schema)``).
    """

    def __init__(self, schema: Schema, layout: RawLayout) -> None:
        self.schema, self.layout = schema, layout
        self._features = {f.name: f for f in schema.features}
        self._names = frozenset(self._features)
        self._index = {c.feature: {v: float(i) for i, v in enumerate(c.vocabulary or [])} for c in layout.columns
                       if c.kind is RawKind.CODE}

    # ---- one validated context at a time (exact, used for single decisions and as the fallback) ---------------

    def raw_from_valid(self, valid: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The raw input of contexts already validated by ``schema.validate_context``."""
        out = np.empty((len(valid), self.layout.width), dtype=np.float64)
        for i, context in enumerate(valid):
            row: list[float] = []
            for column in self.layout.columns:
                value = context[column.feature]
                if column.kind is RawKind.CODE:
                    row.append(self._index[column.feature].get(value, float(column.unknown_code or 0)))
                elif column.kind is RawKind.VECTOR:
                    row.extend(value)
                else:
                    row.append(float(value))
            out[i] = row
        return out

    def validate_rows(self, contexts: Sequence[Any], path: str = "contexts") -> list[dict[str, Any]]:
        """Validate each context with the schema (defaults filled in); raises its error for the first bad one."""
        if len(contexts) == 1 and path == "context":
            return [self.schema.validate_context(contexts[0], path=path)]
        return [self.schema.validate_context(c, path=f"{path}[{i}]") for i, c in enumerate(contexts)]

    # ---- batches ----------------------------------------------------------------------------------------------

    def encode_rows(self, contexts: Sequence[Any]) -> tuple[np.ndarray, dict[str, list[Any]]]:
        """The raw input of a list of context dicts, and the contexts as columns (defaults filled in, for logging).

        Raises:
            ValidationError: naming the first bad field as ``contexts[i].field``, with the schema's rule.
        """
        try:
            return self._fast_rows(contexts)
        except _Refused:
            valid = self.validate_rows(contexts)
            return self.raw_from_valid(valid), {name: [c[name] for c in valid] for name in self._features}

    def _fast_rows(self, contexts: Sequence[Any]) -> tuple[np.ndarray, dict[str, list[Any]]]:
        if not set(map(type, contexts)) <= {dict} or not set().union(*contexts) <= self._names:
            raise _Refused
        out = np.empty((len(contexts), self.layout.width), dtype=np.float64)
        columns: dict[str, list[Any]] = {}
        for column in self.layout.columns:
            values = list(map(dict.get, contexts, repeat(column.feature)))
            columns[column.feature] = self._fast_column(column, values, out)
        return out, columns

    def _fast_column(self, column: RawColumn, values: list[Any], out: np.ndarray) -> list[Any]:
        """Write one feature's raw column(s) into ``out``; return its values with defaults filled in."""
        feature = self._features[column.feature]
        types = set(map(type, values))
        if type(None) in types:  # missing or null: the default, when there is one
            default = getattr(feature, "default", None)
            if default is None:
                raise _Refused
            values = [default if v is None else v for v in values]
            types = set(map(type, values))
        at = column.start
        try:
            if column.kind is RawKind.NUMBER:
                if isinstance(feature, IntFeature):
                    if not types <= _INTS:
                        raise _Refused
                    ints = np.array(values, dtype=np.int64)  # OverflowError beyond 64 bits
                    if bool((np.abs(ints) > MAX_EXACT_INT).any()) or not _in_bounds(ints, feature):
                        raise _Refused
                    out[:, at] = ints
                else:
                    if not types <= _NUMBERS:
                        raise _Refused
                    numbers = np.array(values, dtype=np.float64)  # OverflowError for ints beyond float range
                    if not bool(np.isfinite(numbers).all()) or not _in_bounds(numbers, feature):
                        raise _Refused
                    out[:, at] = numbers
            elif column.kind is RawKind.BOOL:
                if not types <= _BOOLS:
                    raise _Refused
                out[:, at] = np.array(values, dtype=np.float64)
            elif column.kind is RawKind.CODE:
                if not types <= _STRINGS:
                    raise _Refused
                codes = np.fromiter(map(self._index[column.feature].get, values, repeat(-1.0)), np.float64,
                                    count=len(values))
                self._resolve_unknown(column, codes, values)
                out[:, at] = codes
            else:
                if not types <= _SEQUENCES or set(map(len, values)) != {column.width}:
                    raise _Refused
                if not set(map(type, chain.from_iterable(values))) <= _NUMBERS:
                    raise _Refused
                vectors = np.fromiter(chain.from_iterable(values), np.float64, count=len(values) * column.width)
                if not bool(np.isfinite(vectors).all()) or not _in_bounds(vectors, feature):
                    raise _Refused
                out[:, at:at + column.width] = vectors.reshape(len(values), column.width)
        except (OverflowError, ValueError, TypeError) as e:
            raise _Refused from e
        return values

    @staticmethod
    def _resolve_unknown(column: RawColumn, codes: np.ndarray, values: Sequence[Any]) -> None:
        """Give values outside the vocabulary the "other" code, or refuse them (the fallback names the row)."""
        unknown = np.flatnonzero(codes < 0)
        if unknown.size == 0:
            return
        if column.unknown_code is None or any(len(values[i]) > MAX_STRING_LENGTH for i in unknown.tolist()):
            raise _Refused
        codes[unknown] = float(column.unknown_code)

    def encode_columns(self, columns: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The raw input of a mapping ``feature -> values`` (lists or numpy arrays, all of one length).

        Returns:
            The raw input and the columns as numpy arrays with defaults filled in (for logging).

        Raises:
            ValidationError: an unknown or missing feature, columns of different lengths, or a value the schema
                refuses (named ``contexts.FEATURE[ROW]`` with the schema's rule).
        """
        unknown = sorted(set(columns) - self._names)
        if unknown:
            raise ValidationError(f"contexts.{unknown[0][:64]}", f"unknown field (known: {sorted(self._names)[:20]})")
        arrays = {name: np.asarray(values) for name, values in columns.items()}
        lengths = {a.shape[0] if a.ndim else -1 for a in arrays.values()}
        if len(lengths) > 1 or -1 in lengths:
            raise ValidationError("contexts", f"every column must be a list of the same length, got lengths "
                                              f"{ {k: (a.shape[0] if a.ndim else None) for k, a in arrays.items()} }")
        n = lengths.pop() if lengths else 0
        out = np.empty((n, self.layout.width), dtype=np.float64)
        filled: dict[str, np.ndarray] = {}
        for column in self.layout.columns:
            feature = self._features[column.feature]
            values = arrays.get(column.feature)
            if values is None:
                default = getattr(feature, "default", None)
                if default is None:
                    raise ValidationError(f"contexts.{column.feature}", "is required")
                values = np.array([default] * n) if column.kind is RawKind.VECTOR else np.full(n, default)
            filled[column.feature] = values
            if not self._column_ok(column, feature, values, out):
                self._explain(column, feature, values)
        return out, filled

    def _column_ok(self, column: RawColumn, feature: Any, values: np.ndarray, out: np.ndarray) -> bool:
        kind, at = values.dtype.kind, column.start
        if column.kind is RawKind.NUMBER:
            if isinstance(feature, IntFeature):
                if kind not in "iu" or values.ndim != 1:
                    return False
                if values.size and (bool((np.abs(values.astype(np.float64)) > MAX_EXACT_INT).any())
                                    or not _in_bounds(values, feature)):
                    return False
                out[:, at] = values
                return True
            if kind not in "fiu" or values.ndim != 1:
                return False
            numbers = values.astype(np.float64)
            if not bool(np.isfinite(numbers).all()) or not _in_bounds(numbers, feature):
                return False
            out[:, at] = numbers
            return True
        if column.kind is RawKind.BOOL:
            if kind != "b" or values.ndim != 1:
                return False
            out[:, at] = values
            return True
        if column.kind is RawKind.CODE:
            return self._codes_ok(column, values, out)
        if kind not in "fiu" or values.shape[1:] != (column.width,):
            return False
        vectors = values.astype(np.float64)
        if not bool(np.isfinite(vectors).all()) or not _in_bounds(vectors, feature):
            return False
        out[:, at:at + column.width] = vectors
        return True

    def _codes_ok(self, column: RawColumn, values: np.ndarray, out: np.ndarray) -> bool:
        if values.ndim != 1 or values.dtype.kind not in "UO":
            return False
        if values.dtype.kind == "O" and not set(map(type, values.tolist())) <= _STRINGS:
            return False
        strings = values.tolist()
        codes = np.fromiter(map(self._index[column.feature].get, strings, repeat(-1.0)), np.float64,
                            count=len(strings))
        try:
            self._resolve_unknown(column, codes, strings)
        except _Refused:
            return False
        out[:, column.start] = codes
        return True

    @staticmethod
    def _explain(column: RawColumn, feature: Any, values: np.ndarray) -> None:
        """Raise the schema's own error for the first value of a column the fast checks refused."""
        for i, value in enumerate(values.tolist()):
            feature.validate_value(value, f"contexts.{column.feature}[{i}]")
        kinds: dict[Any, str] = {CategoricalFeature: "strings", IntFeature: "integers", FloatFeature: "numbers",
                                 VectorFeature: f"rows of {column.width} numbers"}
        expected = kinds.get(type(feature), "true/false values")
        raise ValidationError(f"contexts.{column.feature}", f"expected {expected}, got an array of dtype "
                                                            f"{values.dtype} and shape {values.shape}")
