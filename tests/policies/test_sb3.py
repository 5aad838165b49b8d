from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import stable_baselines3 as sb3
import torch
from torch.distributions import AffineTransform, Normal, TanhTransform, TransformedDistribution

from rlops.errors import ConfigError, ValidationError
from rlops.policies.base import PolicyInput
from rlops.policies.io import content_hash, load_policy, save_policy
from rlops.policies.sb3 import SB3Policy
from rlops.schema import Schema
from tests.policies.factories_ml import BOX_HIGH, BOX_LOW, TinyEnv, sb3_batch, sb3_model, sb3_schema

DISCRETE = sb3_schema(box=False)
BOX = sb3_schema(box=True)
LOW, HIGH = np.array(BOX_LOW), np.array(BOX_HIGH)
N = 300


def _batch(schema: Schema, n: int = N, seed: int = 0) -> PolicyInput:
    return sb3_batch(schema)(np.random.default_rng(seed), n)


def _obs(batch: PolicyInput) -> torch.Tensor:
    return torch.as_tensor(batch.x, dtype=torch.float32)


def _interior(action: np.ndarray) -> np.ndarray:
    """Rows whose action was not clipped (so the logged action is the sample itself)."""
    inside: np.ndarray = np.all((action > LOW) & (action < HIGH), axis=1)
    return inside


# ---- discrete -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("algo", ["PPO", "A2C"])
def test_actor_critic_probabilities_are_the_models_own(algo: str) -> None:
    model = sb3_model(algo, box=False)
    policy = SB3Policy(DISCRETE, model)
    batch = _batch(DISCRETE)
    result = policy.act(batch, np.random.default_rng(0))
    with torch.no_grad():
        expected = model.policy.get_distribution(_obs(batch)).distribution.probs.numpy()
    assert isinstance(result.probabilities, np.ndarray)
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(result.propensity, result.probabilities[np.arange(N), result.action])
    assert result.probabilities.max(axis=1).min() < 0.9  # the test model really is stochastic


def test_actions_follow_the_probabilities() -> None:
    policy = SB3Policy(DISCRETE, sb3_model("PPO", box=False))
    batch = PolicyInput.from_contexts(DISCRETE, [{"o0": 1.0, "o1": -2.0, "o2": 0.5}] * 4000)
    result = policy.act(batch, np.random.default_rng(1))
    assert isinstance(result.probabilities, np.ndarray)
    freq = np.bincount(result.action, minlength=3) / 4000
    np.testing.assert_allclose(freq, result.probabilities[0], atol=0.03)


def test_deterministic_discrete_is_the_argmax_with_propensity_one() -> None:
    model = sb3_model("PPO", box=False)
    policy = SB3Policy.wrap(DISCRETE, model, deterministic=True)
    batch = _batch(DISCRETE)
    result = policy.act(batch, np.random.default_rng(0))
    expected, _ = model.predict(batch.x.astype(np.float32), deterministic=True)
    np.testing.assert_array_equal(result.action, expected)
    np.testing.assert_array_equal(result.propensity, 1.0)
    np.testing.assert_array_equal(result.probabilities, np.eye(3)[expected])


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.3])
def test_dqn_is_epsilon_greedy_over_q_values(epsilon: float) -> None:
    model = sb3_model("DQN", box=False)
    policy = SB3Policy(DISCRETE, model, epsilon=epsilon)
    batch = _batch(DISCRETE)
    result = policy.act(batch, np.random.default_rng(0))
    greedy, _ = model.predict(batch.x.astype(np.float32), deterministic=True)
    assert isinstance(result.probabilities, np.ndarray)
    expected = np.full((N, 3), epsilon / 3)
    expected[np.arange(N), greedy] = 1.0 - epsilon + epsilon / 3
    np.testing.assert_array_equal(result.probabilities, expected)
    is_greedy = result.action == greedy
    np.testing.assert_array_equal(result.propensity[is_greedy], 1.0 - epsilon + epsilon / 3)
    np.testing.assert_array_equal(result.propensity[~is_greedy], epsilon / 3)
    if epsilon == 0.0:
        assert is_greedy.all()
    else:
        assert 0 < (~is_greedy).sum() < N * epsilon


def test_a_briefly_trained_model_is_served() -> None:
    model = sb3.PPO("MlpPolicy", TinyEnv(), n_steps=64, batch_size=32, n_epochs=1,
                    policy_kwargs={"net_arch": [16]}, seed=0, device="cpu")
    model.learn(64)
    result = SB3Policy(DISCRETE, model).act(_batch(DISCRETE, 10), np.random.default_rng(0))
    assert np.all(result.propensity > 0)


# ---- continuous ---------------------------------------------------------------------------------------------------

