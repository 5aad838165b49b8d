"""The stress suite's variations: what differs between the nominal scenario and a stressed copy of it.

A :class:`Variation` is a name plus any of five perturbations, each optional, all composable:

- ``params``: multiply perturbable constants of the scenario (``{"thermal_resistance": 1.2}`` is +20%), through
  :meth:`ScenarioSpec.scaled`; the environment itself is built with other dynamics.
- ``observation_noise``: zero-mean Gaussian noise added to what the controller observes (the state is untouched).
- ``missing``: observation entries that do not arrive; the controller sees the last value it was shown for that
  entry (a stale sensor) or a fill value.
- ``action_delay``: every action reaches the environment ``steps`` steps after the controller chose it.
- ``rare_events``: at a small per-step probability, a large shock. Scenarios expose no way to touch their state
  from outside (the stress suite never reaches into an environment), so a shock is delivered through the two
  interfaces every environment has: a **sensor** shock offsets one observation entry by ``magnitude`` reference
  scales for ``duration`` steps (a glitching sensor: the controller acts on a wrong reading, the plant does not
  move); an **actuator** shock replaces the applied action by a uniformly random one for ``duration`` steps (a
  stuck or runaway actuator: the state itself is knocked off course, and the controller must recover).

Every random draw of a perturbation comes from a generator seeded per episode, and the number of draws per step
does not depend on the controller's actions, so two controllers run on the same episode seed face exactly the same
noise, missing entries and shocks (common random numbers: their difference is paired).

Observation perturbations need a flat ``Box`` observation space. Their scale is set per entry by
:class:`NoiseReference`: a fraction of the entry's half range (``bounds``; entries with an infinite bound use
``unbounded_scale``), of the entry's current magnitude (``magnitude``), or an absolute value (``absolute``).

Wrappers are applied in this order, innermost first: actuator shock, action delay (so a delayed action can still be
overridden at the actuator), then on the observation side sensor shock, noise, missing entries (the controller sees
the result of all three).
"""

from __future__ import annotations

import collections
import math
from enum import StrEnum
from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rlops.errors import ConfigError
from rlops.scenarios.base import ScenarioSpec


class NoiseReference(StrEnum):
    """What a relative observation perturbation is relative to, per entry."""

    BOUNDS = "bounds"
    """Half the entry's range in the observation space; ``unbounded_scale`` where a bound is infinite."""
    MAGNITUDE = "magnitude"
    """The entry's current absolute value (multiplicative noise: zero stays zero)."""
    ABSOLUTE = "absolute"
    """The number itself, in the observation's units."""


class MissingMode(StrEnum):
    """What the controller sees in place of a missing observation entry."""

    STALE = "stale"
    """The last value it was shown for that entry."""
    FILL = "fill"
    """A constant fill value."""


class ShockTarget(StrEnum):
    """Where a rare event strikes (see the module docstring)."""

    SENSOR = "sensor"
    ACTUATOR = "actuator"


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObservationNoise(_Config):
    """Gaussian noise on every observation entry the controller sees.

    Attributes:
        scale: standard deviation as a multiple of the reference (>= 0), e.g. 0.05 for 5%.
        reference: what ``scale`` multiplies, default ``bounds``.
        unbounded_scale: the reference of entries with an infinite bound under ``bounds`` (> 0), default 1.0.
    """

    scale: float = Field(ge=0.0, allow_inf_nan=False)
    reference: NoiseReference = NoiseReference.BOUNDS
    unbounded_scale: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)


