"""Episode runner: KPIs aggregated as the spec says, constraints counted, the contract enforced."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from rlops.errors import ValidationError
from rlops.scenarios import KPI, Aggregation, Better, ScenarioSpec, evaluate_controller, run_episode


class _Counter(gym.Env[np.ndarray, np.ndarray]):
    """Three steps; step ``k`` (1-based) reports ``value = k * action`` and raises ``flag`` on odd steps."""

    def __init__(self, params: Any = None, omit: str | None = None) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.omit = omit
        self.k = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.k = 0
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.k += 1
        info = {"value": self.k * float(action[0]), "peak": float(self.k), "flag": float(self.k % 2)}
        info.pop(self.omit or "", None)
        return np.zeros(1, dtype=np.float32), 1.0, False, self.k >= 3, info


class _Half:
    def __init__(self) -> None:
        self.seeds: list[int | None] = []

    def reset(self, seed: int | None = None) -> None:
        self.seeds.append(seed)

    def act(self, observation: Any) -> np.ndarray:
        return np.array([0.5], dtype=np.float32)


def _spec(omit: str | None = None) -> ScenarioSpec:
    return ScenarioSpec(
        id="test/Counter-v0", params_type=dict, env_factory=lambda params=None: _Counter(params, omit),
        kpis=(KPI("value", Aggregation.SUM, Better.HIGHER), KPI("peak", Aggregation.MAX, Better.LOWER)),
        constraints=("flag",), perturbable=(), baseline=lambda env: _Half())


def test_kpis_are_aggregated_and_constraints_counted() -> None:
    spec = _spec()
    controller = _Half()
    results = evaluate_controller(spec, controller, seeds=[4, 5])
    assert [r.seed for r in results] == [4, 5]
    assert controller.seeds == [4, 5]
    for r in results:
        assert r.kpis == {"value": pytest.approx(0.5 * (1 + 2 + 3)), "peak": 3.0}
        assert r.violations == {"flag": 2}
        assert r.total_reward == 3.0 and r.steps == 3


def test_a_factory_builds_the_controller_from_the_environment() -> None:
    spec = _spec()
    results = evaluate_controller(spec, spec.baseline, seeds=range(2))
    assert len(results) == 2 and results[1].kpis["value"] == pytest.approx(3.0)


@pytest.mark.parametrize("omit", ["value", "flag"])
def test_missing_info_keys_are_named(omit: str) -> None:
    spec = _spec(omit)
    with pytest.raises(ValidationError, match=rf"info\.{omit}"):
        run_episode(spec, spec.make(), _Half(), seed=0)
