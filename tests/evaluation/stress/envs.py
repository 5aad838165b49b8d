"""Small scenarios with known behaviour for the stress suite's tests (module level, so worker processes import them).

- :class:`LinearSystem`: ``x' = a x + b u + noise * w`` with ``w ~ N(0, 1)``, cost ``x^2 + r u^2`` per step, reward
  minus the cost, a constraint ``|x| > limit`` and a 50-step horizon. With ``a = 1.2`` it is open-loop unstable;
  the LQR gain :func:`lqr_gain` is the optimal linear feedback (certainty equivalence holds for Gaussian noise).
- :class:`Chain`: positions ``0..n-1``, actions left/right, reward 1 on reaching the right end (which ends the
  episode), a 30-step horizon; the observation is the position as a float.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from rlops.scenarios.base import KPI, Aggregation, Better, ScenarioSpec
from rlops.schema import Schema

HORIZON = 50


@dataclass(frozen=True)
class LinearParams:
    a: float = 1.2
    b: float = 1.0
    noise: float = 0.1
    r: float = 0.1
    limit: float = 1.5


def lqr_gain(a: float, b: float, q: float = 1.0, r: float = 0.1) -> float:
    """The infinite-horizon discrete LQR gain ``K`` (``u = -K x``) from the scalar Riccati recursion."""
    p = q
    for _ in range(10_000):
        p_next = q + a * a * p - (a * b * p) ** 2 / (r + b * b * p)
        if abs(p_next - p) < 1e-14:
            break
        p = p_next
    return a * b * p / (r + b * b * p)


class LinearSystem(gym.Env[np.ndarray, np.ndarray]):
    """A scalar linear system (see the module docstring)."""

    def __init__(self, params: LinearParams | None = None, horizon: int = HORIZON) -> None:
        self.params = params or LinearParams()
        self.horizon = horizon
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float64)
        self.action_space = gym.spaces.Box(-5.0, 5.0, (1,), np.float64)
        self._x = 0.0
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._x = float(self.np_random.uniform(-1.0, 1.0))
        self._t = 0
        return np.array([self._x]), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        p = self.params
        u = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -5.0, 5.0))
        cost = self._x ** 2 + p.r * u ** 2
        self._x = p.a * self._x + p.b * u + p.noise * float(self.np_random.standard_normal())
        self._t += 1
        info = {"cost": cost, "peak": abs(self._x), "out_of_bounds": float(abs(self._x) > p.limit)}
        return np.array([self._x]), -cost, False, self._t >= self.horizon, info


def make_linear(params: LinearParams | None = None, **options: Any) -> LinearSystem:
    return LinearSystem(params, **options)


@dataclass
class Feedback:
    """``u = -k x``, clipped to the action bounds."""

    k: float

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, observation: Any) -> np.ndarray:
        return np.clip(np.array([-self.k * float(np.asarray(observation).reshape(-1)[0])]), -5.0, 5.0)


@dataclass
class NoisyFeedback:
    """``u = -k x + N(0, 0.3^2)``: a controller with its own randomness, seeded by ``reset``."""

    k: float
    rng: np.random.Generator | None = None

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, observation: Any) -> np.ndarray:
        assert self.rng is not None
        return np.array([-self.k * float(np.asarray(observation)[0]) + 0.3 * self.rng.standard_normal()])


def optimal(env: gym.Env[Any, Any]) -> Feedback:
    """The LQR controller for the nominal constants (it does not know a perturbation)."""
    p = LinearParams()
    return Feedback(lqr_gain(p.a, p.b, 1.0, p.r))


def weak(env: gym.Env[Any, Any]) -> Feedback:
    """A sluggish gain: stable (closed loop 0.9) but far from optimal."""
    return Feedback(0.3)


LINEAR = ScenarioSpec(
    id="test/Linear-v0",
    params_type=LinearParams,
    env_factory=make_linear,
    kpis=(KPI("cost", Aggregation.SUM, Better.LOWER), KPI("peak", Aggregation.MAX, Better.LOWER)),
    constraints=("out_of_bounds",),
    perturbable=("a", "b", "noise"),
    baseline=weak,
    description="x' = a x + b u + noise w, unstable for a > 1",
)


# ---- a chain with discrete actions ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChainParams:
    slip: float = 0.1


class Chain(gym.Env[np.ndarray, int]):
    """Positions 0..n-1; action 1 moves right, 0 left (each reversed with probability ``slip``)."""

    def __init__(self, params: ChainParams | None = None, n: int = 6, horizon: int = 30) -> None:
        self.params = params or ChainParams()
        self.n, self.horizon = n, horizon
        self.observation_space = gym.spaces.Box(0.0, float(n - 1), (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self._pos, self._t = 0, 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._pos, self._t = 0, 0
        return np.array([0.0], np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        move = 1 if int(action) == 1 else -1
        if self.np_random.random() < self.params.slip:
            move = -move
        self._pos = int(np.clip(self._pos + move, 0, self.n - 1))
        self._t += 1
        done = self._pos == self.n - 1
        info = {"steps": 1.0, "at_left_wall": float(self._pos == 0)}
        return np.array([float(self._pos)], np.float32), float(done), done, self._t >= self.horizon, info


def make_chain(params: ChainParams | None = None, **options: Any) -> Chain:
    return Chain(params, **options)


@dataclass
class Constant:
    """Always the same discrete action."""

    action: int

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, observation: Any) -> int:
        return self.action


def go_left(env: gym.Env[Any, Any]) -> Constant:
    return Constant(0)


CHAIN = ScenarioSpec(
    id="test/Chain-v0",
    params_type=ChainParams,
    env_factory=make_chain,
    kpis=(KPI("steps", Aggregation.SUM, Better.LOWER),),
    constraints=("at_left_wall",),
    perturbable=("slip",),
    baseline=go_left,
)


# ---- an environment that records what reaches it --------------------------------------------------------------------

class Echo(gym.Env[np.ndarray, Any]):
    """Observation ``[t, 10 + t, 20 + t]`` at step ``t``; records every action it receives; never ends."""

    def __init__(self, params: Any = None, discrete: bool = False, low: float = -1.0, high: float = 1.0) -> None:
        self.observation_space = gym.spaces.Box(np.float32(low) * 100, np.float32(high) * 100, (3,), np.float32)
        self.action_space: gym.Space[Any] = gym.spaces.Discrete(4) if discrete else gym.spaces.Box(-1.0, 1.0, (1,))
        self.received: list[Any] = []
        self._t = 0

    def _obs(self) -> np.ndarray:
        return np.array([self._t, 10 + self._t, 20 + self._t], np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = 0
        self.received = []
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.received.append(action)
        self._t += 1
        return self._obs(), 0.0, False, False, {}


def make_echo(params: Any = None, **options: Any) -> Echo:
    return Echo(params, **options)


# ---- the same controllers as rlops policies ------------------------------------------------------------------------

def linear_schema() -> Schema:
    """The linear system's observation as a context (one unbounded float) and its action box."""
    return Schema.model_validate({"name": "linear", "features": [{"name": "x", "type": "float"}],
                                  "actions": {"type": "box", "low": [-5.0], "high": [5.0]}})


def chain_schema() -> Schema:
    """The chain's observation as a context (the position in [0, 5]) and its two actions."""
    return Schema.model_validate({"name": "chain", "features": [{"name": "pos", "type": "float", "min": 0, "max": 5}],
                                  "actions": {"type": "discrete", "names": ["left", "right"]}})


def lqr_rule(context: Mapping[str, Any]) -> list[float]:
    """The LQR controller as a rule policy's function."""
    p = LinearParams()
    return [float(np.clip(-lqr_gain(p.a, p.b, 1.0, p.r) * context["x"], -5.0, 5.0))]