class MissingFeatures(_Config):
    """Observation entries that independently fail to arrive at each step.

    Attributes:
        fraction: probability in [0, 1] that an entry is missing at a step (the first observation of an episode is
            always complete).
        mode: ``stale`` (the last value shown, default) or ``fill``.
        fill: the value shown under ``fill``, default 0.0.
        indices: only these entries may go missing (0-based positions in the flat observation); default all.
    """

    fraction: float = Field(ge=0.0, le=1.0)
    mode: MissingMode = MissingMode.STALE
    fill: float = Field(default=0.0, allow_inf_nan=False)
    indices: list[int] | None = None

    @field_validator("indices")
    @classmethod
    def _non_negative(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(i < 0 for i in value):
            raise ValueError("indices must be >= 0")
        return value


class ActionDelay(_Config):
    """Actions applied late.

    Attributes:
        steps: the action chosen at step ``t`` is applied at step ``t + steps`` (>= 1). Until then the first action
            of the episode is applied (the actuator holds its first command).
    """

    steps: int = Field(ge=1, le=10_000)


class RareEvents(_Config):
    """Large shocks at a small per-step probability (see the module docstring for what a shock is).

    Attributes:
        probability: chance in [0, 1] that a shock starts at a step (none starts while one is under way).
        target: ``sensor`` (default) or ``actuator``.
        magnitude: a sensor shock's offset, in reference scales of the entry (> 0), default 5.0; a random entry and
            sign are drawn per shock. Ignored by actuator shocks.
        duration: steps a shock lasts (>= 1), default 1.
        reference: the reference of a sensor shock's offset, as for noise, default ``bounds``.
        unbounded_scale: the reference of entries with an infinite bound under ``bounds``, default 1.0.
    """

    probability: float = Field(ge=0.0, le=1.0)
    target: ShockTarget = ShockTarget.SENSOR
    magnitude: float = Field(default=5.0, gt=0.0, allow_inf_nan=False)
    duration: int = Field(default=1, ge=1, le=10_000)
    reference: NoiseReference = NoiseReference.BOUNDS
    unbounded_scale: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)


class Variation(_Config):
    """One stressed version of a scenario: a name and the perturbations it applies (none: the nominal scenario).

    Example (YAML, one item of a variations file)::

        - name: noisy-and-late
          observation_noise: {scale: 0.05}
          action_delay: {steps: 2}
    """

    name: str = Field(min_length=1, max_length=200, pattern=r"^[^.*]+$",
                      description="Unique name; no '.' or '*', so reports can address it by dotted path.")
    params: dict[str, float] = Field(default_factory=dict)
    observation_noise: ObservationNoise | None = None
    missing: MissingFeatures | None = None
    action_delay: ActionDelay | None = None
    rare_events: RareEvents | None = None

    @field_validator("params")
    @classmethod
    def _positive_factors(cls, value: dict[str, float]) -> dict[str, float]:
        for name, factor in value.items():
            if not (math.isfinite(factor) and factor > 0):
                raise ValueError(f"factor of {name!r} must be a finite number > 0, got {factor}")
        return value

    @property
    def is_nominal(self) -> bool:
        """True when the variation changes nothing."""
        return not self.params and all(
            p is None for p in (self.observation_noise, self.missing, self.action_delay, self.rare_events))

    def check(self, spec: ScenarioSpec) -> None:
        """Refuse parameters the scenario does not know or does not declare perturbable (``ValidationError``)."""
        if self.params:
            base = spec.default_params()
            # spec.params names the offending field for unknown names too (spec.scaled would fail on getattr first)
            spec.params({k: getattr(base, k, 0.0) for k in self.params})
            spec.scaled(self.params)

    def make(self, spec: ScenarioSpec, seed: int, **options: Any) -> gym.Env[Any, Any]:
        """Build the scenario's environment with this variation applied.

        Args:
            spec: the scenario.
            seed: seeds every random draw the perturbations make (the environment is seeded by its ``reset``).
            **options: passed to :meth:`ScenarioSpec.make`.
        """
        self.check(spec)
        params = spec.scaled(self.params) if self.params else None
        env = spec.make(params=params, **options)
        seeds = np.random.SeedSequence(seed).generate_state(4)
        rare = self.rare_events
        if rare is not None and rare.target is ShockTarget.ACTUATOR:
            env = ActuatorShockWrapper(env, rare, int(seeds[0]))
        if self.action_delay is not None:
            env = ActionDelayWrapper(env, self.action_delay.steps)
        if rare is not None and rare.target is ShockTarget.SENSOR:
            env = SensorShockWrapper(env, rare, int(seeds[1]))
        if self.observation_noise is not None:
            env = ObservationNoiseWrapper(env, self.observation_noise, int(seeds[2]))
        if self.missing is not None:
            env = MissingFeaturesWrapper(env, self.missing, int(seeds[3]))
        return env


