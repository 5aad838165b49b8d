"""Linear contextual bandits: LinUCB (Li et al., 2010) and linear Thompson sampling (Agrawal & Goyal, 2013)."""

from __future__ import annotations

import math
from itertools import accumulate
from typing import Any

import numpy as np

from rlops.errors import ConfigError
from rlops.policies.base import ActResult, BasePolicy, LearningBatch, PolicyInput, discrete_result
from rlops.policies.io import register
from rlops.policies.ridge import RidgeModel, check_rows, model_dims
from rlops.schema import BoxActions, CandidateActions, Schema


def _ridge_for(schema: Schema, l2: float) -> RidgeModel:
    if isinstance(schema.actions, BoxActions):
        raise ConfigError("linear bandits need discrete actions or per-request candidates, not a box")
    cand = schema.actions.width if isinstance(schema.actions, CandidateActions) else None
    dim, n_models = model_dims(schema.width, cand, schema.n_actions)
    return RidgeModel(dim, n_models, l2)


class _LinearBandit(BasePolicy):
    def __init__(self, schema: Schema, l2: float = 1.0) -> None:
        super().__init__(schema)
        self.model = _ridge_for(schema, l2)

    def update(self, batch: LearningBatch) -> None:
        """Add joined interactions (context, chosen action, reward) to the ridge model; rewards are maximised."""
        self.model.update_from(batch)

    def expected_rewards(self, batch: PolicyInput) -> np.ndarray | list[np.ndarray] | None:
        """The ridge model's posterior mean reward of every action."""
        if batch.candidates is None:
            return self.model.disjoint_moments(batch.x)[0]
        return [self.model.shared_moments(batch.x[i], batch.candidates[i])[1] for i in range(batch.n)]

    def state(self) -> dict[str, np.ndarray]:
        return {"A": self.model.A, "b": self.model.b}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        if state:
            self.model = RidgeModel.from_arrays(state["A"], state["b"], self.model.l2)


@register
class LinUCB(_LinearBandit):
    """Choose the action with the highest upper confidence bound ``theta^T x + alpha * sqrt(x^T A^-1 x)``.

    Ties go to the first action. With ``epsilon > 0`` a uniformly random action is taken with probability
    ``epsilon``; the logged propensity is then ``1 - epsilon + epsilon/K`` for the UCB action and ``epsilon/K``
    for the others (with ``epsilon = 0`` the policy is deterministic and logs 1.0, which off-policy evaluation
    cannot use: keep some exploration where the logs will train or evaluate other policies).

    Args:
        schema: fixed discrete actions (one model per action) or per-request candidates (one shared model).
        alpha: width of the confidence bonus, default 1.0.
        l2: ridge penalty, default 1.0.
        epsilon: uniform exploration mixed in, default 0.0.
    """

    kind = "linucb"

    def __init__(self, schema: Schema, alpha: float = 1.0, l2: float = 1.0, epsilon: float = 0.0) -> None:
        super().__init__(schema, l2)
        if not (alpha >= 0 and math.isfinite(alpha)) or not 0.0 <= epsilon < 1.0:  # NaN fails every comparison
            raise ConfigError(f"linucb: alpha must be >= 0 and epsilon in [0, 1), got {alpha}, {epsilon}")
        self.alpha, self.epsilon = alpha, epsilon

    def _greedy_probs(self, ucb: np.ndarray) -> np.ndarray:
        k = ucb.shape[-1]
        probs = np.full(ucb.shape, self.epsilon / k)
        best = np.argmax(ucb, axis=-1)
        if ucb.ndim == 1:
            probs[best] += 1.0 - self.epsilon
        else:
            probs[np.arange(ucb.shape[0]), best] += 1.0 - self.epsilon
        return probs

    def act(self, batch: PolicyInput, rng: np.random.Generator) -> ActResult:
        check_rows(batch, self.schema.n_actions)
        if batch.candidates is None:
            mean, var = self.model.disjoint_moments(batch.x)
            if batch.n == 1:
                return self._act_one(mean[0] + self.alpha * np.sqrt(var[0]), rng)
            probs = self._greedy_probs(mean + self.alpha * np.sqrt(var))
            if self.epsilon == 0.0:  # deterministic: skip the draw so the hot path stays short
                action = np.argmax(probs, axis=1)
                return ActResult(action=action, propensity=np.ones(batch.n), probabilities=probs)
            return discrete_result(probs, rng)
        rows = []
        for i in range(batch.n):
            _, mean_i, var_i = self.model.shared_moments(batch.x[i], batch.candidates[i])
            rows.append(self._greedy_probs(mean_i + self.alpha * np.sqrt(var_i)))
        return discrete_result(rows, rng)

    def _act_one(self, ucb: np.ndarray, rng: np.random.Generator) -> ActResult:
        """One decision without batch machinery; draws exactly what the batch path draws for one row."""
        k = ucb.shape[0]
        best = int(ucb.argmax())
        probs = [self.epsilon / k] * k
        probs[best] += 1.0 - self.epsilon
        if self.epsilon == 0.0:
            action = best
        else:
            running = list(accumulate(probs))
            draw = rng.random(1)[0] * running[-1]
            action = min(sum(c <= draw for c in running), k - 1)
        return ActResult(action=np.array([action], dtype=np.int64), propensity=np.array([probs[action]]),
                         probabilities=np.array([probs]))

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "l2": self.model.l2, "epsilon": self.epsilon}

    @classmethod
    def from_state(cls, schema: Schema, config: dict[str, Any], state: dict[str, np.ndarray]) -> LinUCB:
        policy = cls(schema, alpha=float(config["alpha"]), l2=float(config["l2"]),
                     epsilon=float(config.get("epsilon", 0.0)))
        policy._restore(state)
        return policy


