"""Hand-built joined-interaction tables: the columns the reward join writes, from simulated decisions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from rlops.events.records import TIMESTAMP
from rlops.policies import BasePolicy, PolicyInput
from rlops.scenarios import SyntheticBandit
from rlops.schema import Schema


def interactions(contexts: Sequence[dict[str, Any]], actions: Sequence[Any], propensities: Sequence[float],
                 rewards: Sequence[float], *, action_names: Sequence[str] | None = None,
                 unit_ids: Sequence[str] | None = None, ts_us: Sequence[int] | None = None,
                 policy_version: str = "v1") -> pa.Table:
    """A joined interactions table; ``actions`` are indices (discrete) or vectors (box, ``action_names=None``)."""
    n = len(contexts)
    names = list(action_names or [])
    box = action_names is None
    ts = list(ts_us) if ts_us is not None else [1_700_000_000_000_000 + i * 1_000_000 for i in range(n)]
    return pa.table({
        "decision_id": [f"d{i:08d}" for i in range(n)],
        "ts": pa.array(ts, type=pa.int64()).cast(TIMESTAMP),
        "deployment": ["dep"] * n,
        "policy_version": [policy_version] * n,
        "mode": ["served"] * n,
        "unit_id": list(unit_ids) if unit_ids is not None else [f"u{i}" for i in range(n)],
        "context": [json.dumps(c) for c in contexts],
        "actions": [names] * n,
        "action": [json.dumps([float(v) for v in a]) if box else names[int(a)] for a in actions],
        "action_index": pa.array([-1 if box else int(a) for a in actions], type=pa.int64()),
        "propensity": pa.array([float(p) for p in propensities], type=pa.float64()),
        "reward": pa.array([float(r) for r in rewards], type=pa.float64()),
    })


def bandit_log(world: SyntheticBandit, logging: BasePolicy, n: int, seed: int) -> pa.Table:
    """``n`` decisions of ``logging`` on the synthetic users, with sampled clicks as rewards."""
    rng = np.random.default_rng(seed)
    contexts = world.sample_contexts(n, rng)
    batch = PolicyInput.from_contexts(world.schema, contexts)
    result = logging.act(batch, rng)
    clicks = world.sample_clicks(batch.x, result.action, rng)
    names = list(world.schema.action_names())
    return interactions(contexts, result.action.tolist(), result.propensity.tolist(), clicks.astype(float).tolist(),
                        action_names=names)


def online_value(world: SyntheticBandit, policy: BasePolicy, n: int = 20_000, seed: int = 99) -> float:
    """The policy's true expected click rate on fresh users (its full action distribution, no sampling noise)."""
    rng = np.random.default_rng(seed)
    batch = PolicyInput.from_contexts(world.schema, world.sample_contexts(n, rng))
    probs = policy.act(batch, rng).probabilities
    assert isinstance(probs, np.ndarray)
    return float(np.mean(np.sum(probs * world.click_probability(batch.x), axis=1)))


# ---- a chain MDP whose optimal policy is known ------------------------------------------------------------------
#
# Cells 0..3, then a goal. "right" moves one cell right; reaching the goal pays GOAL and ends the episode. "left"
# moves one cell left; in cell 0 it takes the lure: LURE now and the episode ends. With gamma = 0.9,
# Q*(s, right) = GOAL * 0.9^(3 - s) = 7.29, 8.1, 9, 10 beats Q*(s, left) = 3, 6.56, 7.29, 8.1: "right" everywhere.

CHAIN_CELLS = 4
GOAL, LURE, CHAIN_GAMMA = 10.0, 3.0, 0.9
CHAIN_ACTIONS = ["left", "right"]
#: The behaviour's probability of "right" per cell: mostly wrong in cells 0 and 2 (its mistakes), right elsewhere.
BEHAVIOUR_RIGHT = (0.3, 0.8, 0.3, 0.8)


def chain_schema() -> Schema:
    return Schema.model_validate({
        "name": "chain",
        "features": [{"name": "cell", "type": "categorical", "vocabulary": [f"c{i}" for i in range(CHAIN_CELLS)]}],
        "actions": {"type": "discrete", "names": CHAIN_ACTIONS},
    })


def chain_optimal_q() -> np.ndarray:
    """``Q*(s, a)`` of the chain, ``(cells, 2)``, by value iteration."""
    v = np.zeros(CHAIN_CELLS)
    for _ in range(200):
        q = np.empty((CHAIN_CELLS, 2))
        for s in range(CHAIN_CELLS):
            q[s, 0] = LURE if s == 0 else CHAIN_GAMMA * v[s - 1]
            q[s, 1] = GOAL if s == CHAIN_CELLS - 1 else CHAIN_GAMMA * v[s + 1]
        v = q.max(axis=1)
    return q


def chain_log(n_episodes: int, seed: int, *, episodes_per_unit: int = 5, max_steps: int = 30,
              behaviour_right: Sequence[float] = BEHAVIOUR_RIGHT) -> pa.Table:
    """Episodes of the behaviour on the chain; each unit plays several, a day apart; steps are a minute apart."""
    rng = np.random.default_rng(seed)
    contexts, actions, props, rewards, units, ts = [], [], [], [], [], []
    clock = 1_700_000_000_000_000
    for e in range(n_episodes):
        unit = f"unit-{e // episodes_per_unit}"
        clock += 86_400_000_000  # a day between episodes
        s = int(rng.integers(CHAIN_CELLS))
        for _ in range(max_steps):
            p_right = behaviour_right[s]
            a = int(rng.random() < p_right)
            contexts.append({"cell": f"c{s}"})
            actions.append(a)
            props.append(p_right if a == 1 else 1.0 - p_right)
            units.append(unit)
            ts.append(clock)
            clock += 60_000_000
            if a == 1 and s == CHAIN_CELLS - 1:
                rewards.append(GOAL)
                break
            if a == 0 and s == 0:
                rewards.append(LURE)
                break
            rewards.append(0.0)
            s = s + 1 if a == 1 else s - 1
    return interactions(contexts, actions, props, rewards, action_names=CHAIN_ACTIONS, unit_ids=units, ts_us=ts)


def chain_greedy(policy: BasePolicy) -> list[int]:
    """The policy's most likely action in each cell."""
    schema = chain_schema()
    batch = PolicyInput.from_contexts(schema, [{"cell": f"c{s}"} for s in range(CHAIN_CELLS)])
    probs = policy.act(batch, np.random.default_rng(0)).probabilities
    assert isinstance(probs, np.ndarray)
    return [int(i) for i in np.argmax(probs, axis=1)]
