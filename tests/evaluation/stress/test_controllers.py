"""PolicyController: an rlops policy acting in a Gymnasium environment, read by the schema's feature order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3 as sb3

from rlops.errors import ConfigError
from rlops.evaluation.controllers import (
    ActMode,
    PolicyController,
    PolicyFolderController,
    observation_to_context,
    schema_for_env,
)
from rlops.evaluation.stress import StressConfig, run_stress
from rlops.evaluation.variations import ActionDelay, Variation
from rlops.policies import RulePolicy, SB3Policy, UniformRandom, save_policy
from rlops.scenarios.base import Controller
from rlops.schema import Schema
from tests.evaluation.stress.envs import (
    CHAIN,
    LINEAR,
    Chain,
    LinearSystem,
    chain_schema,
    linear_schema,
    lqr_rule,
    optimal,
    weak,
)

MIXED = Schema.model_validate({
    "features": [
        {"name": "t", "type": "float", "min": 0, "max": 1},
        {"name": "n", "type": "int", "min": 0, "max": 10},
        {"name": "on", "type": "bool"},
        {"name": "v", "type": "vector", "size": 2, "min": -1, "max": 1},
        {"name": "c", "type": "categorical", "vocabulary": ["a", "b", "c"]},
    ],
    "actions": {"type": "discrete", "names": ["x", "y"]},
})


def test_observation_maps_to_the_context_by_feature_order() -> None:
    context = observation_to_context(MIXED, [0.25, 3.4, 1.0, 0.5, -0.5, 0.0, 0.9, 0.1])
    assert context == {"t": 0.25, "n": 3, "on": True, "v": [0.5, -0.5], "c": "b"}
    # out-of-bounds readings (noise, shocks) are clipped to the declared bounds, ints rounded
    context = observation_to_context(MIXED, [1.7, 12.6, 0.2, -3.0, 3.0, 0.2, 0.1, 0.05])
    assert context == {"t": 1.0, "n": 10, "on": False, "v": [-1.0, 1.0], "c": "a"}
    assert MIXED.encode([context]).shape == (1, MIXED.width)  # the context is valid for the schema
    with pytest.raises(ConfigError, match="7 entries but schema"):
        observation_to_context(MIXED, np.zeros(7))


def _ppo(env: Any) -> Any:
    return sb3.PPO("MlpPolicy", env, n_steps=32, batch_size=32, policy_kwargs={"net_arch": [8]}, seed=0, device="cpu")


def test_greedy_discrete_is_the_models_argmax_and_sampling_follows_the_seed() -> None:
    model = _ppo(Chain())
    controller = PolicyController(SB3Policy(chain_schema(), model), ActMode.GREEDY)
    assert isinstance(controller, Controller)
    controller.check_env(Chain())
    for pos in range(6):
        obs = np.array([pos], np.float32)
        expected, _ = model.predict(obs, deterministic=True)
        assert controller.act(obs) == int(expected)
    sampled = PolicyController(SB3Policy(chain_schema(), model), ActMode.SAMPLE)

    def actions(seed: int) -> list[int]:
        sampled.reset(seed)
        return [sampled.act(np.array([2.0], np.float32)) for _ in range(200)]

    first = actions(3)
    assert first == actions(3) and first != actions(4)
    assert 0 < sum(first) < 200  # the untrained policy really samples both actions


def test_greedy_box_is_the_models_mean_action() -> None:
    model = _ppo(LinearSystem())
    greedy = PolicyController(SB3Policy(linear_schema(), model), ActMode.GREEDY)
    sampled = PolicyController(SB3Policy(linear_schema(), model), ActMode.SAMPLE)
    sampled.reset(0)
    for x in (-0.5, 0.0, 1.5):
        obs = np.array([x])
        expected, _ = model.predict(obs, deterministic=True)
        action = greedy.act(obs)
        assert action.dtype == np.float32 and action.shape == (1,)
        np.testing.assert_allclose(action, expected, rtol=1e-5, atol=1e-6)
        assert not np.allclose(sampled.act(obs), expected, atol=1e-4)


def test_unsupported_policies_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="greedy box actions need a policy with a mean action"):
        PolicyController(UniformRandom(linear_schema()), ActMode.GREEDY)
    candidates = Schema.model_validate({"features": [{"name": "x", "type": "float"}],
                                        "actions": {"type": "candidates"}})
    with pytest.raises(ConfigError, match="fixed discrete or box actions"):
        PolicyController(UniformRandom(candidates))
    controller = PolicyController(UniformRandom(chain_schema()))
    with pytest.raises(ConfigError, match="action space"):
        controller.check_env(LinearSystem())
    with pytest.raises(ConfigError, match="observation space"):
        PolicyController(UniformRandom(MIXED)).check_env(Chain())


def test_a_rule_policy_folder_acts_like_the_controller_it_encodes(tmp_path: Path) -> None:
    folder = save_policy(RulePolicy(linear_schema(), lqr_rule), tmp_path / "lqr")
    config = StressConfig(variations=[Variation(name="late", action_delay=ActionDelay(steps=1))], episodes=6)
    from_folder = run_stress(LINEAR, PolicyFolderController(folder), weak, config, workers=1, progress=False)
    direct = run_stress(LINEAR, optimal, weak, config, workers=1, progress=False)
    for name in ("nominal", "late"):
        a, b = from_folder.variation(name).candidate, direct.variation(name).candidate
        np.testing.assert_allclose([e.total_return for e in a.episodes], [e.total_return for e in b.episodes],
                                   rtol=1e-4)
        assert a.violation_rate == b.violation_rate
    with pytest.raises(ConfigError, match="action space Discrete"):
        run_stress(CHAIN, PolicyFolderController(folder), None, config, workers=1, progress=False)


@pytest.mark.slow  # two worker processes each import torch and SB3: ~15 s
def test_an_sb3_policy_folder_runs_in_worker_processes_reproducibly(tmp_path: Path) -> None:
    folder = save_policy(SB3Policy(chain_schema(), _ppo(Chain())), tmp_path / "ppo")
    config = StressConfig(episodes=4, seed=3)
    candidate = PolicyFolderController(folder, ActMode.SAMPLE)
    one = run_stress(CHAIN, candidate, None, config, workers=1, progress=False)
    two = run_stress(CHAIN, candidate, None, config, workers=2, progress=False)
    assert one.to_dict() == two.to_dict()
    steps = [e.steps for e in one.variation("nominal").candidate.episodes]
    assert len(set(steps)) > 1  # sampled actions: the episodes really differ


def test_schema_for_env_makes_any_sb3_model_an_rlops_policy(tmp_path: Path) -> None:
    schema = schema_for_env(Chain(), name="chain")
    assert [f.name for f in schema.features] == ["obs_0"]
    assert schema.features[0].min == 0.0 and schema.features[0].max == 5.0  # type: ignore[union-attr]
    assert schema.n_actions == 2
    unbounded = schema_for_env(LinearSystem())
    assert unbounded.features[0].min is None and unbounded.actions.type == "box"  # type: ignore[union-attr]
    model = _ppo(LinearSystem())
    folder = save_policy(SB3Policy(unbounded, model, deterministic=True), tmp_path / "ppo")
    controller = PolicyFolderController(folder)(LinearSystem())
    expected, _ = model.predict(np.array([0.7]), deterministic=True)
    np.testing.assert_allclose(controller.act(np.array([0.7])), expected, rtol=1e-5)
    with pytest.raises(ConfigError, match="flat Box"):
        schema_for_env(gym.make("CliffWalking-v1"))
