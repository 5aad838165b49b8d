"""Training SB3 agents on the scenarios: valid actions, reproducible weights, budgets, saving, clear errors."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from rich.console import Console

from rlops.errors import ConfigError, NotFoundError, ValidationError
from rlops.scenarios import SCENARIOS, Controller, evaluate_controller
from rlops.training import RECIPES, Algorithm, SB3Controller, TrainConfig, recipe, train

TINY = {"n_steps": 64, "batch_size": 32, "n_epochs": 2}


def _tiny(seed: int = 0, steps: int = 128, **changes: object) -> TrainConfig:
    return TrainConfig(algo=Algorithm.PPO, steps=steps, seed=seed, hyperparams=TINY, **changes)  # type: ignore[arg-type]


def _weights(agent: SB3Controller) -> list[np.ndarray]:
    return [t.detach().cpu().numpy().copy() for t in agent.model.policy.state_dict().values()]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_trained_agent_acts_validly_and_training_is_reproducible(name: str) -> None:
    spec = SCENARIOS[name]
    first = train(name, _tiny(seed=1), progress=False)
    again = train(name, _tiny(seed=1), progress=False)
    other = train(name, _tiny(seed=2), progress=False)
    assert isinstance(first, Controller)
    assert first.stats is not None and first.stats.steps == 128 and not first.stats.stopped_by_clock
    for a, b in zip(_weights(first), _weights(again), strict=True):
        assert np.array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(_weights(first), _weights(other), strict=True))
    env = spec.make()
    obs, _ = env.reset(seed=5)
    actions = []
    for _ in range(30):
        action = first.act(obs)
        assert env.action_space.contains(action if isinstance(env.action_space, gym.spaces.Discrete)
                                         else np.asarray(action, dtype=np.float32))
        assert np.array_equal(np.asarray(action), np.asarray(again.act(obs)))
        actions.append(np.asarray(action))
        obs, *_ = env.step(action)
    results = evaluate_controller(spec, first, seeds=[0])
    assert results[0].steps == env.unwrapped.horizon  # type: ignore[attr-defined]


def test_sac_trains_on_a_box_scenario_and_refuses_a_discrete_one() -> None:
    agent = train("hvac", TrainConfig(algo=Algorithm.SAC, steps=64, seed=0,
                                      hyperparams={"learning_starts": 32, "batch_size": 16}), progress=False)
    obs, _ = SCENARIOS["hvac"].make().reset(seed=0)
    assert -1.0 <= float(agent.act(obs)[0]) <= 1.0
    with pytest.raises(ConfigError, match="SAC needs continuous"):
        train("recommendation", TrainConfig(algo=Algorithm.SAC, steps=64), progress=False)


def test_the_clock_stops_training_early() -> None:
    agent = train("recommendation", _tiny(steps=100_000, max_seconds=0.5), progress=False)
    assert agent.stats is not None and agent.stats.stopped_by_clock
    assert agent.stats.steps < 100_000


def test_torch_threads_are_restored_after_training() -> None:
    before = torch.get_num_threads()
    train("recommendation", _tiny(steps=64, torch_threads=1), progress=False)
    assert torch.get_num_threads() == before


def test_progress_bar_counts_the_steps() -> None:
    console = Console(record=True, width=100, force_terminal=False)
    train("recommendation", _tiny(steps=64), progress=True, console=console)
    text = console.export_text()
    assert "training recommendation" in text and "64/64" in text


def test_save_and_load_give_the_same_actions(tmp_path: Path) -> None:
    agent = train("glucose", _tiny(steps=64), progress=False)
    path = agent.save(tmp_path / "agent")
    assert path.name == "agent.zip" and path.is_file()
    loaded = SB3Controller.load(path, Algorithm.PPO)
    obs, _ = SCENARIOS["glucose"].make().reset(seed=0)
    assert np.array_equal(agent.act(obs), loaded.act(obs))
    with pytest.raises(NotFoundError, match="not a file"):
        SB3Controller.load(tmp_path / "missing.zip")


@pytest.mark.parametrize(("config", "message"), [
    (TrainConfig(steps=0), "steps must be >= 1"),
    (TrainConfig(max_seconds=0.0), "max_seconds must be > 0"),
    (TrainConfig(torch_threads=0), "torch_threads must be >= 1"),
    (TrainConfig(algo="DQN"), "algo 'DQN' is not supported"),  # type: ignore[arg-type]
    (TrainConfig(steps=64, hyperparams={"no_such_setting": 1}), "hyperparams"),
])
def test_bad_settings_are_refused_clearly(config: TrainConfig, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        train("hvac", config, progress=False)


def test_unknown_scenarios_are_not_found() -> None:
    with pytest.raises(NotFoundError, match="known"):
        train("hvak", _tiny(), progress=False)


def test_every_scenario_has_a_recipe() -> None:
    assert sorted(RECIPES) == sorted(SCENARIOS)
    assert recipe("hvac", seed=7).seed == 7
    with pytest.raises(NotFoundError, match="hvak"):
        recipe("hvak")


def test_reward_normalisation_changes_learning_but_not_what_the_agent_sees() -> None:
    plain = train("hvac", _tiny(seed=3), progress=False)
    scaled = train("hvac", _tiny(seed=3, normalize_reward=True), progress=False)
    assert any(not np.array_equal(a, b) for a, b in zip(_weights(plain), _weights(scaled), strict=True))
    env = SCENARIOS["hvac"].make()
    obs, _ = env.reset(seed=0)
    expected, _ = scaled.model.predict(obs, deterministic=True)  # raw observation in, no normalising wrapper
    assert np.array_equal(scaled.act(obs), expected)


def test_environment_options_reach_the_training_environment() -> None:
    with pytest.raises(ValidationError, match=r"^reward: must be one of"):
        train("portfolio", _tiny(env_options={"reward": "sharpe"}), progress=False)
