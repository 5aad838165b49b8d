"""Explaining logged decisions: the version that made them, the default baselines, every kind of action space."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest

from rlops.engine import DeploymentSpec, Engine
from rlops.errors import NotFoundError, ValidationError
from rlops.events.records import Mode
from rlops.explain import BaselineSource, Method, PolicyOrigin, ScoreKind, explain_decision
from rlops.explain.attributions import baseline_from_profile
from rlops.monitoring.drift.profile import ReferenceProfile
from rlops.policies import LearningBatch, LinUCB, PolicyInput, SB3Policy, load_policy, save_policy
from rlops.registry import Registry
from rlops.scenarios import SyntheticBandit
from tests.explain.cases import mlp8, trained_sb3
from tests.policies.factories import BOX, CANDIDATES, mlp
from tests.policies.factories_ml import sb3_schema

WORLD = SyntheticBandit(seed=0)
REWARD = {"name": "click", "version": 1, "expression": "1 if clicked else 0", "fields": {"clicked": {}},
          "window": "1h", "missing": 0.0}
USER = {"age": 52.0, "device": "tablet", "returning": True, "activity": 0.8, "taste": [0.5, -0.2, 0.1, 0.9]}


def spec(name: str = "news", schema: Any = None, **overrides: Any) -> DeploymentSpec:
    data: dict[str, Any] = {"name": name, "schema": (schema or WORLD.schema).to_dict() if not isinstance(
        schema, dict) else schema, "reward": REWARD, "policy": {"kind": "uniform"}}
    data.update(overrides)
    return DeploymentSpec.from_dict(data)


def trained_linucb(tmp: Path, seed: int, alpha: float = 0.5, name: str = "linucb") -> Path:
    """A LinUCB with non-trivial state, saved as a folder."""
    policy = LinUCB(WORLD.schema, alpha=alpha, epsilon=0.1)
    rng = np.random.default_rng(seed)
    contexts = WORLD.sample_contexts(300, rng)
    batch = PolicyInput.from_contexts(WORLD.schema, contexts)
    action = rng.integers(0, 5, 300)
    reward = WORLD.sample_clicks(batch.x, action, rng).astype(float)
    policy.update(LearningBatch(batch, action, reward, np.full(300, 0.2)))
    return save_policy(policy, tmp / name)


def encode(context: dict[str, Any]) -> np.ndarray:
    return WORLD.schema.encode([WORLD.schema.validate_context(context)])[0]


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    e = Engine(tmp_path / "home")
    yield e  # type: ignore[misc]
    e.close()


def decide_some(engine: Engine, name: str = "news", n: int = 40, seed: int = 0) -> list[Any]:
    contexts = WORLD.sample_contexts(n, np.random.default_rng(seed))
    return engine.decide_batch(name, contexts, [f"u{i}" for i in range(n)])


def test_a_live_linucb_decision_is_explained_exactly_against_the_logged_mean(engine: Engine,
                                                                             tmp_path: Path) -> None:
    engine.apply(spec(policy={"path": str(trained_linucb(tmp_path, 1))}))
    decisions = decide_some(engine)
    d = engine.decide("news", USER, "me")
    ex = explain_decision(engine, d.decision_id)
    assert (ex.policy_version, ex.policy_origin, ex.mode) == ("news@r1", PolicyOrigin.LIVE, Mode.SERVED)
    assert ex.score_kind is ScoreKind.EXPECTED_REWARD and ex.method is Method.EXACT and ex.complete
    assert ex.action == d.action and ex.chosen is not None and ex.chosen.target == d.action
    assert ex.baseline_source is BaselineSource.LOGGED_CONTEXTS and ex.baseline_detail == "41 logged contexts"
    logged = [engine.decision(x.decision_id)["context"] for x in decisions] + [USER]
    mean = WORLD.schema.encode([WORLD.schema.validate_context(c) for c in logged]).mean(axis=0)
    np.testing.assert_allclose(list(ex.baseline.values()), mean, rtol=1e-12)
    policy = engine.policy("news")
    assert isinstance(policy, LinUCB)
    x, d_ = encode(USER), WORLD.schema.width
    names = list(ex.actions)
    a, r = names.index(d.action), names.index(ex.runner_up or "")
    theta = policy.model.theta
    np.testing.assert_allclose(ex.chosen.column_attributions, theta[a, :d_] * (x - mean), rtol=0, atol=1e-12)
    assert ex.advantage is not None and ex.advantage.target == f"{d.action} - {ex.runner_up}"
    np.testing.assert_allclose(ex.advantage.column_attributions, (theta[a, :d_] - theta[r, :d_]) * (x - mean),
                               rtol=0, atol=1e-12)
    others = np.delete(ex.scores, a)
    assert ex.scores[r] == others.max()
    np.testing.assert_allclose(ex.scores, policy.expected_rewards(PolicyInput(x=x[None, :]))[0],  # type: ignore[index]
                               rtol=1e-12)
    data = json.loads(json.dumps(ex.to_dict()))
    assert data["policy_version"] == "news@r1" and data["chosen"]["method"] == "exact"
    assert data["context"] == USER and set(data["scores"]) == set(names)


def test_an_old_decision_is_explained_by_the_version_that_made_it(engine: Engine, tmp_path: Path) -> None:
    old_folder, new_folder = trained_linucb(tmp_path, 1, alpha=0.5, name="a"), trained_linucb(tmp_path, 2, alpha=2.0,
                                                                                             name="b")
    engine.apply(spec(policy={"path": str(old_folder)}))
    old = engine.decide("news", USER, "me")
    changed = engine.apply(spec(policy={"path": str(new_folder)}))
    assert changed.policy_version == "news@r2"
    new = engine.decide("news", USER, "me")
    assert new.policy_version == "news@r2"
    x = PolicyInput(x=encode(USER)[None, :])
    by_hand = {"old": load_policy(old_folder).expected_rewards(x)[0],  # type: ignore[index]
               "new": load_policy(new_folder).expected_rewards(x)[0]}  # type: ignore[index]
    assert not np.allclose(by_hand["old"], by_hand["new"])
    explained_old = explain_decision(engine, old.decision_id)
    assert explained_old.policy_version == "news@r1" and explained_old.policy_origin is PolicyOrigin.REVISION
    np.testing.assert_allclose(explained_old.scores, by_hand["old"], rtol=1e-12)
    ucb = explain_decision(engine, old.decision_id, kind="ucb")
    mean, var = load_policy(old_folder).model.disjoint_moments(x.x)  # type: ignore[attr-defined]
    np.testing.assert_allclose(ucb.scores, (mean + 0.5 * np.sqrt(var))[0], rtol=1e-10)  # the old alpha, 0.5
    explained_new = explain_decision(engine, new.decision_id)
    assert explained_new.policy_origin is PolicyOrigin.LIVE
    np.testing.assert_allclose(explained_new.scores, by_hand["new"], rtol=1e-12)
    folder = engine.store.history("news")[0].arms[0]["folder"]
    shutil.rmtree(folder)
    with pytest.raises(NotFoundError, match="policy_version: the policy folder of 'news@r1'"):
        explain_decision(engine, old.decision_id)


def test_a_registered_version_uses_its_reference_profile_and_the_registry_once_it_left(engine: Engine,
                                                                                       tmp_path: Path) -> None:
    contexts = WORLD.sample_contexts(200, np.random.default_rng(3))
    profile = ReferenceProfile.build(WORLD.schema, contexts)
    with Registry(engine.home) as registry:
        version = registry.register("newsmodel", trained_linucb(tmp_path, 4), reference=profile)
    engine.apply(spec(policy={"version": f"newsmodel@{version.version}"}))
    d = engine.decide("news", USER, "me")
    ex = explain_decision(engine, d.decision_id)
    assert ex.policy_version == "newsmodel@1" and ex.policy_origin is PolicyOrigin.LIVE
    assert ex.baseline_source is BaselineSource.REFERENCE_PROFILE and ex.baseline_detail == "newsmodel@1"
    np.testing.assert_allclose(list(ex.baseline.values()), baseline_from_profile(profile, WORLD.schema))
    engine.apply(spec(policy={"kind": "uniform"}))
    engine.decide("news", USER, "me")  # the live revision now serves another policy
    later = explain_decision(engine, d.decision_id)
    assert later.policy_origin is PolicyOrigin.REGISTRY and later.baseline_source is BaselineSource.REFERENCE_PROFILE
    np.testing.assert_allclose(later.scores, ex.scores, rtol=1e-12)


def test_a_folder_deployment_finds_the_profile_registered_with_the_same_content(engine: Engine,
                                                                                 tmp_path: Path) -> None:
    folder = trained_linucb(tmp_path, 5)
    profile = ReferenceProfile.build(WORLD.schema, WORLD.sample_contexts(50, np.random.default_rng(1)))
    with Registry(engine.home) as registry:
        registry.register("same", folder, reference=profile)
    engine.apply(spec(policy={"path": str(folder)}))
    ex = explain_decision(engine, engine.decide("news", USER, "me").decision_id)
    assert ex.baseline_source is BaselineSource.REFERENCE_PROFILE and ex.baseline_detail == "same@1"


def test_shadow_and_no_consent_decisions_are_explained_with_what_made_them(engine: Engine, tmp_path: Path) -> None:
    engine.apply(spec(policy={"path": str(trained_linucb(tmp_path, 1))},
                      shadows=[{"name": "challenger", "policy": {"path": str(trained_linucb(tmp_path, 2,
                                                                                            name="c"))}}],
                      baseline={"kind": "uniform"}))
    engine.decide("news", USER, "me")
    without = engine.decide_batch("news", [USER], ["you"], consent=[False])[0]
    table = engine.log.read_decisions()
    shadow_id = table.filter(pc.equal(table["mode"], "shadow"))["decision_id"][0].as_py()
    shadow = explain_decision(engine, shadow_id)
    assert shadow.mode is Mode.SHADOW and shadow.policy_version == "news@r1-challenger"
    assert any("shadow decision" in n for n in shadow.notes) and shadow.complete
    base = explain_decision(engine, without.decision_id)
    assert base.policy_version == without.policy_version != "news@r1"
    assert any("no consent" in n for n in base.notes)
    assert base.score_kind is ScoreKind.PROBABILITY and base.chosen is not None
    assert base.chosen.method is Method.EXACT and not np.any(base.chosen.feature_attributions)


def test_pii_fields_are_ignored_and_a_given_baseline_is_used(engine: Engine, tmp_path: Path) -> None:
    schema = {**WORLD.schema.to_dict(), "pii": {"email": "keep", "name": "drop"}}
    engine.apply(spec(schema=schema, policy={"kind": "linucb", "params": {"alpha": 0.5}}))
    d = engine.decide("news", {**USER, "email": "me@example.com", "name": "Me"}, "me")
    assert "email" in engine.decision(d.decision_id)["context"]
    given = {**USER, "age": 30.0, "device": "mobile", "email": "other@example.com"}
    ex = explain_decision(engine, d.decision_id, baseline=given)
    assert "email" not in ex.context and "name" not in ex.context
    assert ex.baseline_source is BaselineSource.CONTEXT and ex.baseline_detail == ""
    np.testing.assert_array_equal(list(ex.baseline.values()), encode({k: v for k, v in given.items()
                                                                      if k != "email"}))
    with pytest.raises(ValidationError, match=r"baseline\.age: 300\.0 is above the maximum"):
        explain_decision(engine, d.decision_id, baseline={**USER, "age": 300.0})


def test_box_actions_explain_each_dimensions_mean_action(engine: Engine, tmp_path: Path) -> None:
    policy = mlp(BOX, 2, noise_std=0.05)
    engine.apply(spec(name="box", schema=BOX, policy={"path": str(save_policy(policy, tmp_path / "box"))}))
    for u in (-0.5, 0.2, 0.9):
        engine.decide("box", {"u": u}, "me")
    d = engine.decide("box", {"u": 0.7}, "me")
    ex = explain_decision(engine, d.decision_id)
    assert ex.chosen is None and ex.advantage is None and ex.runner_up is None
    assert ex.actions == ("action[0]", "action[1]") and ex.score_kind is ScoreKind.ACTION_MEAN
    assert [a.target for a in ex.dimensions] == ["action[0]", "action[1]"]
    assert all(a.method is Method.INTEGRATED_GRADIENTS and a.complete for a in ex.dimensions)
    np.testing.assert_allclose(ex.scores, policy.mean_action(np.array([[0.7]]))[0], rtol=1e-12)
    assert ex.baseline == {"u": pytest.approx((-0.5 + 0.2 + 0.9 + 0.7) / 4)}
    assert isinstance(ex.action, list) and ex.to_dict()["dimensions"][1]["target"] == "action[1]"


def test_candidate_decisions_are_explained_over_their_candidate_set(engine: Engine) -> None:
    engine.apply(spec(name="shop", schema=CANDIDATES, policy={"kind": "linucb", "params": {"alpha": 1.0}},
                      learning={"online": True}))
    rng = np.random.default_rng(0)
    for _ in range(30):
        cands = [{"id": f"item{j}", "features": {"price": float(rng.uniform(0, 10)), "kind": "ab"[j % 2]}}
                 for j in range(3)]
        made = engine.decide("shop", {"u": float(rng.uniform(-1, 1))}, "me", actions=cands)
        engine.report(made.decision_id, {"clicked": made.action == "item1"})
    assert engine.learn("shop", include_pending=True) == 30
    cands = [{"id": "x", "features": {"price": 2.0, "kind": "a"}}, {"id": "y", "features": {"price": 9.0,
                                                                                          "kind": "b"}}]
    d = engine.decide("shop", {"u": 0.4}, "me", actions=cands)
    ex = explain_decision(engine, d.decision_id)
    assert ex.actions == ("x", "y") and ex.method is Method.EXACT and ex.complete
    policy = engine.policy("shop")
    assert isinstance(policy, LinUCB)
    encoded = CANDIDATES.encode_candidates(CANDIDATES.validate_candidates(cands))
    _, mean, _ = policy.model.shared_moments(np.array([0.4]), encoded)
    np.testing.assert_allclose(ex.scores, mean, rtol=1e-10)
    assert any("online learner" in n and "(30 interactions learned" in n for n in ex.notes)


def test_an_sb3_ppo_decision_is_explained_with_integrated_gradients(engine: Engine, tmp_path: Path) -> None:
    schema = sb3_schema(box=False)
    folder = save_policy(SB3Policy(schema, trained_sb3("PPO")), tmp_path / "ppo")
    engine.apply(spec(name="ppo", schema=schema, policy={"path": str(folder)}))
    for i in range(5):
        engine.decide("ppo", {"o0": i - 2.0, "o1": 0.5 * i, "o2": -1.0}, "me")
    d = engine.decide("ppo", {"o0": 3.0, "o1": -4.0, "o2": 1.5}, "me")
    ex = explain_decision(engine, d.decision_id)
    assert ex.score_kind is ScoreKind.LOGIT and ex.method is Method.INTEGRATED_GRADIENTS and ex.complete
    assert ex.advantage is not None and ex.advantage.complete
    probs = ex.scores - ex.scores.max()
    probs = np.exp(probs) / np.exp(probs).sum()
    assert d.probabilities is not None
    np.testing.assert_allclose(probs, list(d.probabilities.values()), rtol=1e-5)
    sampled = explain_decision(engine, d.decision_id, method="shapley_sampling", budget=64)
    assert sampled.method is Method.SHAPLEY_SAMPLING and sampled.complete


def test_rules_and_mlps_deployed_by_kind_and_folder(engine: Engine, tmp_path: Path) -> None:
    engine.apply(spec(name="rules", policy={"kind": "rule", "params": {"target": "tests.policies.rules:by_age"}}))
    decide_some(engine, "rules", n=10)
    d = engine.decide("rules", USER, "me")
    ex = explain_decision(engine, d.decision_id)
    assert ex.method is Method.SHAPLEY_SAMPLING and ex.chosen is not None and ex.chosen.exhaustive
    assert any("nearest valid context" in n for n in ex.notes)
    engine.apply(spec(name="net", policy={"path": str(save_policy(mlp8(), tmp_path / "mlp8"))}))
    made = decide_some(engine, "net", n=10)
    net = explain_decision(engine, made[0].decision_id)
    assert net.score_kind is ScoreKind.SCORE and net.method is Method.INTEGRATED_GRADIENTS and net.complete


def test_bad_requests_are_clear_errors(engine: Engine) -> None:
    engine.apply(spec(policy={"kind": "linucb"}))
    d = engine.decide("news", USER, "me")
    with pytest.raises(NotFoundError, match="decision 'nope' does not exist"):
        explain_decision(engine, "nope")
    with pytest.raises(ValidationError, match="decision_id: expected a non-empty string"):
        explain_decision(engine, "")
    with pytest.raises(ValidationError, match="kind: policy kind 'linucb' has no 'logit' score"):
        explain_decision(engine, d.decision_id, kind="logit")
    with pytest.raises(ValidationError, match="method: 'best' is not a method"):
        explain_decision(engine, d.decision_id, method="best")
    with pytest.raises(ValidationError, match="method: the ucb score is not linear"):
        explain_decision(engine, d.decision_id, kind="ucb", method="exact")