def test_ppo_box_density_is_the_gaussian_density_of_the_unclipped_sample() -> None:
    model = sb3_model("PPO", box=True)
    batch = _batch(BOX)
    result = SB3Policy(BOX, model).act(batch, np.random.default_rng(0))
    assert result.probabilities is None and result.action.shape == (N, 2)
    assert np.all((result.action >= LOW) & (result.action <= HIGH))
    inside = _interior(result.action)
    assert 20 < inside.sum() < N  # both clipped and unclipped rows occur
    with torch.no_grad():
        dist = model.policy.get_distribution(_obs(batch)).distribution
    normal = Normal(dist.mean.double(), dist.stddev.double())
    log_p = normal.log_prob(torch.as_tensor(result.action)).sum(dim=1).numpy()
    np.testing.assert_allclose(result.propensity[inside], np.exp(log_p[inside]), rtol=1e-6)
    # Clipped rows still carry the density of what was sampled before clipping: positive and finite.
    assert np.all(np.isfinite(result.propensity)) and np.all(result.propensity > 0)


def test_sac_density_matches_the_squashed_gaussian() -> None:
    model = sb3_model("SAC", box=True)
    batch = _batch(BOX)
    result = SB3Policy(BOX, model).act(batch, np.random.default_rng(0))
    assert np.all((result.action > LOW) & (result.action < HIGH))
    with torch.no_grad():
        mean, log_std, _ = model.actor.get_action_dist_params(_obs(batch))
    mean, std = mean.double(), log_std.double().exp()
    half = torch.as_tensor((HIGH - LOW) / 2)
    squashed = TransformedDistribution(Normal(mean, std), [TanhTransform(), AffineTransform(torch.as_tensor(LOW) +
                                                                                            half, half)])
    action = torch.as_tensor(result.action)
    independent = squashed.log_prob(action).sum(dim=1).exp().numpy()
    np.testing.assert_allclose(result.propensity, independent, rtol=1e-6)
    # SB3's own log-likelihood agrees to its precision (float32, and a 1e-6 guard inside log(1 - a^2) that
    # dominates where tanh saturates, hence only rows with |tanh(u)| < 0.99).
    unit = (action - (torch.as_tensor(LOW) + half)) / half
    model.actor.action_dist.proba_distribution(mean.float(), log_std.float())
    with torch.no_grad():
        sb3_log_p = model.actor.action_dist.log_prob(unit.float(), torch.atanh(unit).float()).double()
    sb3_density = (sb3_log_p - torch.log(half).sum()).exp().numpy()
    unsaturated = (unit.abs() < 0.99).all(dim=1).numpy()
    assert unsaturated.sum() > N // 2
    np.testing.assert_allclose(result.propensity[unsaturated], sb3_density[unsaturated], rtol=1e-3)


def test_td3_density_is_the_noise_density() -> None:
    model = sb3_model("TD3", box=True)
    batch = _batch(BOX)
    noise_std = 0.2
    result = SB3Policy(BOX, model, noise_std=noise_std).act(batch, np.random.default_rng(0))
    half = torch.as_tensor((HIGH - LOW) / 2)
    with torch.no_grad():
        mu = torch.as_tensor(LOW) + (model.actor(_obs(batch)).double() + 1.0) * half
    log_p = Normal(mu, noise_std * half).log_prob(torch.as_tensor(result.action))
    inside = _interior(result.action)
    assert inside.sum() > 20
    np.testing.assert_allclose(result.propensity[inside], log_p.sum(dim=1).exp().numpy()[inside], rtol=1e-6)
    assert np.all((result.action >= LOW) & (result.action <= HIGH))


@pytest.mark.parametrize("algo", ["PPO", "SAC", "TD3"])
def test_deterministic_box_is_the_models_mean_action(algo: str) -> None:
    model = sb3_model(algo, box=True)
    batch = _batch(BOX)
    result = SB3Policy(BOX, model, deterministic=True).act(batch, np.random.default_rng(0))
    expected, _ = model.predict(batch.x.astype(np.float32), deterministic=True)
    np.testing.assert_allclose(result.action, expected, atol=1e-6)
    np.testing.assert_array_equal(result.propensity, 1.0)


# ---- saving and reproducibility -----------------------------------------------------------------------------------

CASES: list[tuple[str, bool, dict[str, Any]]] = [
    ("PPO", False, {}),
    ("DQN", False, {"epsilon": 0.2}),
    ("PPO", True, {}),
    ("SAC", True, {}),
    ("TD3", True, {"noise_std": 0.3}),
    ("SAC", True, {"deterministic": True}),
    ("DDPG", True, {}),
    ("A2C", True, {}),
]


@pytest.mark.parametrize(("algo", "box", "settings"), CASES)
def test_save_load_round_trip(tmp_path: Path, algo: str, box: bool, settings: dict[str, Any]) -> None:
    schema = BOX if box else DISCRETE
    policy = SB3Policy(schema, sb3_model(algo, box), **settings)
    save_policy(policy, tmp_path / "p")
    assert (tmp_path / "p" / "model.zip").is_file()
    loaded = load_policy(tmp_path / "p")
    assert isinstance(loaded, SB3Policy)
    assert loaded.config() == policy.config() == {"algo": algo, "epsilon": 0.0, "noise_std": 0.1,
                                                  "deterministic": False, **settings}
    batch = _batch(schema, 50)
    a, b = policy.act(batch, np.random.default_rng(3)), loaded.act(batch, np.random.default_rng(3))
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.propensity, b.propensity)
    if a.probabilities is not None:
        np.testing.assert_array_equal(a.probabilities, b.probabilities)


