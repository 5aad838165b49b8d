from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlops.errors import ConfigError, ValidationError
from rlops.policies.base import LearningBatch, PolicyInput
from rlops.policies.io import content_hash, load_policy, save_policy
from rlops.policies.vw import VWConfig, VWPolicy, vw_name
from rlops.schema import Schema
from tests.policies.factories_ml import (
    COLORS,
    SEGMENTS,
    VW_ADF_SCHEMA,
    VW_DISCRETE_SCHEMA,
    vw_adf_batch,
    vw_discrete_batch,
    warm_up,
)


def _segment_bandit(policy: VWPolicy, steps: int, batch_size: int = 50, seed: int = 0) -> np.ndarray:
    """Best action = index of the context's segment (reward Bernoulli 0.8 vs 0.2); returns every reward."""
    rng = np.random.default_rng(seed)
    rewards = []
    for _ in range(steps // batch_size):
        segment = rng.integers(0, 3, batch_size)
        contexts = [{"segment": SEGMENTS[s], "x": float(rng.uniform(-1, 1))} for s in segment]
        batch = PolicyInput.from_contexts(VW_DISCRETE_SCHEMA, contexts)
        result = policy.act(batch, rng)
        reward = (rng.random(batch_size) < np.where(result.action == segment, 0.8, 0.2)).astype(np.float64)
        policy.update(LearningBatch(batch, result.action, reward, result.propensity))
        rewards.append(reward)
    return np.concatenate(rewards)


def _same(a: np.ndarray | list[np.ndarray] | None, b: np.ndarray | list[np.ndarray] | None) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    assert isinstance(a, list) and isinstance(b, list)
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


# ---- exploration ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("epsilon", [0.05, 0.2, 0.5])
def test_epsilon_pmf_is_exact(epsilon: float) -> None:
    policy = VWPolicy(VW_DISCRETE_SCHEMA, epsilon=epsilon)
    _segment_bandit(policy, steps=500)
    batch = vw_discrete_batch(np.random.default_rng(1), 200)
    result = policy.act(batch, np.random.default_rng(2))
    probs = result.probabilities
    assert isinstance(probs, np.ndarray) and probs.shape == (200, 3)
    greedy = np.argmax(probs, axis=1)
    expected = np.full((200, 3), epsilon / 3)
    expected[np.arange(200), greedy] += 1.0 - epsilon
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(result.propensity, probs[np.arange(200), result.action])


def test_untrained_model_ties_share_the_greedy_mass() -> None:
    with VWPolicy(VW_DISCRETE_SCHEMA) as policy:
        result = policy.act(vw_discrete_batch(np.random.default_rng(0), 5), np.random.default_rng(0))
    assert isinstance(result.probabilities, np.ndarray)
    np.testing.assert_allclose(result.probabilities, 1 / 3, atol=1e-7)


@pytest.mark.parametrize("settings", [
    {"exploration": "squarecb", "gamma_scale": 100.0},
    {"exploration": "softmax", "softmax_lambda": 2.0},
    {"exploration": "bag", "bag_size": 4, "epsilon": 0.1},
    {"exploration": "cover", "cover_size": 2, "epsilon": 0.1},
    {"exploration": "epsilon", "cb_type": "ips", "interactions": False},
])
def test_every_exploration_gives_a_valid_pmf(settings: dict[str, Any]) -> None:
    policy = warm_up(VWPolicy(VW_DISCRETE_SCHEMA, **settings), vw_discrete_batch)
    batch = vw_discrete_batch(np.random.default_rng(3), 100)
    result = policy.act(batch, np.random.default_rng(4))
    probs = result.probabilities
    assert isinstance(probs, np.ndarray)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(probs > 0)
    np.testing.assert_array_equal(result.propensity, probs[np.arange(100), result.action])
    assert policy.config() == VWConfig(**settings).model_dump(mode="json")


def test_zero_probability_actions_are_never_sampled() -> None:
    # bag without epsilon gives zero mass to actions no bootstrap picks.
    policy = VWPolicy(VW_DISCRETE_SCHEMA, exploration="bag", bag_size=2, epsilon=0.0)
    _segment_bandit(policy, steps=1000)
    result = policy.act(vw_discrete_batch(np.random.default_rng(5), 300), np.random.default_rng(6))
    probs = result.probabilities
    assert isinstance(probs, np.ndarray)
    assert (probs == 0).any()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(result.propensity > 0)


# ---- learning ---------------------------------------------------------------------------------------------------

def test_learns_a_contextual_bandit() -> None:
    # Uniform random earns 0.8/3 + 0.2*2/3 = 0.4 on average; the best policy with epsilon 0.2 earns
    # 0.8 * (0.8 + 0.2/3) + 0.2 * (0.2 * 2/3) = 0.72. After 2000 of 3000 steps the last 1000 must average > 0.6.
    policy = VWPolicy(VW_DISCRETE_SCHEMA, epsilon=0.2)
    rewards = _segment_bandit(policy, steps=3000)
    assert rewards[-1000:].mean() > 0.6
    contexts = [{"segment": s, "x": 0.0} for s in SEGMENTS]
    result = policy.act(PolicyInput.from_contexts(VW_DISCRETE_SCHEMA, contexts), np.random.default_rng(0))
    assert isinstance(result.probabilities, np.ndarray)
    np.testing.assert_array_equal(np.argmax(result.probabilities, axis=1), [0, 1, 2])


def test_candidate_sets_of_varying_size_learn_from_candidate_features() -> None:
    policy = VWPolicy(VW_ADF_SCHEMA, epsilon=0.2)
    rng = np.random.default_rng(0)
    for _ in range(40):
        batch = vw_adf_batch(rng, 50)
        result = policy.act(batch, rng)
        assert isinstance(result.probabilities, list) and batch.candidates is not None
        for cands, probs, a in zip(batch.candidates, result.probabilities, result.action, strict=True):
            assert probs.shape == (cands.shape[0],)
            assert abs(probs.sum() - 1.0) < 1e-12
            assert 0 <= a < cands.shape[0]
        # Reward 1 for a red candidate (the "color=red" column), 0 otherwise.
        reward = np.array([c[a, 1] for c, a in zip(batch.candidates, result.action, strict=True)])
        policy.update(LearningBatch(batch, result.action, reward, result.propensity))
    contexts = [{"x": 0.3}] * 3
    candidates = [
        [{"id": "a", "features": {"price": 1.0, "color": "blue"}},
         {"id": "b", "features": {"price": 2.0, "color": "red"}}],
        [{"id": f"i{j}", "features": {"price": 1.0, "color": COLORS[j % 3]}} for j in range(7)],
        [{"id": "only", "features": {"price": 5.0, "color": "green"}}],
    ]
    result = policy.act(PolicyInput.from_contexts(VW_ADF_SCHEMA, contexts, candidates), np.random.default_rng(1))
    final = result.probabilities
    assert isinstance(final, list) and [len(p) for p in final] == [2, 7, 1]
    np.testing.assert_allclose(final[0], [0.1, 0.9], atol=1e-6)
    assert np.argmax(final[1]) % 3 == 0  # a red candidate is greedy
    np.testing.assert_allclose(final[2], [1.0])
    assert result.propensity[2] == 1.0


def test_feature_names_are_escaped_without_collisions() -> None:
    names = ["a b", "a_b", "a:b", "a|b", "a%20b", "a\tb"]
    assert len({vw_name(n) for n in names}) == len(names)
    assert all(not set(vw_name(n)) & set(" \t:|") for n in names)
    schema = Schema.model_validate({
        "features": [{"name": "c", "type": "categorical", "vocabulary": ["x y", "x:y"], "unknown": "other"}],
        "actions": {"type": "discrete", "names": ["go left", "go|right"]},
    })
    with VWPolicy(schema) as policy:
        lines = policy.examples(PolicyInput.from_contexts(schema, [{"c": "x:y"}, {"c": "zzz"}]))
    assert lines[0] == ["shared |context c=x%3Ay:1", "|action go%20left", "|action go%7Cright"]
    assert lines[1][0] == "shared |context c=<other>:1"


# ---- saving -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["discrete_epsilon", "discrete_bag", "adf_squarecb"])
def test_save_load_round_trip(tmp_path: Path, name: str) -> None:
    if name.startswith("adf"):
        policy, make_batch = VWPolicy(VW_ADF_SCHEMA, exploration="squarecb"), vw_adf_batch
    else:
        exploration = name.removeprefix("discrete_")
        policy, make_batch = VWPolicy(VW_DISCRETE_SCHEMA, exploration=exploration), vw_discrete_batch  # type: ignore[assignment]
    warm_up(policy, make_batch)
    save_policy(policy, tmp_path / "p")
    loaded = load_policy(tmp_path / "p")
    assert isinstance(loaded, VWPolicy) and loaded.config() == policy.config()
    batch = make_batch(np.random.default_rng(7), 64)
    before, after = policy.act(batch, np.random.default_rng(8)), loaded.act(batch, np.random.default_rng(8))
    np.testing.assert_array_equal(before.action, after.action)
    np.testing.assert_array_equal(before.propensity, after.propensity)
    assert _same(before.probabilities, after.probabilities)
    # Learning continues identically (the saved model carries VW's own random state, used by bag).
    for p in (policy, loaded):
        p.update(LearningBatch(batch, before.action, np.linspace(-1, 1, 64), before.propensity))
    assert _same(policy.act(batch, np.random.default_rng(9)).probabilities,
                 loaded.act(batch, np.random.default_rng(9)).probabilities)
    policy.close()
    loaded.close()


@pytest.mark.parametrize("exploration", ["epsilon", "squarecb", "softmax", "bag", "cover"])
def test_acting_never_changes_the_saved_model(tmp_path: Path, exploration: str) -> None:
    policy = warm_up(VWPolicy(VW_DISCRETE_SCHEMA, exploration=exploration), vw_discrete_batch)
    first = content_hash(save_policy(policy, tmp_path / "a"))
    policy.act(vw_discrete_batch(np.random.default_rng(0), 500), np.random.default_rng(0))
    assert content_hash(save_policy(policy, tmp_path / "b")) == first
    loaded = load_policy(tmp_path / "a")
    loaded.act(vw_discrete_batch(np.random.default_rng(1), 50), np.random.default_rng(1))
    assert content_hash(save_policy(loaded, tmp_path / "c")) == first


def test_same_seed_same_actions() -> None:
    policy = warm_up(VWPolicy(VW_ADF_SCHEMA), vw_adf_batch)
    batch = vw_adf_batch(np.random.default_rng(0), 100)
    a, b = policy.act(batch, np.random.default_rng(3)), policy.act(batch, np.random.default_rng(3))
    np.testing.assert_array_equal(a.action, b.action)
    c = policy.act(batch, np.random.default_rng(4))
    assert not np.array_equal(a.action, c.action)


# ---- errors -----------------------------------------------------------------------------------------------------

def test_box_schema_is_refused() -> None:
    schema = Schema.model_validate({"features": [{"name": "x", "type": "float"}],
                                    "actions": {"type": "box", "low": [0.0], "high": [1.0]}})
    with pytest.raises(ConfigError, match="box"):
        VWPolicy(schema)


@pytest.mark.parametrize(("settings", "match"), [
    ({"epsilon": 0.0}, "epsilon must be > 0"),
    ({"epsilon": 1.5}, "config.epsilon"),
    ({"exploration": "greedy"}, "config.exploration"),
    ({"gamma": 1.0}, "config.gamma"),
])
def test_bad_settings_are_refused(settings: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        VWPolicy(VW_DISCRETE_SCHEMA, **settings)


def test_config_and_keywords_are_exclusive() -> None:
    with pytest.raises(ConfigError, match="not both"):
        VWPolicy(VW_DISCRETE_SCHEMA, VWConfig(), epsilon=0.1)


def test_missing_model_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model_path"):
        VWPolicy(VW_DISCRETE_SCHEMA, model_path=tmp_path / "nope.vw")


def test_bad_batches_are_refused() -> None:
    policy = VWPolicy(VW_ADF_SCHEMA)
    batch = vw_adf_batch(np.random.default_rng(0), 4)
    with pytest.raises(ValidationError, match=r"batch\.candidates"):
        policy.act(PolicyInput(x=batch.x), np.random.default_rng(0))
    with pytest.raises(ValidationError, match=r"batch\.x"):
        policy.act(PolicyInput(x=np.zeros((4, 7)), candidates=batch.candidates), np.random.default_rng(0))
    result = policy.act(batch, np.random.default_rng(0))
    ok = dict(action=result.action, reward=np.ones(4), propensity=result.propensity)
    with pytest.raises(ValidationError, match=r"batch.propensity\[0\]"):
        policy.update(LearningBatch(batch, **{**ok, "propensity": np.zeros(4)}))
    with pytest.raises(ValidationError, match=r"batch.action\[0\]"):
        policy.update(LearningBatch(batch, **{**ok, "action": np.full(4, 99)}))
    with pytest.raises(ValidationError, match=r"batch.reward\[0\]"):
        policy.update(LearningBatch(batch, **{**ok, "reward": np.full(4, np.nan)}))
    with pytest.raises(ValidationError, match=r"batch\.weight"):
        policy.update(LearningBatch(batch, **ok, weight=np.full(4, 2.0)))
    with pytest.raises(ValidationError, match=r"batch\.reward"):
        policy.update(LearningBatch(batch, **{**ok, "reward": np.ones(3)}))
    policy.update(LearningBatch(batch, **ok, weight=np.ones(4)))
    policy.close()
    with pytest.raises(ValidationError, match="closed"):
        policy.act(batch, np.random.default_rng(0))


def test_bad_contexts_are_refused_before_the_policy() -> None:
    with pytest.raises(ValidationError, match="segment"):
        PolicyInput.from_contexts(VW_DISCRETE_SCHEMA, [{"segment": "west", "x": 0.0}])
