"""Exploration over any scorer: epsilon-greedy and softmax (Boltzmann)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rlops.errors import ConfigError
from rlops.policies.base import ActResult, BasePolicy, LearningBatch, PolicyInput, discrete_result
from rlops.policies.io import register
from rlops.policies.scorers import Scorer, Scores, build_scorer
from rlops.schema import Schema


def _per_row(scores: Scores, fn: Any) -> np.ndarray | list[np.ndarray]:
    if isinstance(scores, np.ndarray):
        return fn(scores)  # type: ignore[no-any-return]
    return [fn(s[None, :])[0] for s in scores]


class _ScorerPolicy(BasePolicy):
    def __init__(self, schema: Schema, scorer: Scorer) -> None:
        super().__init__(schema)
        if schema.is_continuous:
            raise ConfigError(f"{self.kind} needs discrete actions or per-request candidates, not a box")
        self.scorer = scorer

    def update(self, batch: LearningBatch) -> None:
        """Forward joined interactions to the scorer when it learns (a fixed scorer ignores them)."""
        update = getattr(self.scorer, "update", None)
        if update is not None:
            update(batch)

    def expected_rewards(self, batch: PolicyInput) -> np.ndarray | list[np.ndarray] | None:
        """The scorer's scores, when it is a reward model (a ridge scorer learns expected rewards)."""
        return self.scorer.scores(batch) if self.scorer.kind == "ridge" else None

    def _params(self) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {**self._params(), "scorer": {"kind": self.scorer.kind, "config": self.scorer.config()}}

    def state(self) -> dict[str, np.ndarray]:
        return {f"scorer.{k}": v for k, v in self.scorer.state().items()}

    @staticmethod
    def _scorer_from(schema: Schema, config: dict[str, Any], state: dict[str, np.ndarray]) -> Any:
        spec = config["scorer"]
        sub = {k.removeprefix("scorer."): v for k, v in state.items() if k.startswith("scorer.")}
        return build_scorer(schema, str(spec["kind"]), dict(spec.get("config", {})), sub)


@register
class EpsilonGreedy(_ScorerPolicy):
    """The best-scoring action with probability ``1 - epsilon``, a uniformly random one with probability ``epsilon``.

    Logged propensities are exact: ``1 - epsilon + epsilon/K`` for the greedy action (first one on ties) and
    ``epsilon/K`` for every other.

    Args:
        schema: discrete actions or per-request candidates.
        scorer: a :class:`~rlops.policies.scorers.Scorer`.
        epsilon: exploration rate in (0, 1], default 0.1.
    """

    kind = "epsilon_greedy"

    def __init__(self, schema: Schema, scorer: Scorer, epsilon: float = 0.1) -> None:
        super().__init__(schema, scorer)
        if not 0.0 < epsilon <= 1.0:
            raise ConfigError(f"epsilon_greedy: epsilon must be in (0, 1], got {epsilon}")
        self.epsilon = epsilon

    def _probs(self, scores: np.ndarray) -> np.ndarray:
        k = scores.shape[1]
        probs = np.full(scores.shape, self.epsilon / k)
        probs[np.arange(scores.shape[0]), np.argmax(scores, axis=1)] += 1.0 - self.epsilon
        return probs

    def act(self, batch: PolicyInput, rng: np.random.Generator) -> ActResult:
        return discrete_result(_per_row(self.scorer.scores(batch), self._probs), rng)

    def _params(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon}

    @classmethod
    def from_state(cls, schema: Schema, config: dict[str, Any], state: dict[str, np.ndarray]) -> EpsilonGreedy:
        return cls(schema, cls._scorer_from(schema, config, state), epsilon=float(config["epsilon"]))


@register
class Softmax(_ScorerPolicy):
    """Actions with probability proportional to ``exp(score / temperature)``.

    Args:
        schema: discrete actions or per-request candidates.
        scorer: a :class:`~rlops.policies.scorers.Scorer`.
        temperature: > 0, default 1.0; lower is greedier.
        min_probability: floor mixed in so every action keeps mass (off-policy evaluation needs it), default 0.
    """

    kind = "softmax"

    def __init__(self, schema: Schema, scorer: Scorer, temperature: float = 1.0,
                 min_probability: float = 0.0) -> None:
        super().__init__(schema, scorer)
        if temperature <= 0 or not 0.0 <= min_probability < 1.0:
            raise ConfigError(f"softmax: temperature must be > 0 and min_probability in [0, 1), got "
                              f"{temperature}, {min_probability}")
        self.temperature, self.min_probability = temperature, min_probability

    def _probs(self, scores: np.ndarray) -> np.ndarray:
        z = scores / self.temperature
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        k = scores.shape[1]
        floor = min(self.min_probability, 1.0 / k)
        return (1.0 - floor * k) * p + floor

    def act(self, batch: PolicyInput, rng: np.random.Generator) -> ActResult:
        return discrete_result(_per_row(self.scorer.scores(batch), self._probs), rng)

    def _params(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "min_probability": self.min_probability}

    @classmethod
    def from_state(cls, schema: Schema, config: dict[str, Any], state: dict[str, np.ndarray]) -> Softmax:
        return cls(schema, cls._scorer_from(schema, config, state), temperature=float(config["temperature"]),
                   min_probability=float(config.get("min_probability", 0.0)))
