"""Rules for a fixed set of discrete actions: greedy, epsilon-greedy, softmax, categorical, linear Thompson.

Each computes the same probabilities as the policy it stands for (:mod:`rlops.policies.exploration`,
:mod:`rlops.policies.linear`, :mod:`rlops.policies.sb3`), in float64, and samples with the same draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rlops.edge.rules import MEAN, PROBABILITIES, SCORES, VARIANCE, Rule, RuleResult, sampled


class _DiscreteRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_hot_best(scores: np.ndarray, mass: float, base: float) -> np.ndarray:
    """``base`` everywhere plus ``mass`` on each row's first arg-max."""
    probabilities = np.full(scores.shape, base)
    probabilities[np.arange(scores.shape[0]), np.argmax(scores, axis=1)] += mass
    return probabilities


class Greedy(_DiscreteRule):
    """The best-scoring action (the first on ties) with propensity 1; no random number is drawn."""

    rule: Literal[Rule.GREEDY] = Rule.GREEDY

    @property
    def outputs(self) -> tuple[str, ...]:
        return (SCORES,)

    def act(self, outputs: Mapping[str, np.ndarray], rng: np.random.Generator) -> RuleResult:
        scores = np.asarray(outputs[SCORES], dtype=np.float64)
        action = np.argmax(scores, axis=1).astype(np.int64)
        probabilities = np.zeros(scores.shape)
        probabilities[np.arange(scores.shape[0]), action] = 1.0
        return RuleResult(action, np.ones(scores.shape[0]), probabilities)


class EpsilonGreedy(_DiscreteRule):
    """``1 - epsilon + epsilon/K`` on the best score (first on ties), ``epsilon/K`` on every other action.

    Attributes:
        epsilon: exploration rate in [0, 1].
    """

    rule: Literal[Rule.EPSILON_GREEDY] = Rule.EPSILON_GREEDY
    epsilon: float = Field(ge=0.0, le=1.0)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (SCORES,)

    def act(self, outputs: Mapping[str, np.ndarray], rng: np.random.Generator) -> RuleResult:
        scores = np.asarray(outputs[SCORES], dtype=np.float64)
        k = scores.shape[1]
        return sampled(_one_hot_best(scores, 1.0 - self.epsilon, self.epsilon / k), rng)


class Softmax(_DiscreteRule):
    """Probabilities ``exp(score / temperature)`` normalised, mixed with a floor ``min(min_probability, 1/K)``.

    Attributes:
        temperature: > 0; lower is greedier.
        min_probability: the floor, in [0, 1).
    """

    rule: Literal[Rule.SOFTMAX] = Rule.SOFTMAX
    temperature: float = Field(gt=0.0)
    min_probability: float = Field(default=0.0, ge=0.0, lt=1.0)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (SCORES,)

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """The softmax probabilities of a ``(n, K)`` score matrix."""
        z = scores / self.temperature
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        k = scores.shape[1]
        floor = min(self.min_probability, 1.0 / k)
        return (1.0 - floor * k) * p + floor

    def act(self, outputs: Mapping[str, np.ndarray], rng: np.random.Generator) -> RuleResult:
        return sampled(self.probabilities(np.asarray(outputs[SCORES], dtype=np.float64)), rng)


class Categorical(_DiscreteRule):
    """Sample from the probabilities the graph computes (PPO/A2C), renormalised in float64 as the SB3 adapter does."""

    rule: Literal[Rule.CATEGORICAL] = Rule.CATEGORICAL

    @property
    def outputs(self) -> tuple[str, ...]:
        return (PROBABILITIES,)

    def act(self, outputs: Mapping[str, np.ndarray], rng: np.random.Generator) -> RuleResult:
        probabilities = np.asarray(outputs[PROBABILITIES], dtype=np.float64)
        probabilities /= probabilities.sum(axis=1, keepdims=True)  # float32 softmax: restore the sum to 1
        return sampled(probabilities, rng)


class Thompson(_DiscreteRule):
    """Linear Thompson sampling with exact propensities (see :class:`rlops.policies.LinearThompson`).

    Per row, ``n_samples`` score samples ``mean + v * sqrt(variance) * z`` (``z`` standard normal, shape
    ``(n, n_samples, K)``); the action distribution is the empirical distribution of their arg-maxes.

    Attributes:
        v: posterior scale, > 0.
        n_samples: samples per decision, >= 1.
    """

    rule: Literal[Rule.THOMPSON] = Rule.THOMPSON
    v: float = Field(gt=0.0)
    n_samples: int = Field(ge=1)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (MEAN, VARIANCE)

    def act(self, outputs: Mapping[str, np.ndarray], rng: np.random.Generator) -> RuleResult:
        mean = np.asarray(outputs[MEAN], dtype=np.float64)
        std = np.sqrt(np.asarray(outputs[VARIANCE], dtype=np.float64))
        n, k = mean.shape
        z = rng.standard_normal((n, self.n_samples, k))
        winners = np.argmax(mean[:, None, :] + self.v * std[:, None, :] * z, axis=2)
        cells = (np.arange(n)[:, None] * k + winners).ravel()  # row-major (row, action) cell of every sample
        counts = np.bincount(cells, minlength=n * k).reshape(n, k)
        return sampled(counts / self.n_samples, rng)
