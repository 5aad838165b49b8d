"""Rules for box actions: the Gaussian policies of PPO/A2C, SAC's squashed Gaussian, TD3's actor noise.

Each reproduces :class:`rlops.policies.SB3Policy`'s sampling and densities (see its docstring for what the density
of a clipped action means), from the float32 network outputs the graph computes. ``low`` and ``high`` are the
model's bounds as stored in the manifest; with ``deterministic`` the rule returns the mean action with
propensity 1.0 and draws nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlops.edge.rules import LOG_STD, MEAN, STD, Rule, RuleResult, normal_log_density


class _BoxRule(BaseModel):
    """Bounds of the box (the model's float32 bounds as float64) and whether to act with the mean."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    low: list[float] = Field(min_length=1)
    high: list[float] = Field(min_length=1)
    deterministic: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> _BoxRule:
        if len(self.low) != len(self.high) or not all(
                math.isfinite(lo) and math.isfinite(hi) and lo < hi for lo, hi in zip(self.low, self.high,
                                                                                        strict=True)):
            raise ValueError("low and high must be finite bounds of one length with low < high")
        return self

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.low, dtype=np.float64), np.asarray(self.high, dtype=np.float64)


def _mean(outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    mean = np.asarray(outputs[MEAN], dtype=np.float64)
    return mean.reshape(mean.shape[0], -1)


class Gaussian(_BoxRule):
    """PPO/A2C: ``u = mean + std * z``; the action is ``u`` clipped to the box, the propensity the density of ``u``."""

    rule: Literal[Rule.GAUSSIAN] = Rule.GAUSSIAN

    @property
    def outputs(self) -> tuple[str, ...]:
        return (MEAN,) if self.deterministic else (MEAN, STD)

    def act(self, outputs: Mapping[str, np.ndarray], rng: np.random.Generator) -> RuleResult:
        low, high = self._bounds()
        mean = _mean(outputs)
        n = mean.shape[0]
        if self.deterministic:
            return RuleResult(np.clip(mean, low, high), np.ones(n))
        log_std = np.log(np.asarray(outputs[STD], dtype=np.float64).reshape(mean.shape))
        z = rng.standard_normal(mean.shape)
        u = mean + np.exp(log_std) * z
        return RuleResult(np.clip(u, low, high), np.exp(normal_log_density(z, log_std)))


class SquashedGaussian(_BoxRule):
    """SAC: ``u = mean + exp(log_std) * z``, ``a = low + (tanh(u) + 1) * (high - low) / 2``; density of ``a``."""

    rule: Literal[Rule.SQUASHED_GAUSSIAN] = Rule.SQUASHED_GAUSSIAN

    @property
    def outputs(self) -> tuple[str, ...]:
        return (MEAN,) if self.deterministic else (MEAN, LOG_STD)

    def act(self, outputs: Mapping[str, np.ndarray], rng: np.random.Generator) -> RuleResult:
        low, high = self._bounds()
        half_range = 0.5 * (high - low)
        mean = _mean(outputs)
        n = mean.shape[0]
        if self.deterministic:
            return RuleResult(low + (np.tanh(mean) + 1.0) * half_range, np.ones(n))
        log_std = np.asarray(outputs[LOG_STD], dtype=np.float64).reshape(mean.shape)
        z = rng.standard_normal(mean.shape)
        u = mean + np.exp(log_std) * z
        # log(1 - tanh(u)^2) computed stably as 2 * (log 2 - u - softplus(-2u)).
        log_jacobian = 2.0 * (math.log(2.0) - u - np.logaddexp(0.0, -2.0 * u))
        log_density = (normal_log_density(z, log_std) - np.sum(log_jacobian, axis=1)
                       - float(np.sum(np.log(half_range))))
        return RuleResult(low + (np.tanh(u) + 1.0) * half_range, np.exp(log_density))


class ActorNoise(_BoxRule):
    """TD3/DDPG: the actor's action ``mu`` (its tanh output rescaled to the box) plus ``N(0, noise_std * half_range)``.

    Attributes:
        noise_std: noise in units of half the action range, > 0.
    """

    rule: Literal[Rule.ACTOR_NOISE] = Rule.ACTOR_NOISE
    noise_std: float = Field(gt=0.0)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (MEAN,)

    def act(self, outputs: Mapping[str, np.ndarray], rng: np.random.Generator) -> RuleResult:
        low, high = self._bounds()
        half_range = 0.5 * (high - low)
        mu = low + (_mean(outputs) + 1.0) * half_range
        n = mu.shape[0]
        if self.deterministic:
            return RuleResult(mu, np.ones(n))
        log_std = np.broadcast_to(np.log(self.noise_std * half_range), mu.shape)
        z = rng.standard_normal(mu.shape)
        action = mu + np.exp(log_std) * z
        return RuleResult(np.clip(action, low, high), np.exp(normal_log_density(z, log_std)))
