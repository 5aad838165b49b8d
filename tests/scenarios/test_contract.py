"""The scenario contract, checked the same way on every reference scenario."""

from __future__ import annotations

import math
import pickle
import warnings
from dataclasses import fields
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rlops.errors import ValidationError
from rlops.scenarios import SCENARIOS, Controller, ScenarioSpec

NAMES = sorted(SCENARIOS)


def _trajectory(spec: ScenarioSpec, seed: int, steps: int = 60) -> list[tuple[Any, ...]]:
    """Observations, rewards and infos of ``steps`` steps under seeded random actions."""
    env = spec.make()
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out: list[tuple[Any, ...]] = [(obs.tolist(),)]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        out.append((obs.tolist(), reward, terminated, truncated, info))
        if terminated or truncated:
            break
    return out


@pytest.mark.parametrize("name", NAMES)
def test_check_env_passes_without_warnings(name: str) -> None:
    env = gym.make(SCENARIOS[name].id).unwrapped  # made through the registry, so the render check has a spec
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_trajectory_and_infos(name: str) -> None:
    spec = SCENARIOS[name]
    first, again, other = _trajectory(spec, 7), _trajectory(spec, 7), _trajectory(spec, 8)
    assert first == again
    assert first != other


@pytest.mark.parametrize("name", NAMES)
def test_every_step_reports_kpis_and_constraint_signals(name: str) -> None:
    spec = SCENARIOS[name]
    env = spec.make()
    env.action_space.seed(0)
    env.reset(seed=0)
    raised = dict.fromkeys(spec.constraints, 0)
    done = False
    steps = 0
    while not done:
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        for kpi in spec.kpis:
            assert isinstance(info[kpi.name], float) and math.isfinite(info[kpi.name]), kpi.name
        for name_ in spec.constraints:
            assert info[name_] in (0.0, 1.0), name_
            raised[name_] += int(info[name_])
        assert math.isfinite(reward)
        done = terminated or truncated
        steps += 1
    assert steps == env.unwrapped.horizon  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", NAMES)
def test_baseline_is_a_controller_with_valid_actions(name: str) -> None:
    spec = SCENARIOS[name]
    env = spec.make()
    controller = spec.baseline(env)
    assert isinstance(controller, Controller)
    obs, _ = env.reset(seed=3)
    controller.reset(seed=3)
    for _ in range(50):
        action = controller.act(obs)
        assert env.action_space.contains(np.asarray(action, dtype=env.action_space.dtype)
                                         if isinstance(env.action_space, gym.spaces.Box) else action)
        obs, *_ = env.step(action)


@pytest.mark.parametrize("name", NAMES)
def test_params_overrides_reach_the_environment(name: str) -> None:
    spec = SCENARIOS[name]
    field = spec.perturbable[0]
    default = getattr(spec.default_params(), field)
    value = default * 1.5 if default else 0.5
    env = spec.make({field: value})
    assert getattr(env.unwrapped.params, field) == pytest.approx(value)  # type: ignore[attr-defined]
    assert getattr(spec.scaled({field: 2.0}), field) == pytest.approx(2.0 * default)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_and_fixed_constants_are_refused_by_name(name: str) -> None:
    spec = SCENARIOS[name]
    with pytest.raises(ValidationError, match=r"params\.no_such_constant"):
        spec.make({"no_such_constant": 1.0})
    fixed = [f.name for f in fields(spec.params_type) if f.name not in spec.perturbable]
    for field in fixed:
        with pytest.raises(ValidationError, match=rf"params\.{field}: not perturbable"):
            spec.make({field: 1.0})


@pytest.mark.parametrize("name", NAMES)
def test_perturbable_names_are_float_constants(name: str) -> None:
    spec = SCENARIOS[name]
    defaults = spec.default_params()
    for field in spec.perturbable:
        assert isinstance(getattr(defaults, field), float), field
        spec.make(spec.scaled({field: 1.2}))  # +20% of any perturbable constant still builds


@pytest.mark.parametrize("name", NAMES)
def test_gym_make_builds_the_registered_scenario(name: str) -> None:
    spec = SCENARIOS[name]
    env = gym.make(spec.id)
    assert type(env.unwrapped) is type(spec.make().unwrapped)
    assert env.unwrapped.spec is not None and env.unwrapped.spec.id == spec.id


@pytest.mark.parametrize("name", NAMES)
def test_spec_and_baseline_pickle_for_worker_processes(name: str) -> None:
    spec = SCENARIOS[name]
    again = pickle.loads(pickle.dumps(spec))
    assert again.id == spec.id and again.kpis == spec.kpis
    controller = pickle.loads(pickle.dumps(spec.baseline(spec.make())))
    env = spec.make()
    obs, _ = env.reset(seed=0)
    controller.reset(seed=0)
    original = spec.baseline(env)
    original.reset(seed=0)
    assert np.array_equal(np.asarray(controller.act(obs)), np.asarray(original.act(obs)))
