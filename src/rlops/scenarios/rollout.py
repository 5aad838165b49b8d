"""Run a controller through a scenario's episodes and read off its KPIs, as the scenario's spec defines them.

>>> from rlops.scenarios import evaluate_controller, get_scenario
>>> spec = get_scenario("hvac")
>>> results = evaluate_controller(spec, spec.baseline, seeds=range(3))
>>> [round(r.kpis["energy_kwh"], 1) for r in results]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from rlops.errors import ValidationError
from rlops.scenarios.base import Controller, ScenarioSpec

ControllerFactory = Callable[[gym.Env[Any, Any]], Controller]


@dataclass(frozen=True)
class EpisodeResult:
    """One episode of one controller.

    Attributes:
        seed: the seed the environment was reset with.
        kpis: each KPI's episode value (aggregated as its spec says), by KPI name.
        violations: for each constraint signal, the number of steps it was raised.
        total_reward: the undiscounted sum of rewards.
        steps: steps until the episode ended.
    """

    seed: int
    kpis: dict[str, float]
    violations: dict[str, int]
    total_reward: float
    steps: int


def run_episode(spec: ScenarioSpec, env: gym.Env[Any, Any], controller: Controller, seed: int,
                max_steps: int = 1_000_000) -> EpisodeResult:
    """Reset ``env`` with ``seed``, let ``controller`` act until the episode ends, and aggregate the KPIs.

    Args:
        spec: the scenario whose KPIs and constraints are read from ``info``.
        env: an environment of that scenario (possibly wrapped).
        controller: reset with ``seed`` after the environment, then asked for one action per step.
        seed: the episode's seed.
        max_steps: a safety stop for environments that never end, default 1,000,000.

    Raises:
        ValidationError: a step's ``info`` lacks one of the spec's KPIs or constraint signals.
    """
    observation, _ = env.reset(seed=seed)
    controller.reset(seed=seed)
    per_step: dict[str, list[float]] = {k.name: [] for k in spec.kpis}
    violations = dict.fromkeys(spec.constraints, 0)
    total, steps, done = 0.0, 0, False
    while not done and steps < max_steps:
        observation, reward, terminated, truncated, info = env.step(controller.act(observation))
        for name, values in per_step.items():
            if name not in info:
                raise ValidationError(f"info.{name}", f"{spec.id} must report KPI {name!r} at every step")
            values.append(float(info[name]))
        for name in spec.constraints:
            if name not in info:
                raise ValidationError(f"info.{name}", f"{spec.id} must report constraint {name!r} at every step")
            violations[name] += int(float(info[name]) > 0.5)
        total += float(reward)
        steps += 1
        done = bool(terminated or truncated)
    kpis = {k.name: k.episode_value(per_step[k.name]) for k in spec.kpis}
    return EpisodeResult(seed=seed, kpis=kpis, violations=violations, total_reward=total, steps=steps)


def evaluate_controller(spec: ScenarioSpec, controller: Controller | ControllerFactory, seeds: Iterable[int],
                        params: Any | Mapping[str, float] | None = None, **options: Any) -> list[EpisodeResult]:
    """Run one episode per seed on a fresh environment of ``spec`` and return the per-episode results.

    Args:
        spec: the scenario.
        controller: a controller, or a factory that builds one for the environment (such as ``spec.baseline``).
        seeds: one episode per seed, in order; the same seeds give every controller the same exogenous draws.
        params: constants for :meth:`ScenarioSpec.make` (an instance or overrides), default the published ones.
        **options: keyword options of the environment (e.g. ``days=2`` for HVAC).
    """
    env = spec.make(params, **options)
    try:
        agent = controller if isinstance(controller, Controller) else controller(env)
        return [run_episode(spec, env, agent, int(seed)) for seed in seeds]
    finally:
        env.close()