@register
class LinearThompson(_LinearBandit):
    """Linear Thompson sampling with exact propensities.

    Plain Thompson sampling draws one parameter sample and acts greedily on it; the probability of the chosen
    action then has no closed form. Here the policy draws ``n_samples`` parameter samples per row, takes the
    empirical distribution of their argmax actions as its action distribution, and samples the action from it.
    The logged propensity is that distribution's mass on the chosen action: exactly the probability the policy
    used, never an after-the-fact estimate. With many samples it behaves as Thompson sampling.

    Args:
        schema: fixed discrete actions or per-request candidates.
        v: posterior scale (exploration), default 0.5.
        l2: ridge penalty, default 1.0.
        n_samples: parameter samples per decision, default 256.
    """

    kind = "linear_thompson"

    def __init__(self, schema: Schema, v: float = 0.5, l2: float = 1.0, n_samples: int = 256) -> None:
        super().__init__(schema, l2)
        if not (v > 0 and math.isfinite(v)) or n_samples < 1:
            raise ConfigError(f"linear_thompson: v must be > 0 and n_samples >= 1, got {v}, {n_samples}")
        self.v, self.n_samples = v, n_samples

    def _empirical(self, samples: np.ndarray) -> np.ndarray:
        """Distribution of argmax over the last axis of ``(..., M, K)`` score samples."""
        k = samples.shape[-1]
        winners = np.argmax(samples, axis=-1)
        if samples.ndim == 2:
            return np.bincount(winners, minlength=k) / samples.shape[0]
        counts = np.zeros((samples.shape[0], k))
        np.add.at(counts, (np.repeat(np.arange(samples.shape[0]), samples.shape[1]), winners.ravel()), 1.0)
        return counts / samples.shape[1]

    def act(self, batch: PolicyInput, rng: np.random.Generator) -> ActResult:
        check_rows(batch, self.schema.n_actions)
        m = self.n_samples
        if batch.candidates is None:
            # Disjoint models: each action's predicted reward is an independent normal, so sample scores directly.
            mean, var = self.model.disjoint_moments(batch.x)
            z = rng.standard_normal((batch.n, m, mean.shape[1]))
            samples = mean[:, None, :] + self.v * np.sqrt(var)[:, None, :] * z
            return discrete_result(self._empirical(samples), rng)
        chol = np.linalg.cholesky(self.model.A_inv[0])
        rows = []
        for i in range(batch.n):
            phi, _, _ = self.model.shared_moments(batch.x[i], batch.candidates[i])
            thetas = self.model.theta[0][None, :] + self.v * rng.standard_normal((m, chol.shape[0])) @ chol.T
            rows.append(self._empirical(thetas @ phi.T))
        return discrete_result(rows, rng)

    def config(self) -> dict[str, Any]:
        return {"v": self.v, "l2": self.model.l2, "n_samples": self.n_samples}

    @classmethod
    def from_state(cls, schema: Schema, config: dict[str, Any], state: dict[str, np.ndarray]) -> LinearThompson:
        policy = cls(schema, v=float(config["v"]), l2=float(config["l2"]), n_samples=int(config["n_samples"]))
        policy._restore(state)
        return policy
