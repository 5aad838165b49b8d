"""Consent: a unit without it gets the baseline policy's decision, and nothing ever learns from its data."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from rlops.engine import DeploymentSpec, Engine
from rlops.errors import ValidationError
from rlops.scenarios import SyntheticBandit
from rlops.service import ServiceSettings
from rlops.service.runner import BackgroundServer
from tests.keys import bearer, make_key

REWARD = {"name": "click", "version": 1, "expression": "1 if clicked else 0", "fields": {"clicked": {}},
          "window": "1h", "missing": 0.0}
FOOD = {"kind": "rule", "params": {"target": "tests.rollout.rules:always_food", "epsilon": 0.0}}


def _spec(**extra: object) -> DeploymentSpec:
    return DeploymentSpec.from_dict({"name": "news", "schema": SyntheticBandit().schema.to_dict(), "reward": REWARD,
                                     "policy": {"kind": "linucb", "params": {"alpha": 0.5, "epsilon": 0.1}},
                                     "all_outcomes_reported": True, "learning": {"online": True}, **extra})


def test_without_consent_the_baseline_decides_and_nothing_learns(tmp_path: Path) -> None:
    world = SyntheticBandit()
    contexts = world.sample_contexts(40, np.random.default_rng(1))
    with Engine(tmp_path / "home") as engine:
        engine.apply(_spec(baseline=FOOD, shadows=[{"name": "s", "policy": {"kind": "uniform"}}]))
        flags = [i % 2 == 0 for i in range(40)]
        decisions = engine.decide_batch("news", contexts, [f"u{i}" for i in range(40)], consent=flags)
        baseline = next(a for a in engine.arms("news") if a.role.value == "baseline")
        for d, consented in zip(decisions, flags, strict=True):
            assert (d.policy_version == baseline.policy_version) is not consented
            if not consented:
                assert d.action == "food"
        engine.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": True}} for d in decisions])
        table = engine.log.read_decisions()
        served = table.filter(table["mode"].to_numpy(zero_copy_only=False) == "served").to_pylist()
        assert sorted(r["consent"] for r in served) == [False] * 20 + [True] * 20
        shadows = [r for r in table.to_pylist() if r["mode"] == "shadow"]
        assert len(shadows) == 20 and all(r["consent"] for r in shadows)  # shadows skip units without consent
        joined = engine.interactions("news", include_pending=True)
        assert joined.interactions.num_rows == 20 and joined.stats.without_consent == 20
        assert set(joined.interactions["unit_id"].to_pylist()) == {f"u{i}" for i in range(0, 40, 2)}
        assert engine.learn("news", include_pending=True) == 20  # only the consenting units' interactions


def test_consent_needs_a_baseline_and_a_boolean(tmp_path: Path) -> None:
    world = SyntheticBandit()
    context = world.sample_contexts(1, np.random.default_rng(1))[0]
    with Engine(tmp_path / "home") as engine:
        engine.apply(_spec())
        with pytest.raises(ValidationError) as info:
            engine.decide("news", context, "u", consent=False)
        assert info.value.field == "consent" and "baseline" in info.value.rule
        with pytest.raises(ValidationError) as info:
            engine.decide_batch("news", [context, context], ["a", "b"], consent=[True, "no"])  # type: ignore[list-item]
        assert info.value.field == "consent[1]"
        assert engine.log.read_decisions().num_rows == 0  # refused requests store nothing


def test_consent_over_http(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Engine(home) as engine:
        engine.apply(_spec(baseline=FOOD))
    key = bearer(make_key(home, "decider"))
    context = SyntheticBandit().sample_contexts(1, np.random.default_rng(2))[0]
    with BackgroundServer(ServiceSettings(home=home, port=0)) as url:
        out = httpx.post(f"{url}/v1/deployments/news/decide", headers=key,
                         json={"unit_id": "u", "context": context, "consent": False}).json()
        assert out["action"] == "food" and out["policy_version"] == "news@r1-baseline"
        bad = httpx.post(f"{url}/v1/deployments/news/decide", headers=key,
                         json={"unit_id": "u", "context": context, "consent": "maybe"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "consent"
