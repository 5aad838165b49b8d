"""From the event log to estimator inputs: joined interactions or their Parquet export -> :class:`BanditData`.

The interactions are what :meth:`rlops.engine.Engine.interactions` returns (a
:class:`~rlops.events.join.JoinResult`, whose ``context`` column is JSON text) or what ``rlops events export``
writes to ``interactions-<deployment>.parquet`` (``context`` as a struct column). The columns read are:

================  ===========================================================================================
column            use
================  ===========================================================================================
``context``       the context features: encoded with the schema, or (without one) the struct's numeric fields
``actions``       the candidate action names; every row must list the same actions (a fixed discrete space)
``action_index``  the logged action (``-1``, a continuous action, is refused)
``propensity``    the logging policy's probability of it
``probabilities`` the logging policy's full distribution, when every row has it (used as ``pi_b``)
``reward``        the joined reward
================  ===========================================================================================

Sequential interactions add ``episode_id`` and ``step`` (:func:`episode_data_from_table`); each step's context is
its state.

The target policy comes as a ready ``pi_e`` array or as an rlops :class:`~rlops.policies.Policy`, whose
``ActResult.probabilities`` on the logged contexts become ``pi_e`` (see :func:`target_probabilities`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rlops.errors import StorageError, ValidationError
from rlops.evaluation.ope.data import BanditData
from rlops.evaluation.ope.episodes import EpisodeData
from rlops.events.join import JoinResult
from rlops.policies.base import Policy, PolicyInput
from rlops.schema import Schema

#: Rows per ``policy.act`` call in :func:`target_probabilities` (bounds the memory of one call).
CHUNK_ROWS = 100_000
REQUIRED = ("context", "actions", "action_index", "propensity", "reward")


def target_probabilities(policy: Policy, batch: PolicyInput, seed: int = 0) -> np.ndarray:
    """The target policy's ``(n, K)`` action distribution on logged contexts (``ActResult.probabilities``).

    Args:
        policy: an rlops policy over a fixed discrete action space.
        batch: the logged contexts, encoded for ``policy.schema``.
        seed: seed of the generator handed to ``policy.act`` (the sampled actions are discarded; only the
            distribution is kept, so a stochastic policy's ``pi_e`` does not depend on it).
    """
    rng = np.random.default_rng(seed)
    parts = []
    for start in range(0, batch.n, CHUNK_ROWS):  # a loop over chunks of rows, each one vectorised call
        stop = min(start + CHUNK_ROWS, batch.n)
        chunk = PolicyInput(x=batch.x[start:stop], contexts=batch.contexts[start:stop] if batch.contexts else (),
                            candidates=None if batch.candidates is None else batch.candidates[start:stop])
        probs = policy.act(chunk, rng).probabilities
        if probs is None:
            raise ValidationError("policy", f"'{policy.kind}' gives no action distribution (continuous actions?); "
                                            f"off-policy bandit estimators need one")
        if not isinstance(probs, np.ndarray):
            raise ValidationError("policy", f"'{policy.kind}' chooses among per-request candidates; bandit "
                                            f"estimators need a fixed set of actions")
        parts.append(np.asarray(probs, dtype=np.float64))
    return np.vstack(parts) if parts else np.zeros((0, 0))


def _column(table: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise ValidationError(name, f"column is missing from the interactions (found: {', '.join(table.column_names)})")
    return table[name]


def _contexts(column: pa.ChunkedArray) -> list[dict[str, Any]]:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return [json.loads(c) for c in column.to_pylist()]  # the log's JSON text: one parse per row
    return list(column.to_pylist())


def _numeric_struct(column: pa.ChunkedArray) -> np.ndarray:
    """The numeric fields of a struct ``context`` column as a float matrix (no schema given)."""
    array = column.combine_chunks()
    if not pa.types.is_struct(array.type):
        raise ValidationError("schema", "is needed to encode JSON-text contexts; pass the deployment's schema")
    columns = []
    for i, fld in enumerate(array.type):
        child = array.field(i)
        if not (pa.types.is_integer(fld.type) or pa.types.is_floating(fld.type) or pa.types.is_boolean(fld.type)):
            raise ValidationError(f"context.{fld.name}", f"is {fld.type}, not numeric; pass the deployment's schema "
                                                         f"to encode it")
        if child.null_count:
            raise ValidationError(f"context.{fld.name}", "has missing values; pass the deployment's schema")
        columns.append(np.asarray(pc.cast(child, pa.float64()).to_numpy(zero_copy_only=False)))
    return np.column_stack(columns) if columns else np.zeros((len(array), 0))


def _fixed_actions(column: pa.ChunkedArray) -> int:
    """Number of actions, after checking that every row lists the same actions in the same order."""
    lists = column.combine_chunks()
    lengths = np.asarray(pc.list_value_length(lists).to_numpy(zero_copy_only=False))
    k = int(lengths[0])
    same = bool(np.all(lengths == k))
    if same:
        names = np.asarray(pc.list_flatten(lists).to_numpy(zero_copy_only=False), dtype=object).reshape(-1, k)
        same = bool(np.all(names == names[0]))
    if not same or k == 0:
        raise ValidationError("actions", "rows list different actions; bandit estimators need one fixed action set "
                                         "(filter the interactions to one schema revision)")
    return k


def _probabilities(column: pa.ChunkedArray, n: int, k: int) -> np.ndarray | None:
    lists = column.combine_chunks()
    if lists.null_count:
        return None
    values = np.asarray(pc.list_flatten(lists).to_numpy(zero_copy_only=False), dtype=np.float64)
    return values.reshape(n, k) if values.size == n * k else None


def bandit_data_from_table(
    interactions: pa.Table | JoinResult,
    *,
    pi_e: np.ndarray | None = None,
    policy: Policy | None = None,
    schema: Schema | None = None,
    seed: int = 0,
    reward_bounds: tuple[float, float] | None = None,
) -> BanditData:
    """Joined interactions (an Arrow table or a ``JoinResult``) as validated :class:`BanditData`.

    Args:
        interactions: ``Engine.interactions(deployment)``, or a table with the columns in the module docstring.
        pi_e: the target's ``(n, K)`` distribution over the logged actions, in the order of ``actions``; or
        policy: an rlops policy whose distribution on the logged contexts becomes ``pi_e``.
        schema: encodes contexts into ``x`` (default: ``policy.schema``; without either, the numeric fields of a
            struct ``context`` column, in column order).
        seed: passed to :func:`target_probabilities`.
        reward_bounds: known reward bounds (e.g. the reward spec's clip bounds), for empirical-Bernstein bounds.
    """
    table = interactions.interactions if isinstance(interactions, JoinResult) else interactions
    cols = _read(table, pi_e, policy, schema, seed)
    return BanditData(action=cols.action, reward=cols.reward, propensity=cols.propensity, pi_e=cols.pi_e, x=cols.x,
                      pi_b=cols.pi_b, reward_bounds=reward_bounds)


@dataclass(frozen=True)
class _Columns:
    action: np.ndarray
    reward: np.ndarray
    propensity: np.ndarray
    pi_e: np.ndarray
    x: np.ndarray
    pi_b: np.ndarray | None


def _read(table: pa.Table, pi_e: np.ndarray | None, policy: Policy | None, schema: Schema | None,
          seed: int) -> _Columns:
    """The arrays both adapters need, with every rule of the module docstring checked."""
    for name in REQUIRED:
        _column(table, name)
    n = table.num_rows
    if n == 0:
        raise ValidationError("interactions", "are empty: nothing to evaluate")
    k = _fixed_actions(table["actions"])
    action = np.asarray(table["action_index"].to_numpy(), dtype=np.int64)
    if np.any(action < 0):
        row = int(np.flatnonzero(action < 0)[0])
        raise ValidationError("action_index", f"row {row} is {action[row]}: continuous (box) actions are not "
                                              f"supported here; build EpisodeData or BanditData directly")
    if table["propensity"].null_count:
        raise ValidationError("propensity", "is missing in some rows: off-policy estimates need every propensity")
    propensity = np.asarray(table["propensity"].to_numpy(), dtype=np.float64)
    reward = np.asarray(table["reward"].to_numpy(zero_copy_only=False), dtype=np.float64)
    encoder = schema if schema is not None else (policy.schema if policy is not None else None)
    contexts: Sequence[Mapping[str, Any]] = ()
    if encoder is not None:
        batch = PolicyInput.from_contexts(encoder, _contexts(table["context"]))
        x, contexts = batch.x, batch.contexts
    else:
        x = _numeric_struct(table["context"])
    if pi_e is None:
        if policy is None:
            raise ValidationError("pi_e", "is missing: pass the target's distribution pi_e or a policy")
        pi_e = target_probabilities(policy, PolicyInput(x=x, contexts=contexts), seed)
    elif policy is not None:
        raise ValidationError("policy", "give either pi_e or policy, not both")
    pi_e = np.asarray(pi_e, dtype=np.float64)
    if pi_e.ndim == 2 and pi_e.shape[1] != k:
        raise ValidationError("pi_e", f"has {pi_e.shape[1]} columns but the interactions have {k} actions")
    pi_b = _probabilities(table["probabilities"], n, k) if "probabilities" in table.column_names else None
    return _Columns(action, reward, propensity, pi_e, x, pi_b)


def episode_data_from_table(
    interactions: pa.Table,
    *,
    pi_e: np.ndarray | None = None,
    policy: Policy | None = None,
    schema: Schema | None = None,
    seed: int = 0,
    reward_bounds: tuple[float, float] | None = None,
) -> EpisodeData:
    """Sequential interactions (the columns above plus ``episode_id`` and ``step``) as :class:`EpisodeData`.

    The context of each step is its state; arguments as in :func:`bandit_data_from_table`.
    """
    for name in ("episode_id", "step"):
        _column(interactions, name)
    cols = _read(interactions, pi_e, policy, schema, seed)
    return EpisodeData(episode=np.asarray(interactions["episode_id"].to_numpy(zero_copy_only=False)),
                       step=np.asarray(interactions["step"].to_numpy(zero_copy_only=False)), state=cols.x,
                       action=cols.action, reward=cols.reward, propensity=cols.propensity, pi_e=cols.pi_e,
                       reward_bounds=reward_bounds)


def bandit_data_from_parquet(path: str | Path, **kwargs: Any) -> BanditData:
    """:func:`bandit_data_from_table` over an ``interactions-<deployment>.parquet`` export."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise StorageError(f"{path}: cannot read the Parquet file: {e}") from e
    return bandit_data_from_table(table, **kwargs)


def episode_data_from_parquet(path: str | Path, **kwargs: Any) -> EpisodeData:
    """:func:`episode_data_from_table` over a Parquet file of sequential interactions."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise StorageError(f"{path}: cannot read the Parquet file: {e}") from e
    return episode_data_from_table(table, **kwargs)
