"""Plumbing shared by the global explanations: the data matrix, a feature's columns, batched score calls.

Both partial dependence and permutation importance score many edited copies of the same data. They stack the
copies into as few matrices as memory allows and call the score function once per stack, so a score function
that is vectorised (every policy here is) pays its per-call overhead a handful of times, not once per grid point.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlops.errors import ValidationError
from rlops.schema import FloatFeature, Schema, VectorFeature

#: Maps an encoded context matrix ``(n, schema.width)`` to one score per action ``(n, K)``.
ScoreCallable = Callable[[np.ndarray], np.ndarray]

#: Most rows handed to the score function in one call (about 200 MB of float64 for a 100-column schema).
MAX_BATCH_ROWS = 250_000

_ELEMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]{0,63})\[(\d+)\]$")


def as_matrix(schema: Schema, data: Any, path: str = "X") -> np.ndarray:
    """The encoded ``(n, schema.width)`` float64 matrix of ``data``: an encoded matrix, or raw contexts.

    Raw contexts (a sequence of mappings) are validated against the schema and encoded; a matrix is checked for
    its shape and for NaN or infinite entries.
    """
    if isinstance(data, np.ndarray):
        if data.ndim != 2 or data.shape[1] != schema.width:
            raise ValidationError(path, f"expected an encoded matrix of shape (n, {schema.width}), got "
                                        f"{data.shape}")
        x = np.asarray(data, dtype=np.float64)
        if not np.isfinite(x).all():
            raise ValidationError(path, "the encoded matrix holds NaN or infinite entries")
    elif isinstance(data, Sequence) and not isinstance(data, str | bytes) and all(
            isinstance(row, Mapping) for row in data):
        contexts = [schema.validate_context(row, path=f"{path}[{i}]") for i, row in enumerate(data)]
        x = schema.encode(contexts) if contexts else np.empty((0, schema.width))
    else:
        raise ValidationError(path, f"expected an encoded matrix or a list of contexts, got {type(data).__name__}")
    if x.shape[0] == 0:
        raise ValidationError(path, "no rows to explain")
    return x


def check_actions(actions: Sequence[str]) -> list[str]:
    names = [str(a) for a in actions]
    if not names:
        raise ValidationError("actions", "expected at least one action name")
    if len(set(names)) != len(names):
        raise ValidationError("actions", "action names must be unique")
    return names


def check_count(path: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValidationError(path, f"expected an integer of at least {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class FeatureColumns:
    """Where a feature (or one element of a vector feature, ``name[i]``) lives in the encoded matrix.

    Attributes:
        name: the name asked for, ``price`` or ``embedding[3]``.
        feature: the schema feature; for a vector element, a float feature with the vector's bounds.
        start: first encoded column; ``stop``: one past the last.
        kind: the feature's type (``float``, ``int``, ``bool``, ``categorical``, ``vector``); a vector element is
            ``float``.
    """

    name: str
    feature: Any
    start: int
    stop: int
    kind: str

    @property
    def columns(self) -> slice:
        return slice(self.start, self.stop)


def feature_offsets(schema: Schema) -> dict[str, tuple[int, int]]:
    """``name -> (start, stop)`` of every schema feature's encoded columns."""
    offsets: dict[str, tuple[int, int]] = {}
    start = 0
    for f in schema.features:
        offsets[f.name] = (start, start + f.width)
        start += f.width
    return offsets


def resolve_feature(schema: Schema, name: str, path: str = "feature") -> FeatureColumns:
    """Find a feature by name, or one element of a vector feature as ``name[i]``."""
    by_name = {f.name: f for f in schema.features}
    offsets = feature_offsets(schema)
    if not isinstance(name, str):
        raise ValidationError(path, f"expected a feature name, got {type(name).__name__}")
    if name in by_name:
        f = by_name[name]
        start, stop = offsets[name]
        return FeatureColumns(name, f, start, stop, f.type)
    match = _ELEMENT.match(name)
    vector = by_name.get(match.group(1)) if match else None
    if match and isinstance(vector, VectorFeature):
        index = int(match.group(2))
        if index >= vector.width:
            raise ValidationError(path, f"{name!r}: vector {vector.name} has {vector.width} elements")
        element = FloatFeature(name=vector.name, min=vector.min, max=vector.max)
        start = offsets[vector.name][0] + index
        return FeatureColumns(name, element, start, start + 1, "float")
    known = [f.name for f in schema.features][:20]
    raise ValidationError(path, f"unknown feature {name[:64]!r} (known: {known}; a vector element is name[i])")


def encode_values(target: FeatureColumns, values: Sequence[Any], path: str = "grid") -> tuple[list[Any], np.ndarray]:
    """Validate raw values of one feature and encode each into its columns.

    Returns:
        The validated values (plain Python: ints, floats, bools, strings, lists) and their ``(len(values), width)``
        encoding.
    """
    rows = np.empty((len(values), target.stop - target.start), dtype=np.float64)
    valid_values: list[Any] = []
    for i, value in enumerate(values):
        raw = value.item() if isinstance(value, np.generic) else value
        if isinstance(raw, np.ndarray):
            raw = raw.tolist()
        if target.kind == "int" and isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        valid = target.feature.validate_value(raw, f"{path}[{i}]")
        out: list[float] = []
        target.feature.encode_into(valid, out)
        rows[i] = out
        valid_values.append(valid)
    return valid_values, rows


def call_scores(score: ScoreCallable, x: np.ndarray, n_actions: int) -> np.ndarray:
    """Call ``score`` on ``x`` and check it answered one finite score per row and action."""
    try:
        result = np.asarray(score(x), dtype=np.float64)
    except (TypeError, ValueError) as e:
        if isinstance(e, ValidationError):
            raise
        raise ValidationError("score", f"the score function failed on a ({x.shape[0]}, {x.shape[1]}) matrix: "
                                       f"{e}") from e
    if result.shape != (x.shape[0], n_actions):
        raise ValidationError("score", f"returned shape {result.shape}, expected ({x.shape[0]}, {n_actions}): one "
                                       f"score per row and action")
    if not np.isfinite(result).all():
        raise ValidationError("score", "returned NaN or infinite scores")
    return result


def stacked_scores(
    score: ScoreCallable,
    n_actions: int,
    n_blocks: int,
    fill: Callable[[int, np.ndarray], None],
    base: np.ndarray,
    max_rows: int = MAX_BATCH_ROWS,
) -> np.ndarray:
    """Scores of ``n_blocks`` edited copies of ``base``: a ``(n_blocks, n, K)`` array.

    Each copy starts as ``base`` and ``fill(b, copy)`` edits it in place. Copies are stacked into matrices of at
    most ``max_rows`` rows (at least one copy each), so the score function is called ``ceil(n_blocks * n /
    max_rows)`` times, once when everything fits.
    """
    n = base.shape[0]
    per_call = max(1, max_rows // max(n, 1))
    out = np.empty((n_blocks, n, n_actions), dtype=np.float64)
    for first in range(0, n_blocks, per_call):
        last = min(first + per_call, n_blocks)
        stack = np.tile(base, (last - first, 1)).reshape(last - first, n, base.shape[1])
        for b in range(first, last):
            fill(b, stack[b - first])
        scores = call_scores(score, stack.reshape(-1, base.shape[1]), n_actions)
        out[first:last] = scores.reshape(last - first, n, n_actions)
    return out


def sample_rows(n: int, size: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``size`` rows drawn without replacement (all rows when ``size`` is None or ≥ ``n``)."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))
