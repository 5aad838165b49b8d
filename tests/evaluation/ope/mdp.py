"""Small sequential problems whose policy values are known exactly (test helpers).

``TabularMDP``: a few states, two actions, random termination; values by finite-horizon dynamic programming.
``LinearQuadratic``: a scalar linear-Gaussian system with quadratic cost, a linear target policy and random
termination; the value of ``u = -k s`` is ``-(p * var(s_0) + c)`` with ``p`` and ``c`` in closed form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlops.evaluation.ope import EpisodeData


@dataclass(frozen=True)
class TabularMDP:
    d0: np.ndarray  # (S,) initial state distribution
    move: np.ndarray  # (S, A, S) transition probabilities *without* termination (rows sum to 1 - stop)
    mean_reward: np.ndarray  # (S, A) Bernoulli reward means
    pi_b: np.ndarray  # (S, A)
    pi_e: np.ndarray  # (S, A)
    discount: float
    horizon: int

    def q_values(self, policy: np.ndarray | None = None) -> np.ndarray:
        """``(H, S, A)`` time-indexed ``Q_t`` of ``policy`` (default the target) by backward induction."""
        pi = self.pi_e if policy is None else policy
        s, a = self.mean_reward.shape
        q = np.zeros((self.horizon, s, a))
        v_next = np.zeros(s)
        for t in range(self.horizon - 1, -1, -1):
            q[t] = self.mean_reward + self.discount * self.move @ v_next
            v_next = (pi * q[t]).sum(axis=1)
        return q

    def value(self, policy: np.ndarray | None = None) -> float:
        pi = self.pi_e if policy is None else policy
        return float(self.d0 @ (pi * self.q_values(pi)[0]).sum(axis=1))

    def sample(self, n_episodes: int, seed: int) -> EpisodeData:
        """Episodes under the logging policy (simulated step by step, vectorised over episodes)."""
        rng = np.random.default_rng(seed)
        n_states, n_actions = self.mean_reward.shape
        state = rng.choice(n_states, size=n_episodes, p=self.d0)
        alive = np.arange(n_episodes)
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("episode", "step", "state", "action", "reward")}
        for t in range(self.horizon):
            s = state[alive]
            action = (np.cumsum(self.pi_b[s], axis=1) < rng.random(len(s))[:, None]).sum(axis=1)
            action = np.minimum(action, n_actions - 1)
            reward = (rng.random(len(s)) < self.mean_reward[s, action]).astype(np.float64)
            for key, value in (("episode", alive), ("step", np.full(len(s), t)), ("state", s), ("action", action),
                               ("reward", reward)):
                cols[key].append(value)
            probs = np.concatenate([self.move[s, action], 1 - self.move[s, action].sum(axis=1, keepdims=True)], 1)
            nxt = (np.cumsum(probs, axis=1) < rng.random(len(s))[:, None]).sum(axis=1)
            keep = nxt < n_states
            state[alive[keep]] = nxt[keep]
            alive = alive[keep]
            if alive.size == 0:
                break
        arr = {k: np.concatenate(v) for k, v in cols.items()}
        s, a = arr["state"], arr["action"]
        return EpisodeData(episode=arr["episode"], step=arr["step"], state=np.eye(n_states)[s], action=a,
                           reward=arr["reward"], propensity=self.pi_b[s, a], pi_e=self.pi_e[s],
                           reward_bounds=(0.0, 1.0))

    def exact_model(self, data: EpisodeData) -> EpisodeData:
        """``data`` with the true ``Q_t(s_t, a_t)`` and ``V_t(s_t)`` attached (for PDDR with a perfect model)."""
        q = self.q_values()
        s = data.state.argmax(axis=1)
        q_rows = q[data.step, s]
        return EpisodeData(episode=data.episode, step=data.step, state=data.state, action=data.action,
                           reward=data.reward, propensity=data.propensity, pi_e=data.pi_e,
                           q_hat=q_rows[np.arange(data.n), data.action], v_hat=(self.pi_e[s] * q_rows).sum(axis=1),
                           reward_bounds=data.reward_bounds)


def make_mdp(discount: float = 0.9, horizon: int = 40) -> TabularMDP:
    rng = np.random.default_rng(2024)
    n_states, n_actions, stop = 3, 2, 0.25
    move = rng.dirichlet(np.ones(n_states), size=(n_states, n_actions)) * (1 - stop)
    mean_reward = rng.uniform(0.1, 0.9, size=(n_states, n_actions))
    pi_b = np.full((n_states, n_actions), 0.5)
    pi_e = np.where(mean_reward == mean_reward.max(axis=1, keepdims=True), 0.8, 0.2)
    return TabularMDP(np.array([0.5, 0.3, 0.2]), move, mean_reward, pi_b, pi_e, discount, horizon)


@dataclass(frozen=True)
class LinearQuadratic:
    """``s' = a s + b u + N(0, noise^2)``, reward ``-(s^2 + u^2)``, termination with probability ``stop`` per step."""

    a: float = 0.9
    b: float = 0.5
    noise: float = 0.2
    s0_std: float = 1.0
    stop: float = 0.1
    discount: float = 0.95
    k_logging: float = 0.4
    logging_std: float = 0.3
    k_target: float = 0.8
    horizon: int = 200

    def value(self) -> float:
        """Exact value of ``u = -k_target s``: ``-(p var(s_0) + c)`` with the termination folded into gamma."""
        g = self.discount * (1 - self.stop)
        k = self.k_target
        p = (1 + k * k) / (1 - g * (self.a - self.b * k) ** 2)
        c = g * p * self.noise**2 / (1 - g)
        return -(p * self.s0_std**2 + c)

    def sample(self, n_episodes: int, seed: int) -> EpisodeData:
        rng = np.random.default_rng(seed)
        state = rng.normal(0.0, self.s0_std, n_episodes)
        alive = np.arange(n_episodes)
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("episode", "step", "state", "action", "reward", "p")}
        for t in range(self.horizon):
            s = state[alive]
            u = -self.k_logging * s + rng.normal(0.0, self.logging_std, len(s))
            density = np.exp(-0.5 * ((u + self.k_logging * s) / self.logging_std) ** 2) / (
                self.logging_std * math.sqrt(2 * math.pi))
            for key, value in (("episode", alive), ("step", np.full(len(s), t)), ("state", s), ("action", u),
                               ("reward", -(s * s + u * u)), ("p", density)):
                cols[key].append(value)
            state[alive] = self.a * s + self.b * u + rng.normal(0.0, self.noise, len(s))
            alive = alive[rng.random(len(alive)) >= self.stop]
            if alive.size == 0:
                break
        arr = {k: np.concatenate(v) for k, v in cols.items()}
        s = arr["state"]
        return EpisodeData(episode=arr["episode"], step=arr["step"], state=s[:, None], action=arr["action"][:, None],
                           reward=arr["reward"], propensity=arr["p"],
                           target_action=(-self.k_target * s)[:, None, None])