def parameter_sweep(spec: ScenarioSpec, relative: float) -> list[Variation]:
    """Two variations per perturbable constant: the constant scaled by ``1 - relative`` and by ``1 + relative``.

    Args:
        spec: the scenario whose ``perturbable`` constants are swept.
        relative: the relative change in (0, 1), e.g. 0.2 for ±20%.
    """
    if not 0.0 < relative < 1.0:
        raise ConfigError(f"param_sweep: the relative change must be in (0, 1), got {relative}")
    # e.g. "20%", or "12p5%" for 12.5%: a variation name holds no '.' (reports address it by dotted path)
    pct = f"{round(relative * 100, 6):g}".replace(".", "p") + "%"
    out = []
    for name in spec.perturbable:
        out.append(Variation(name=f"{name}-{pct}", params={name: 1.0 - relative}))
        out.append(Variation(name=f"{name}+{pct}", params={name: 1.0 + relative}))
    return out


# ---- wrappers -------------------------------------------------------------------------------------------------------

def _flat_box(env: gym.Env[Any, Any], what: str) -> gym.spaces.Box:
    space = env.observation_space
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ConfigError(f"{what}: needs a flat Box observation space, the scenario's is {space}")
    return space


def _reference_scale(space: gym.spaces.Box, reference: NoiseReference, unbounded_scale: float) -> np.ndarray:
    """Per-entry reference for ``bounds`` and ``absolute`` (``magnitude`` is computed per observation)."""
    if reference is NoiseReference.ABSOLUTE:
        return np.ones(space.shape, dtype=np.float64)
    low = np.asarray(space.low, dtype=np.float64)
    high = np.asarray(space.high, dtype=np.float64)
    half = 0.5 * (high - low)
    return np.where(np.isfinite(half), half, unbounded_scale)


def _scale_now(base: np.ndarray, reference: NoiseReference, obs: np.ndarray) -> np.ndarray:
    return np.abs(obs) if reference is NoiseReference.MAGNITUDE else base


