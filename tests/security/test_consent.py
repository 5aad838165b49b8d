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
        assert out["action"] == "food" and out["policy_version"].startswith("news@baseline-")
        bad = httpx.post(f"{url}/v1/deployments/news/decide", headers=key,
                         json={"unit_id": "u", "context": context, "consent": "maybe"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "consent"


@pytest.mark.parametrize("same_as", ["holdout", "production"])
def test_a_baseline_equal_to_another_arm_stays_apart_across_revisions(tmp_path: Path, same_as: str) -> None:
    """The baseline may be the very policy of the holdout or of production; after a new revision (which carries
    arms over) every arm still serves its own units and consenting units' decisions still count."""
    uniform = {"kind": "uniform"}
    extra: dict[str, object] = {"baseline": uniform}
    if same_as == "holdout":
        extra["holdout"] = {"policy": uniform, "fraction": 0.3}
    contexts = SyntheticBandit().sample_contexts(60, np.random.default_rng(4))
    units = [f"u{i}" for i in range(60)]
    with Engine(tmp_path / "home") as engine:
        spec = _spec(**extra)
        if same_as == "production":
            spec = spec.model_copy(update={"policy": spec.baseline})
        engine.apply(spec)
        engine.decide_batch("news", contexts, units)
        engine.apply(spec.model_copy(update={"seed": 1}))  # a new revision
    with Engine(tmp_path / "home") as engine:
        decisions = engine.decide_batch("news", contexts, units, consent=[i % 3 != 0 for i in range(60)])
        arms = engine.arms("news")
        assert len({a.policy_version for a in arms}) == len(arms)
        baseline = next(a.policy_version for a in arms if a.role.value == "baseline")
        assert all((d.policy_version == baseline) == (i % 3 == 0) for i, d in enumerate(decisions))
        logged = engine.log.read_decisions().to_pylist()[-60:]
        assert [r["consent"] for r in logged] == [i % 3 != 0 for i in range(60)]


def test_specs_without_the_new_fields_hash_as_before_the_upgrade() -> None:
    """A deployment file that uses none of baseline, outcome_guard, retention or PII fields hashes as it did before
    they existed (the value below was computed by the release before them), so applying it again after an upgrade
    makes no new revision."""
    spec = DeploymentSpec.from_dict({"name": "news", "schema": SyntheticBandit().schema.to_dict(), "reward": REWARD,
                                     "policy": {"kind": "linucb", "params": {"alpha": 0.5, "epsilon": 0.1}},
                                     "canary": {"policy": {"kind": "uniform"}, "fraction": 0.1}})
    assert spec.content_hash() == "070ecc5510d716e5c04ea5621636e8a37975bb1046a1f714dcd503d98ff9dfcb"
