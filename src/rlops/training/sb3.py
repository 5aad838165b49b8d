"""Train a Stable-Baselines3 agent on a reference scenario, and use it as a :class:`~rlops.scenarios.Controller`.

>>> from rlops.training import TrainConfig, train
>>> agent = train("hvac", TrainConfig(steps=20_000, seed=0))  # doctest: +SKIP
>>> from rlops.scenarios import evaluate_controller, get_scenario
>>> evaluate_controller(get_scenario("hvac"), agent, seeds=range(100, 130))  # doctest: +SKIP

Training is reproducible: the same scenario, constants, config and seed give the same weights (SB3 seeds Python,
NumPy, PyTorch and the environment from ``seed``; keep ``torch_threads=1`` for bit-identical CPU results).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from stable_baselines3.common.callbacks import BaseCallback

from rlops.errors import ConfigError, NotFoundError
from rlops.policies.sb3 import algo_class
from rlops.scenarios import ScenarioSpec, get_scenario, scenario_name


class Algorithm(StrEnum):
    """The Stable-Baselines3 algorithms training supports."""

    PPO = "PPO"
    A2C = "A2C"
    SAC = "SAC"
    TD3 = "TD3"


_CONTINUOUS_ONLY = frozenset({Algorithm.SAC, Algorithm.TD3})


@dataclass(frozen=True)
class TrainConfig:
    """How to train an agent.

    Attributes:
        algo: the algorithm, default PPO.
        steps: environment steps to train for, default 50,000.
        seed: seeds the agent, its initial weights and the training environment, default 0.
        max_seconds: stop early once training has run this long (wall time), default no limit. A run stopped by
            the clock is not reproducible; size ``steps`` to fit and keep this as a safety stop.
        hyperparams: keyword arguments of the SB3 constructor (e.g. ``{"n_steps": 512, "learning_rate": 1e-3}``),
            default SB3's own defaults.
        env_options: keyword options of the environment (e.g. ``{"days": 2}``), default none.
        torch_threads: PyTorch intra-op threads during training, default 1 (reproducible, and polite on shared
            machines); ``None`` leaves PyTorch's setting alone.
        normalize_reward: scale rewards by a running estimate of the return's standard deviation during training
            (SB3's ``VecNormalize(norm_obs=False)``), default False. Observations are untouched, so the trained
            controller acts on raw observations as every other controller does.
    """

    algo: Algorithm = Algorithm.PPO
    steps: int = 50_000
    seed: int = 0
    max_seconds: float | None = None
    hyperparams: Mapping[str, Any] = field(default_factory=dict)
    env_options: Mapping[str, Any] = field(default_factory=dict)
    torch_threads: int | None = 1
    normalize_reward: bool = False

    def check(self) -> None:
        """Reject settings that cannot train."""
        if self.steps < 1:
            raise ConfigError(f"train: steps must be >= 1, got {self.steps}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ConfigError(f"train: max_seconds must be > 0, got {self.max_seconds}")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ConfigError(f"train: torch_threads must be >= 1, got {self.torch_threads}")
        try:
            Algorithm(self.algo)
        except ValueError as e:
            raise ConfigError(f"train: algo {self.algo!r} is not supported; use one of "
                              f"{[a.value for a in Algorithm]}") from e


class SB3Controller:
    """A trained SB3 model acting on raw observations (the :class:`~rlops.scenarios.Controller` protocol).

    Args:
        model: a Stable-Baselines3 model.
        deterministic: act with the policy's mode (mean action, arg-max) rather than sampling, default True.
        stats: how the model was trained (filled in by :func:`train`).
    """

    def __init__(self, model: Any, deterministic: bool = True, stats: TrainStats | None = None) -> None:
        self.model = model
        self.deterministic = deterministic
        self.stats = stats
        self._discrete = isinstance(model.action_space, gym.spaces.Discrete)

    def reset(self, seed: int | None = None) -> None:
        """Feed-forward policies keep no episode state."""

    def act(self, observation: Any) -> Any:
        action, _ = self.model.predict(np.asarray(observation), deterministic=self.deterministic)
        return int(action) if self._discrete else np.asarray(action)

    def save(self, path: str | Path) -> Path:
        """Write the model with SB3's ``save`` (a ``.zip``) and return the path written."""
        target = Path(path)
        self.model.save(str(target))
        return target if target.suffix == ".zip" else target.with_suffix(target.suffix + ".zip")

    @classmethod
    def load(cls, path: str | Path, algo: Algorithm | str = Algorithm.PPO, deterministic: bool = True
             ) -> SB3Controller:
        """Load a model saved by :meth:`save` (SB3 zips hold pickles: load only files you trust)."""
        if not Path(path).is_file():
            raise NotFoundError(f"model: {path} is not a file")
        return cls(algo_class(str(algo)).load(str(path), device="cpu"), deterministic=deterministic)


@dataclass(frozen=True)
class TrainStats:
    """What a training run did.

    Attributes:
        scenario: the scenario's short name.
        algo: the algorithm.
        steps: environment steps actually taken.
        seconds: wall time of training.
        stopped_by_clock: whether ``max_seconds`` ended training before ``steps``.
    """

    scenario: str
    algo: Algorithm
    steps: int
    seconds: float
    stopped_by_clock: bool


def train(scenario: str | ScenarioSpec, config: TrainConfig | None = None, params: Any = None,
          progress: bool = True, console: Console | None = None) -> SB3Controller:
    """Train an agent on ``scenario`` and return it as a controller.

    Args:
        scenario: a scenario name (``"hvac"``) or spec.
        config: algorithm, step budget, seed and hyperparameters, default :class:`TrainConfig()`.
        params: the scenario's constants (an instance or overrides), default the published ones.
        progress: show a rich progress bar, default True.
        console: where the progress bar draws, default a new stderr console.

    Raises:
        ConfigError: a bad setting, or an algorithm that cannot handle the scenario's action space.
        NotFoundError: an unknown scenario name.
    """
    import torch
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    config = config if config is not None else TrainConfig()
    config.check()
    spec = scenario if isinstance(scenario, ScenarioSpec) else get_scenario(scenario)
    algo = Algorithm(config.algo)
    env: Any = DummyVecEnv([lambda: Monitor(spec.make(params, **dict(config.env_options)))])
    if algo in _CONTINUOUS_ONLY and not isinstance(env.action_space, gym.spaces.Box):
        env.close()
        raise ConfigError(f"train: {algo} needs continuous (box) actions; {spec.id} has {env.action_space}")
    if config.normalize_reward:
        env = VecNormalize(env, norm_obs=False, norm_reward=True, gamma=float(config.hyperparams.get("gamma", 0.99)))
    threads = torch.get_num_threads()
    if config.torch_threads is not None:
        torch.set_num_threads(config.torch_threads)
    bar = Progress(TextColumn("training {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn(), console=console or Console(stderr=True), disable=not progress)
    try:
        model = algo_class(algo.value)("MlpPolicy", env, seed=config.seed, device="cpu", verbose=0,
                                       **dict(config.hyperparams))
        callback = _Budget(bar, bar.add_task(scenario_name(spec), total=config.steps), config.max_seconds)
        start = time.perf_counter()
        with bar:  # closes the bar on Ctrl-C too; the partly trained model is simply dropped
            model.learn(total_timesteps=config.steps, callback=callback, progress_bar=False)
        seconds = time.perf_counter() - start
    except TypeError as e:  # an unknown hyperparameter
        raise ConfigError(f"train: hyperparams: {e}") from e
    finally:
        if config.torch_threads is not None:
            torch.set_num_threads(threads)
        env.close()
    stats = TrainStats(scenario=scenario_name(spec), algo=algo, steps=int(model.num_timesteps), seconds=seconds,
                       stopped_by_clock=callback.stopped_by_clock)
    return SB3Controller(model, stats=stats)


class _Budget(BaseCallback):  # type: ignore[misc]
    """Advances a rich progress bar with the training steps and stops training at a wall-time limit."""

    def __init__(self, bar: Progress, task: TaskID, max_seconds: float | None) -> None:
        super().__init__()
        self.bar, self.task, self.max_seconds = bar, task, max_seconds
        self.stopped_by_clock = False
        self._start = 0.0

    def _on_training_start(self) -> None:
        self._start = time.perf_counter()

    def _on_step(self) -> bool:
        self.bar.update(self.task, completed=self.num_timesteps)
        if self.max_seconds is not None and time.perf_counter() - self._start > self.max_seconds:
            self.stopped_by_clock = True
            return False
        return True
