"""The contexts a deployment's behaviour is computed over: its latest served decisions of consenting units, encoded
with the policy's schema; contexts that do not fit that schema are left out and counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlops.engine import DeploymentSpec, Engine
from rlops.errors import ConflictError
from rlops.explain.behaviour import explain_behaviour, live_behaviour_inputs, recent_contexts
from rlops.scenarios import SyntheticBandit
from rlops.schema import Schema
from tests.service.conftest import REWARD


def test_recent_contexts(tmp_path: Path) -> None:
    bandit = SyntheticBandit()
    schema = bandit.schema
    contexts = bandit.sample_contexts(30, np.random.default_rng(1))
    with Engine(tmp_path / "home", fsync=False) as engine:
        engine.apply(DeploymentSpec.from_dict({"name": "news", "schema": schema.to_dict(), "reward": REWARD,
                                               "policy": {"kind": "linucb"}, "baseline": {"kind": "uniform"}}))
        with pytest.raises(ConflictError, match="0 logged context"):
            live_behaviour_inputs(engine, "news")
        engine.decide_batch("news", contexts[:20], [f"u{i}" for i in range(20)])
        engine.decide_batch("news", contexts[20:], [f"n{i}" for i in range(10)], consent=[False] * 10)
        table = engine.log.read_decisions()
        inputs = live_behaviour_inputs(engine, "news")
        behaviour = explain_behaviour(inputs).to_dict()
    x, skipped = recent_contexts(table, schema, "news", limit=5)
    assert skipped == 0 and x.tolist() == schema.encode(contexts[15:20]).tolist()  # the latest 5 with consent
    assert recent_contexts(table, schema, "other")[0].shape == (0, schema.width)
    assert inputs.rows == 20 and behaviour["rows"] == 20 and behaviour["policy_version"] == "news@r1"
    assert behaviour["score_kind"] == "expected_reward" and len(behaviour["ranking"]) == 5

    # A schema with a feature the logged contexts lack (a required one): none of them fits.
    extended = Schema.model_validate({**schema.to_dict(), "features": [
        *schema.to_dict()["features"], {"name": "tenure", "type": "float", "min": 0, "max": 10}]})
    x, skipped = recent_contexts(table, extended, "news")
    assert x.shape == (0, extended.width) and skipped == 20
