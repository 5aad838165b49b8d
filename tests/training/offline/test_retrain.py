"""``retrain_from_table``: the learner ``auto`` picks, and candidates that beat the policy that logged the data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from rlops.engine import DeploymentSpec, Engine
from rlops.errors import ValidationError
from rlops.policies import LinUCB, PolicyInput, UniformRandom, save_policy
from rlops.scenarios import SyntheticBandit
from rlops.schema import Schema
from rlops.training.offline import (
    BanditDiagnostics,
    BCConfig,
    CQLConfig,
    MLPPolicy,
    RetrainMethod,
    SequentialDiagnostics,
    retrain_from_table,
)
from tests.training.offline.logs import (
    CHAIN_GAMMA,
    bandit_log,
    chain_greedy,
    chain_log,
    chain_schema,
    interactions,
    online_value,
)

WORLD = SyntheticBandit(seed=0)
REWARD = {"name": "click", "version": 1, "expression": "1 if clicked else 0", "fields": {"clicked": {}},
          "window": "1h", "missing": 0.0}


def _spec(policy: dict[str, Any]) -> DeploymentSpec:
    return DeploymentSpec.from_dict({"name": "news", "schema": WORLD.schema.to_dict(), "reward": REWARD,
                                     "policy": policy, "seed": 1})


def _serve(engine: Engine, n: int, seed: int) -> tuple[float, pa.Table]:
    """Serve ``n`` fresh users, report their sampled clicks; return the true mean click rate of the served actions."""
    rng = np.random.default_rng(seed)
    users = WORLD.sample_contexts(n, rng)
    decisions = engine.decide_batch("news", users, [f"user-{seed}-{i}" for i in range(n)])
    x = PolicyInput.from_contexts(WORLD.schema, users).x
    chosen = np.array([d.action_index for d in decisions])
    clicks = WORLD.sample_clicks(x, chosen, rng)
    engine.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": bool(c)}}
                         for d, c in zip(decisions, clicks, strict=True)])
    return WORLD.value_of(x, chosen), engine.interactions("news", include_pending=True).interactions


def test_retrain_through_the_engine_beats_the_logging_policy_on_the_synthetic_bandit(tmp_path: Path) -> None:
    """The loop: serve uniform, join the clicks, retrain, serve the candidate: it earns far more clicks."""
    with Engine(tmp_path / "home", fsync=False) as engine:
        engine.apply(_spec({"kind": "uniform"}))
        logging_value, log = _serve(engine, 4000, seed=1)
        result = retrain_from_table(log, WORLD.schema, seed=0)
        assert result.method is RetrainMethod.BANDIT_DR
        assert "every episode is one step" in result.reason  # each user was seen once
        assert isinstance(result.diagnostics, BanditDiagnostics) and result.diagnostics.n_rows == 4000
        folder = save_policy(result.policy, tmp_path / "candidate")
        engine.apply(_spec({"path": str(folder)}))
        candidate_value, _ = _serve(engine, 4000, seed=2)
    optimum = WORLD.optimal_value(PolicyInput.from_contexts(
        WORLD.schema, WORLD.sample_contexts(4000, np.random.default_rng(2))).x)
    # measured: uniform logging 0.29, candidate 0.54, optimum 0.56
    assert candidate_value > logging_value + 0.2
    assert candidate_value > 0.93 * optimum


def test_auto_picks_cql_for_sequential_logs_and_finds_the_optimum() -> None:
    log = chain_log(400, seed=0)
    result = retrain_from_table(log, chain_schema(), cql=CQLConfig(gamma=CHAIN_GAMMA, steps=2000), seed=0)
    assert result.method is RetrainMethod.CQL
    assert "sequential" in result.reason
    assert isinstance(result.diagnostics, SequentialDiagnostics)
    assert result.diagnostics.n_episodes == 400 and result.diagnostics.n_rows == log.num_rows
    assert chain_greedy(result.policy) == [1, 1, 1, 1]
    # the same log with every decision its own episode (a gap shorter than the minute between steps) is a bandit
    short = retrain_from_table(log, chain_schema(), gap_seconds=10, seed=0)
    assert short.method is RetrainMethod.BANDIT_DR


def test_auto_clones_box_actions_and_kinds_can_be_forced() -> None:
    box = Schema.model_validate({"features": [{"name": "u", "type": "float", "min": -1, "max": 1}],
                                 "actions": {"type": "box", "low": [-1], "high": [1]}})
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, 300)
    log = interactions([{"u": float(v)} for v in u], [[float(0.5 * v)] for v in u], [1.0] * 300, [0.0] * 300,
                       unit_ids=["a"] * 300, ts_us=[1_700_000_000_000_000 + i * 60_000_000 for i in range(300)])
    result = retrain_from_table(log, box, bc=BCConfig(steps=500), seed=0)
    assert result.method is RetrainMethod.BC and isinstance(result.policy, MLPPolicy)
    assert "box" in result.reason
    chain = chain_log(50, seed=2)
    forced = retrain_from_table(chain, chain_schema(), kind="bc", seed=0)
    assert forced.method is RetrainMethod.BC and forced.reason == "kind 'bc' was asked for"
    with pytest.raises(ValidationError, match=r"^kind: 'cql' needs fixed discrete actions"):
        retrain_from_table(log, box, kind="cql")
    with pytest.raises(ValidationError, match=r"^kind: expected one of"):
        retrain_from_table(log, box, kind="ppo")


def test_fine_tuning_parents() -> None:
    log = bandit_log(WORLD, UniformRandom(WORLD.schema), 2000, seed=3)
    tuned = retrain_from_table(log, WORLD.schema, kind="bandit", method="dm", parent=LinUCB(WORLD.schema, epsilon=0.1))
    assert tuned.policy.kind == "linucb" and tuned.method is RetrainMethod.BANDIT_DM
    assert online_value(WORLD, tuned.policy) > online_value(WORLD, UniformRandom(WORLD.schema)) + 0.15
    chain = chain_log(100, seed=4)
    with pytest.raises(ValidationError, match=r"^parent: bc and cql fine-tune an 'mlp' parent"):
        retrain_from_table(chain, chain_schema(), kind="cql", parent=LinUCB(chain_schema()))
    parent = retrain_from_table(chain, chain_schema(), kind="cql", cql=CQLConfig(steps=50)).policy
    child = retrain_from_table(chain, chain_schema(), kind="cql", cql=CQLConfig(steps=50), parent=parent)
    assert isinstance(child.diagnostics, SequentialDiagnostics) and child.diagnostics.warm_start
