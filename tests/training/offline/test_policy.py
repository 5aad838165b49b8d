"""The ``mlp`` policy kind: honest propensities, exact save/load, a numpy forward pass equal to torch's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import norm

from rlops.errors import ConfigError
from rlops.policies import PolicyInput, kinds, load_policy, save_policy
from rlops.schema import Schema
from rlops.training.offline import Head, MLPPolicy
from rlops.training.offline.networks import build, to_arrays

DISCRETE = Schema.model_validate({
    "features": [{"name": "u", "type": "float", "min": -1, "max": 1},
                 {"name": "c", "type": "categorical", "vocabulary": ["p", "q"]}],
    "actions": {"type": "discrete", "names": ["a", "b", "c"]},
})
BOX = Schema.model_validate({
    "features": [{"name": "u", "type": "float", "min": -1, "max": 1}],
    "actions": {"type": "box", "low": [-1, 0], "high": [1, 4]},
})


def _policy(schema: Schema, n_out: int, seed: int = 0, **settings: object) -> MLPPolicy:
    weights, biases = to_arrays(build(schema.width, n_out, (8, 8), seed))
    return MLPPolicy(schema, weights, biases, x_mean=np.full(schema.width, 0.1), x_scale=np.full(schema.width, 2.0),
                     **settings)  # type: ignore[arg-type]


def _batch(schema: Schema, n: int, seed: int) -> PolicyInput:
    rng = np.random.default_rng(seed)
    if schema.is_continuous:
        return PolicyInput.from_contexts(schema, [{"u": float(v)} for v in rng.uniform(-1, 1, n)])
    return PolicyInput.from_contexts(schema, [{"u": float(v), "c": "pq"[int(v > 0)]} for v in rng.uniform(-1, 1, n)])


def test_the_kind_is_registered() -> None:
    assert kinds()["mlp"] is MLPPolicy


def test_numpy_forward_pass_equals_torch() -> None:
    net = build(DISCRETE.width, 3, (8, 8), seed=1)
    weights, biases = to_arrays(net)
    policy = MLPPolicy(DISCRETE, weights, biases)
    x = _batch(DISCRETE, 20, 0).x
    with torch.no_grad():
        expected = net(torch.as_tensor(x, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(policy.outputs(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("head", [Head.GREEDY, Head.SOFTMAX])
def test_discrete_propensities_are_the_probabilities_used(head: Head) -> None:
    policy = _policy(DISCRETE, 3, head=head, epsilon=0.2, min_probability=0.05, temperature=0.5)
    batch = _batch(DISCRETE, 64, 1)
    result = policy.act(batch, np.random.default_rng(2))
    probs = result.probabilities
    assert isinstance(probs, np.ndarray) and probs.shape == (64, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(result.propensity, probs[np.arange(64), result.action])
    floor = 0.2 / 3 if head is Head.GREEDY else 0.05
    assert probs.min() >= floor - 1e-12
    if head is Head.GREEDY:
        greedy = np.argmax(policy.outputs(batch.x), axis=1)
        np.testing.assert_allclose(probs[np.arange(64), greedy], 1 - 0.2 + 0.2 / 3)
    # frequencies over many draws on one context match the stated distribution
    one = PolicyInput(x=np.repeat(batch.x[:1], 4000, axis=0))
    draws = policy.act(one, np.random.default_rng(3))
    observed = np.bincount(draws.action, minlength=3) / 4000
    assert np.all(np.abs(observed - probs[0]) < 4.5 * np.sqrt(probs[0] * (1 - probs[0]) / 4000) + 1e-9)


def test_box_propensity_is_the_gaussian_density_of_the_unclipped_sample() -> None:
    policy = _policy(BOX, 2, noise_std=0.2)
    batch = _batch(BOX, 50, 4)
    result = policy.act(batch, np.random.default_rng(5))
    mean = policy.mean_action(batch.x)
    assert np.all(mean >= [-1, 0]) and np.all(mean <= [1, 4])
    z = np.random.default_rng(5).standard_normal((50, 2))
    std = 0.2 * np.array([1.0, 2.0])
    expected = norm.pdf(z[:, 0] * std[0], scale=std[0]) * norm.pdf(z[:, 1] * std[1], scale=std[1])
    np.testing.assert_allclose(result.propensity, expected, rtol=1e-10)
    np.testing.assert_allclose(result.action, np.clip(mean + std * z, [-1, 0], [1, 4]))
    still = policy.with_exploration(noise_std=0.0).act(batch, np.random.default_rng(5))
    np.testing.assert_allclose(still.action, mean)
    np.testing.assert_array_equal(still.propensity, 1.0)


@pytest.mark.parametrize("schema", [DISCRETE, BOX], ids=["discrete", "box"])
def test_save_and_load_round_trip_exactly(schema: Schema, tmp_path: Path) -> None:
    n_out = 2 if schema.is_continuous else 3
    policy = _policy(schema, n_out, head=Head.SOFTMAX, temperature=0.7, noise_std=0.3, epsilon=0.1)
    loaded = load_policy(save_policy(policy, tmp_path / "p"))
    assert isinstance(loaded, MLPPolicy) and loaded.config() == policy.config()
    batch = _batch(schema, 30, 6)
    a, b = policy.act(batch, np.random.default_rng(7)), loaded.act(batch, np.random.default_rng(7))
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.propensity, b.propensity)


def test_misfit_networks_and_settings_are_refused() -> None:
    weights, biases = to_arrays(build(DISCRETE.width, 2, (4,), 0))
    with pytest.raises(ConfigError, match="2 outputs but the schema's action space needs 3"):
        MLPPolicy(DISCRETE, weights, biases)
    weights, biases = to_arrays(build(5, 3, (4,), 0))
    with pytest.raises(ConfigError, match=r"layer 0 has weights \(4, 5\)"):
        MLPPolicy(DISCRETE, weights, biases)
    weights, biases = to_arrays(build(DISCRETE.width, 3, (4,), 0))
    with pytest.raises(ConfigError, match="epsilon"):
        MLPPolicy(DISCRETE, weights, biases, epsilon=1.5)
    with pytest.raises(ConfigError, match="x_scale"):
        MLPPolicy(DISCRETE, weights, biases, x_scale=np.zeros(DISCRETE.width))
    candidates = Schema.model_validate({"features": [{"name": "u", "type": "float"}],
                                        "actions": {"type": "candidates", "features": []}})
    with pytest.raises(ConfigError, match="candidates"):
        MLPPolicy(candidates, weights, biases)
