"""The edge runtime decides as the policy it was exported from: same probabilities, greedy actions and draws.

Every case runs the policy (torch / numpy) and its export (onnxruntime + rlops.edge) on the same random valid
contexts with generators in the same state, and compares what they return row by row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rlops.edge import EdgePolicy
from rlops.edge.rules import LOG_STD, MEAN, STD
from rlops.export import export_policy
from rlops.policies import BasePolicy, PolicyInput, SB3Policy
from rlops.policies.preprocessed import unwrap
from tests.export.cases import CASES, contexts

#: The cases the issue names run on 10,000 contexts; the others on 2,000 to keep the suite fast.
NAMED = ["sb3_ppo_discrete", "sb3_sac", "linucb", "softmax_ridge", "epsilon_greedy_linear"]
N_NAMED, N_OTHER = 10_000, 2_000
TOLERANCE = 1e-5


def _run(name: str, tmp_path: Path) -> tuple[BasePolicy, EdgePolicy, list[dict[str, Any]], Any, Any]:
    policy = CASES[name]()
    result = export_policy(policy, tmp_path / f"{name}.onnx", policy_version="test@r1")
    edge = EdgePolicy.load(result.model_path)
    batch = contexts(N_NAMED if name in NAMED else N_OTHER, seed=42)
    expected = policy.act(PolicyInput.from_contexts(policy.schema, batch), np.random.default_rng(7))
    got = edge.decide_batch(batch, rng=np.random.default_rng(7))
    return policy, edge, batch, expected, got


DISCRETE_CASES = [n for n in CASES if not n.startswith(("sb3_sac", "sb3_td3", "sb3_ppo_box", "sb3_ddpg",
                                                          "sb3_a2c_box", "sb3_sac_preprocessed"))]
BOX_CASES = [n for n in CASES if n not in DISCRETE_CASES]


@pytest.mark.parametrize("name", DISCRETE_CASES)
def test_discrete_probabilities_greedy_actions_and_draws_agree(name: str, tmp_path: Path) -> None:
    _, _, _, expected, got = _run(name, tmp_path)
    assert got.probabilities.shape == expected.probabilities.shape
    assert np.abs(got.probabilities - expected.probabilities).max() <= TOLERANCE
    assert np.abs(got.propensity - expected.propensity).max() <= TOLERANCE
    # The greedy action, wherever the policy's best action is clear of the runner-up (float32 networks may order
    # near-ties differently); most rows must count, or the check would be empty.
    top2 = np.sort(expected.probabilities, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > TOLERANCE
    assert clear.mean() > 0.5 or name == "uniform"
    np.testing.assert_array_equal(np.argmax(got.probabilities, axis=1)[clear],
                                  np.argmax(expected.probabilities, axis=1)[clear])
    if name != "uniform":  # UniformRandom draws integers; its export samples from 1/K: same law, other draws
        assert (got.action_index == expected.action).mean() >= 0.999


def _network_outputs(policy: SB3Policy, x: np.ndarray) -> dict[str, np.ndarray]:
    obs = torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        if policy.algo == "SAC":
            mean, log_std, _ = policy.model.actor.get_action_dist_params(obs)
            return {MEAN: mean.numpy(), LOG_STD: log_std.numpy()}
        if policy.algo in ("PPO", "A2C"):
            distribution = policy.model.policy.get_distribution(obs).distribution
            return {MEAN: distribution.mean.numpy(), STD: distribution.stddev.numpy()}
        return {MEAN: policy.model.actor(obs).numpy()}


@pytest.mark.parametrize("name", BOX_CASES)
def test_box_network_outputs_actions_and_densities_agree(name: str, tmp_path: Path) -> None:
    policy, edge, batch, expected, got = _run(name, tmp_path)
    network, fitted = unwrap(policy)
    assert isinstance(network, SB3Policy)
    assert got.probabilities is None and (got.action_index == -1).all()
    # What the graph computes: the Gaussian's parameters (or the actor's action) the rule samples from.
    raw, _ = edge._encoder.encode_rows(batch)
    outputs = edge.outputs(raw)
    x = PolicyInput.from_contexts(policy.schema, batch).x
    for key, value in _network_outputs(network, fitted.transform(x) if fitted else x).items():
        if key in outputs:
            assert np.abs(outputs[key] - value).max() <= TOLERANCE, key
    # Deterministic: the mean action; stochastic: the same draws give the same actions and densities.
    assert np.abs(got.action_vectors - expected.action).max() <= TOLERANCE
    np.testing.assert_allclose(got.propensity, expected.propensity, rtol=1e-4)
    if network.deterministic:
        assert (got.propensity == 1.0).all()


def test_single_decisions_agree_with_the_policy_one_row_at_a_time(tmp_path: Path) -> None:
    policy = CASES["softmax_ridge"]()
    edge = EdgePolicy.load(export_policy(policy, tmp_path / "p.onnx", policy_version="t@r1").model_path)
    for i, context in enumerate(contexts(50, seed=3)):
        expected = policy.act(PolicyInput.from_contexts(policy.schema, [context]), np.random.default_rng(i))
        got = edge.decide(context, rng=i)
        assert got.action == policy.schema.action_names()[int(expected.action[0])]
        assert got.probabilities is not None and expected.probabilities is not None
        assert np.abs(np.array(list(got.probabilities.values())) - expected.probabilities[0]).max() <= TOLERANCE
        assert got.propensity == pytest.approx(float(expected.propensity[0]), abs=TOLERANCE)