class ObservationNoiseWrapper(gym.ObservationWrapper[Any, Any, Any]):
    """Adds ``N(0, (scale * reference)^2)`` to every observation entry (one draw per entry per step)."""

    def __init__(self, env: gym.Env[Any, Any], config: ObservationNoise, seed: int) -> None:
        super().__init__(env)
        self.config = config
        self._base = _reference_scale(_flat_box(env, "observation_noise"), config.reference, config.unbounded_scale)
        self._seed = seed
        self._rng = np.random.default_rng(seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self._rng = np.random.default_rng(self._seed)
        return super().reset(seed=seed, options=options)

    def observation(self, observation: Any) -> Any:
        obs = np.asarray(observation)
        x = obs.astype(np.float64)
        noisy = x + self.config.scale * _scale_now(self._base, self.config.reference, x) * self._rng.standard_normal(
            x.shape)
        return noisy.astype(obs.dtype, copy=False)


class MissingFeaturesWrapper(gym.ObservationWrapper[Any, Any, Any]):
    """Replaces observation entries, each missing with probability ``fraction`` per step, by stale or fill values."""

    def __init__(self, env: gym.Env[Any, Any], config: MissingFeatures, seed: int) -> None:
        super().__init__(env)
        space = _flat_box(env, "missing")
        self.config = config
        size = int(space.shape[0])
        self._eligible = np.zeros(size, dtype=bool)
        if config.indices is None:
            self._eligible[:] = True
        else:
            bad = [i for i in config.indices if i >= size]
            if bad:
                raise ConfigError(f"missing.indices: {bad} out of range for an observation of {size} entries")
            self._eligible[config.indices] = True
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._shown: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self._rng = np.random.default_rng(self._seed)
        obs, info = self.env.reset(seed=seed, options=options)
        self._shown = np.array(obs, copy=True)  # the first observation arrives whole
        return self._shown.copy(), info

    def observation(self, observation: Any) -> Any:
        obs = np.array(observation, copy=True)
        missing = (self._rng.random(obs.shape) < self.config.fraction) & self._eligible
        if self.config.mode is MissingMode.STALE and self._shown is not None:
            obs[missing] = self._shown[missing]
        else:
            obs[missing] = self.config.fill
        self._shown = obs
        return obs.copy()


class SensorShockWrapper(gym.ObservationWrapper[Any, Any, Any]):
    """Offsets one random observation entry by ``±magnitude`` reference scales for ``duration`` steps, rarely."""

    def __init__(self, env: gym.Env[Any, Any], config: RareEvents, seed: int) -> None:
        super().__init__(env)
        self.config = config
        self._base = _reference_scale(_flat_box(env, "rare_events"), config.reference, config.unbounded_scale)
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._left = 0
        self._entry = 0
        self._sign = 1.0
        self.shocks = 0
        """Shocks started since the last reset (for tests and reports)."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self._rng = np.random.default_rng(self._seed)
        self._left, self.shocks = 0, 0
        obs, info = self.env.reset(seed=seed, options=options)  # no shock on the first observation
        return obs, info

    def observation(self, observation: Any) -> Any:
        obs = np.asarray(observation)
        # Three draws every step, used or not, so that the stream does not depend on the trajectory.
        start, entry, sign = self._rng.random(), self._rng.integers(obs.shape[0]), self._rng.random()
        if self._left == 0 and start < self.config.probability:
            self._left, self._entry, self._sign = self.config.duration, int(entry), 1.0 if sign < 0.5 else -1.0
            self.shocks += 1
        if self._left == 0:
            return obs
        self._left -= 1
        x = obs.astype(np.float64)
        scale = _scale_now(self._base, self.config.reference, x)[self._entry]
        x[self._entry] += self._sign * self.config.magnitude * scale
        return x.astype(obs.dtype, copy=False)


class ActuatorShockWrapper(gym.ActionWrapper[Any, Any, Any]):
    """Replaces the applied action by a uniformly random one for ``duration`` steps, rarely."""

    def __init__(self, env: gym.Env[Any, Any], config: RareEvents, seed: int) -> None:
        super().__init__(env)
        self.config = config
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._left = 0
        self.shocks = 0
        """Shocks started since the last reset (for tests and reports)."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self._rng = np.random.default_rng(self._seed)
        self._left, self.shocks = 0, 0
        self.action_space.seed(int(self._rng.integers(2**31)))
        return self.env.reset(seed=seed, options=options)

    def action(self, action: Any) -> Any:
        start = self._rng.random()
        random_action = self.action_space.sample()  # drawn every step: the stream does not depend on the trajectory
        if self._left == 0 and start < self.config.probability:
            self._left = self.config.duration
            self.shocks += 1
        if self._left == 0:
            return action
        self._left -= 1
        return random_action


class ActionDelayWrapper(gym.ActionWrapper[Any, Any, Any]):
    """Applies the action chosen ``steps`` steps ago; the first action is held until then."""

    def __init__(self, env: gym.Env[Any, Any], steps: int) -> None:
        super().__init__(env)
        self.steps = steps
        self._queue: collections.deque[Any] = collections.deque()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self._queue.clear()
        return self.env.reset(seed=seed, options=options)

    def action(self, action: Any) -> Any:
        self._queue.append(action)
        if len(self._queue) > self.steps:
            return self._queue.popleft()
        return self._queue[0]
