"""What the edge runtime does with a graph's outputs: the rules that turn scores into a sampled action.

An exported graph computes numbers (scores, probabilities, Gaussian parameters); the policy's exploration, where
the random numbers are drawn, runs here in numpy with the caller's generator, exactly as the policy does in
:mod:`rlops.policies`. The manifest names the rule and its parameters; each rule is a small pydantic model (in
:mod:`rlops.edge.discrete` and :mod:`rlops.edge.continuous`) that says which graph outputs it reads and acts on
a whole batch at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


class Rule(StrEnum):
    """The exploration rules an exported policy can use."""

    GREEDY = "greedy"  # the best score, propensity 1
    EPSILON_GREEDY = "epsilon_greedy"  # 1 - eps + eps/K for the best score, eps/K for the others
    SOFTMAX = "softmax"  # exp(score / temperature), normalised, mixed with a floor
    CATEGORICAL = "categorical"  # sample from the probabilities the graph computes
    THOMPSON = "thompson"  # linear Thompson: the empirical distribution of arg-maxes of sampled scores
    GAUSSIAN = "gaussian"  # PPO/A2C box: N(mean, std), clipped to the box; density of the unclipped sample
    SQUASHED_GAUSSIAN = "squashed_gaussian"  # SAC: tanh-squashed N(mean, exp(log_std)) rescaled to the box
    ACTOR_NOISE = "actor_noise"  # TD3/DDPG: the actor's action plus Gaussian noise, clipped to the box


#: Names of graph outputs. A graph has the outputs its rule reads, and no others.
SCORES, PROBABILITIES, MEAN, VARIANCE, STD, LOG_STD = "scores", "probabilities", "mean", "variance", "std", "log_std"


@dataclass(frozen=True)
class RuleResult:
    """What a rule chose for each row.

    Attributes:
        action: int64 ``(n,)`` indices into the actions, or float64 ``(n, dim)`` vectors for box actions.
        propensity: float64 ``(n,)``: the probability of the chosen action (discrete), the density of the sampled
            action (box), or 1.0 for a deterministic rule.
        probabilities: float64 ``(n, K)`` for discrete actions, else ``None``.
    """

    action: np.ndarray
    propensity: np.ndarray
    probabilities: np.ndarray | None = None


class ExplorationRule(Protocol):
    """A rule: the graph outputs it reads, and how it acts on them."""

    @property
    def outputs(self) -> tuple[str, ...]:
        """Names of the graph outputs :meth:`act` reads."""
        ...

    def act(self, outputs: Mapping[str, np.ndarray], rng: np.random.Generator) -> RuleResult:
        """Choose one action per row, drawing every random number from ``rng``."""
        ...


def sample_rows(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of an ``(n, K)`` probability matrix, from one uniform draw per row.

    The same draw and arithmetic as :func:`rlops.policies.base.sample_rows`, so a policy and its export given the
    same generator state choose the same actions.
    """
    cumulative = np.cumsum(probabilities, axis=1)
    u = rng.random(probabilities.shape[0]) * cumulative[:, -1]
    chosen = (cumulative <= u[:, None]).sum(axis=1)
    return np.minimum(chosen, probabilities.shape[1] - 1).astype(np.int64)


def sampled(probabilities: np.ndarray, rng: np.random.Generator) -> RuleResult:
    """Sample one action per row and report the probability of what was sampled."""
    action = sample_rows(probabilities, rng)
    propensity = probabilities[np.arange(action.shape[0]), action]
    return RuleResult(action, propensity, probabilities)


def normal_log_density(z: np.ndarray, log_std: np.ndarray) -> np.ndarray:
    """Row-wise log density of ``mean + std * z`` under the diagonal Gaussian ``N(mean, std^2)``."""
    return np.sum(-0.5 * z**2 - log_std - _LOG_SQRT_2PI, axis=1)