@pytest.mark.parametrize(("algo", "box"), [("PPO", False), ("DQN", False), ("SAC", True), ("TD3", True)])
def test_saved_bytes_are_reproducible(tmp_path: Path, algo: str, box: bool) -> None:
    policy = SB3Policy(BOX if box else DISCRETE, sb3_model(algo, box))
    first = save_policy(policy, tmp_path / "a")
    assert content_hash(save_policy(policy, tmp_path / "b")) == content_hash(first)
    assert content_hash(save_policy(load_policy(first), tmp_path / "c")) == content_hash(first)
    with zipfile.ZipFile(first / "model.zip") as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_from_model_path(tmp_path: Path) -> None:
    sb3_model("SAC", True).save(tmp_path / "sac.zip")
    policy = SB3Policy.from_model_path(BOX, tmp_path / "sac.zip", algo="SAC", noise_std=0.5)
    assert policy.config() == {"algo": "SAC", "epsilon": 0.0, "noise_std": 0.5, "deterministic": False}
    with pytest.raises(ConfigError, match="not a file"):
        SB3Policy.from_model_path(BOX, tmp_path / "missing.zip", algo="SAC")
    with pytest.raises(ConfigError, match="'PPG' is not supported"):
        SB3Policy.from_model_path(BOX, tmp_path / "sac.zip", algo="PPG")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="cannot load"):
        SB3Policy.from_model_path(BOX, tmp_path / "junk.zip", algo="SAC")


@pytest.mark.parametrize(("algo", "box"), [("PPO", False), ("DQN", False), ("PPO", True), ("SAC", True),
                                           ("TD3", True)])
def test_same_seed_same_actions(algo: str, box: bool) -> None:
    schema = BOX if box else DISCRETE
    policy = SB3Policy(schema, sb3_model(algo, box), epsilon=0.5)
    batch = _batch(schema, 100)
    a, b, c = (policy.act(batch, np.random.default_rng(s)) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.propensity, b.propensity)
    assert not np.array_equal(a.action, c.action)


# ---- errors -------------------------------------------------------------------------------------------------------

def test_observation_size_mismatch_names_both_sizes() -> None:
    wide = Schema.model_validate({"features": [{"name": f"f{i}", "type": "float"} for i in range(4)],
                                  "actions": {"type": "discrete", "names": ["a", "b", "c"]}})
    with pytest.raises(ConfigError, match=r"encode to 4 columns but the model's observation size is 3"):
        SB3Policy(wide, sb3_model("PPO", False))


@pytest.mark.parametrize(("actions", "match"), [
    ({"type": "discrete", "names": ["a", "b"]}, "2 discrete actions"),
    ({"type": "box", "low": [-1.0, 0.0], "high": [1.0, 5.0]}, "bounds"),
    ({"type": "box", "low": [-1.0], "high": [1.0]}, "dimension 1"),
    ({"type": "candidates"}, "'candidates' is not supported"),
])
def test_action_space_mismatch_is_refused(actions: dict[str, Any], match: str) -> None:
    schema = Schema.model_validate({"features": [{"name": f"o{i}", "type": "float"} for i in range(3)],
                                    "actions": actions})
    box = actions["type"] == "box"
    with pytest.raises(ConfigError, match=match):
        SB3Policy(schema, sb3_model("PPO", box))


@pytest.mark.parametrize(("settings", "match"), [
    ({"epsilon": 1.5}, "epsilon"),
    ({"noise_std": 0.0}, "noise_std"),
    ({"noise_std": float("inf")}, "noise_std"),
])
def test_bad_settings_are_refused(settings: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SB3Policy(DISCRETE, sb3_model("DQN", False), **settings)


def test_unsupported_models_are_refused() -> None:
    with pytest.raises(ConfigError, match="not supported"):
        SB3Policy(DISCRETE, object())
    sde = sb3.PPO("MlpPolicy", TinyEnv(box=True), use_sde=True, n_steps=64, batch_size=32,
                  policy_kwargs={"net_arch": [8]}, seed=0, device="cpu")
    with pytest.raises(ConfigError, match="use_sde"):
        SB3Policy(BOX, sde)


@pytest.mark.parametrize(("algo", "box"), [("PPO", False), ("DQN", False), ("PPO", True), ("SAC", True),
                                           ("TD3", True)])
def test_empty_batch(algo: str, box: bool) -> None:
    schema = BOX if box else DISCRETE
    result = SB3Policy(schema, sb3_model(algo, box)).act(_batch(schema, 0), np.random.default_rng(0))
    assert result.propensity.shape == (0,)
    assert result.action.shape == ((0, 2) if box else (0,))
    assert result.probabilities is None if box else np.shape(result.probabilities) == (0, 3)


def test_bad_batch_width_is_refused() -> None:
    policy = SB3Policy(DISCRETE, sb3_model("PPO", False))
    with pytest.raises(ValidationError, match=r"batch.x: expected shape \(n, 3\)"):
        policy.act(PolicyInput(x=np.zeros((2, 5))), np.random.default_rng(0))
