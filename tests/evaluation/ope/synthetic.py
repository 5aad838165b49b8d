"""Synthetic contextual bandits whose target-policy value is known exactly (test helper).

Contexts come from a few types with known probabilities; the expected reward ``q(type, a)`` is a fixed table and
rewards are Bernoulli, so the target policy's value is ``sum_x p(x) sum_a pi_e(a | x) q(x, a)``, computed exactly.
The features are the one-hot type plus noise columns, so a per-action ridge regression can learn ``q`` well but not
perfectly. The tables are fixed (seed 12345); ``seed`` only draws the logged data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlops.evaluation.ope import BanditData


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class TabularBandit:
    """The fixed problem: type probabilities, reward table, logging and target policies."""

    p_type: np.ndarray  # (M,)
    q: np.ndarray  # (M, K)
    pi_b: np.ndarray  # (M, K)
    pi_e: np.ndarray  # (M, K)
    noise_features: int

    @property
    def truth(self) -> float:
        """The target policy's exact value."""
        return float(self.p_type @ (self.pi_e * self.q).sum(axis=1))

    @property
    def logging_value(self) -> float:
        return float(self.p_type @ (self.pi_b * self.q).sum(axis=1))

    def sample(self, n: int, seed: int, *, target: np.ndarray | None = None) -> BanditData:
        """``n`` logged decisions under ``pi_b``; the target is ``pi_e`` (or ``target``, an ``(M, K)`` table)."""
        rng = np.random.default_rng(seed)
        m, k = self.q.shape
        types = rng.choice(m, size=n, p=self.p_type)
        cum = np.cumsum(self.pi_b[types], axis=1)
        action = np.minimum((cum < rng.random(n)[:, None]).sum(axis=1), k - 1)
        reward = (rng.random(n) < self.q[types, action]).astype(np.float64)
        x = np.hstack([np.eye(m)[types], rng.normal(size=(n, self.noise_features))])
        pi_e = (self.pi_e if target is None else target)[types]
        return BanditData(action=action, reward=reward, propensity=self.pi_b[types, action], pi_e=pi_e, x=x,
                          pi_b=self.pi_b[types], reward_bounds=(0.0, 1.0))


def make_bandit(n_types: int = 4, n_actions: int = 5, noise_features: int = 2, temperature: float = 4.0,
                floor: float = 0.2) -> TabularBandit:
    """A fixed problem: the logging policy mixes a random softmax with ``floor`` of uniform exploration; the
    target is a softmax of the true rewards (better than logging, well covered)."""
    rng = np.random.default_rng(12345)
    p_type = rng.dirichlet(np.full(n_types, 5.0))
    q = rng.uniform(0.1, 0.9, size=(n_types, n_actions))
    pi_b = (1 - floor) * _softmax(rng.normal(size=(n_types, n_actions))) + floor / n_actions
    pi_e = _softmax(temperature * q)
    return TabularBandit(p_type, q, pi_b, pi_e, noise_features)
