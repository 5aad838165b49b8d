"""Joined interactions (the reward join's table) as validated arrays that offline learners read.

The table is what :meth:`rlops.engine.Engine.interactions` returns (``context`` as JSON text) or its Parquet export
(``context`` as a struct column). Columns read:

=================  ==========================================================================================
column             use
=================  ==========================================================================================
``context``        the context features, re-validated and encoded with the deployment's schema
``action_index``   the logged action among fixed discrete actions (``-1`` for box actions)
``action``         box actions: the JSON text of the action vector
``actions``        when present, every row must list the schema's action names in order
``propensity``     the logging policy's probability (or density) of the logged action: present and > 0
``reward``         the joined reward: present and finite
``unit_id``        sequential data: the subject of the decision (episodes are per unit)
``ts``             sequential data: when the decision was made
``decision_id``    sequential data: breaks ties of ``ts`` (ids are time-ordered)
=================  ==========================================================================================
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rlops.errors import ValidationError
from rlops.events.join import JoinResult
from rlops.policies.base import PolicyInput
from rlops.schema import BoxActions, CandidateActions, DiscreteActions, Schema

REQUIRED = ("context", "action_index", "propensity", "reward")


@dataclass(frozen=True, eq=False)
class LoggedRows:
    """Validated logged decisions, in table order.

    Attributes:
        inputs: the encoded contexts (``inputs.x`` is ``(n, schema.width)``).
        action: ``(n,)`` int64 action indices, or ``(n, dim)`` float64 box actions.
        reward: ``(n,)`` float64 rewards.
        propensity: ``(n,)`` float64 logging probabilities (densities for boxes), all > 0.
    """

    inputs: PolicyInput
    action: np.ndarray
    reward: np.ndarray
    propensity: np.ndarray

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.reward.shape[0])


def as_table(interactions: pa.Table | JoinResult) -> pa.Table:
    """The interactions table of a ``JoinResult``, or the table itself."""
    return interactions.interactions if isinstance(interactions, JoinResult) else interactions


def column(table: pa.Table, name: str) -> pa.ChunkedArray:
    """A column, or a :class:`ValidationError` naming it and the columns that are there."""
    if name not in table.column_names:
        raise ValidationError(name, f"column is missing from the interactions (found: {', '.join(table.column_names)})")
    return table[name]


def _contexts(col: pa.ChunkedArray) -> list[Any]:
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        out = []
        for i, text in enumerate(col.to_pylist()):
            try:
                out.append(json.loads(text))
            except (TypeError, json.JSONDecodeError) as e:
                raise ValidationError(f"context[{i}]", f"is not valid JSON: {e}") from e
        return out
    return list(col.to_pylist())


def _floats(table: pa.Table, name: str) -> np.ndarray:
    col = column(table, name)
    if col.null_count:
        row = int(np.flatnonzero(np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False)))[0])
        raise ValidationError(name, f"is missing in row {row} ({col.null_count} rows in all)")
    try:
        return np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise ValidationError(name, f"expected numbers, got {col.type}") from e


def _check_actions_column(table: pa.Table, names: Sequence[str]) -> None:
    if "actions" not in table.column_names:
        return
    expected = list(names)
    for i, row in enumerate(table["actions"].to_pylist()):
        if row != expected:
            raise ValidationError("actions", f"row {i} lists {row[:8] if row else row} but the schema's actions are "
                                             f"{expected[:8]}; filter the interactions to one schema revision")


def _box_actions(table: pa.Table, space: BoxActions) -> np.ndarray:
    out = np.empty((table.num_rows, space.dim))
    for i, text in enumerate(column(table, "action").to_pylist()):
        try:
            value = json.loads(text) if isinstance(text, str) else text
            vec = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValidationError(f"action[{i}]", f"expected a vector of {space.dim} numbers: {e}") from e
        if vec.shape != (space.dim,) or not np.all(np.isfinite(vec)):
            raise ValidationError(f"action[{i}]", f"expected {space.dim} finite numbers, got {text!r}")
        out[i] = vec
    return out


def read_logged(interactions: pa.Table | JoinResult, schema: Schema, *, min_rows: int = 1) -> LoggedRows:
    """Read and check the columns every offline learner needs.

    Args:
        interactions: joined interactions (see the module docstring).
        schema: the deployment's schema; contexts are re-validated and encoded with it.
        min_rows: fewest rows accepted, default 1.

    Raises:
        ValidationError: a missing column, too few rows, a missing or non-finite reward, a propensity that is
            missing or not > 0 (or above 1 for discrete actions), an action outside the schema, a context the
            schema refuses; the message names the column and the first bad row.
    """
    table = as_table(interactions)
    for name in REQUIRED:
        column(table, name)
    n = table.num_rows
    if n < min_rows:
        raise ValidationError("interactions", f"{n} rows are too few to fit a policy (need at least {min_rows})")
    if isinstance(schema.actions, CandidateActions):
        raise ValidationError("schema.actions", "per-request candidate actions are not supported by offline "
                                                "retraining yet; use fixed discrete actions or a box")
    reward = _floats(table, "reward")
    bad = ~np.isfinite(reward)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValidationError("reward", f"row {row} is {reward[row]}: rewards must be finite")
    propensity = _floats(table, "propensity")
    discrete = isinstance(schema.actions, DiscreteActions)
    upper = 1.0 if discrete else np.inf
    bad = ~((propensity > 0.0) & (propensity <= upper))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        rule = "in (0, 1]" if discrete else "finite and > 0"
        raise ValidationError("propensity", f"row {row} is {float(propensity[row])!r}: logging propensities must be "
                                            f"{rule} (a policy that logs 0 or made-up propensities cannot be learned "
                                            f"from)")
    action: np.ndarray
    if isinstance(schema.actions, DiscreteActions):
        _check_actions_column(table, schema.actions.names)
        idx = column(table, "action_index")
        if idx.null_count:
            raise ValidationError("action_index", "is missing in some rows")
        action = np.asarray(idx.to_numpy(), dtype=np.int64)
        k = schema.actions.n
        bad = (action < 0) | (action >= k)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValidationError("action_index", f"row {row} is {action[row]}, outside the schema's {k} actions "
                                                  f"[0, {k})")
    else:
        assert isinstance(schema.actions, BoxActions)
        action = _box_actions(table, schema.actions)
    inputs = PolicyInput.from_contexts(schema, _contexts(column(table, "context")))
    return LoggedRows(inputs=inputs, action=action, reward=reward, propensity=propensity)


def timestamps_us(table: pa.Table) -> np.ndarray:
    """The ``ts`` column as int64 microseconds since the epoch (timestamps or plain integers)."""
    col = column(table, "ts")
    if col.null_count:
        raise ValidationError("ts", "is missing in some rows")
    if pa.types.is_timestamp(col.type):
        col = pc.cast(col, pa.timestamp("us", tz=col.type.tz))
    try:
        return np.asarray(pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise ValidationError("ts", f"expected timestamps or integer microseconds, got {col.type}") from e
