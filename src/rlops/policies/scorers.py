"""Scorers: functions from contexts to one score per available action, wrapped by exploration policies.

A scorer gives ``(n, K)`` scores for fixed actions or one ``(k_i,)`` array per row for candidate sets. Learnable
scorers also implement ``update``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from rlops.errors import ConfigError
from rlops.policies.base import LearningBatch, PolicyInput
from rlops.policies.ridge import RidgeModel, joint_features, model_dims
from rlops.schema import BoxActions, CandidateActions, Schema

Scores = np.ndarray | list[np.ndarray]


@runtime_checkable
class Scorer(Protocol):
    kind: ClassVar[str]

    def scores(self, batch: PolicyInput) -> Scores: ...
    def config(self) -> dict[str, Any]: ...
    def state(self) -> dict[str, np.ndarray]: ...


class LinearScorer:
    """Fixed linear scores ``x @ weights.T + bias`` for fixed discrete actions.

    Args:
        weights: ``(K, d)`` one row per action over the schema's encoded columns.
        bias: ``(K,)``, default zeros.
    """

    kind: ClassVar[str] = "linear"

    def __init__(self, weights: np.ndarray, bias: np.ndarray | None = None) -> None:
        self.weights = np.asarray(weights, dtype=np.float64)
        if self.weights.ndim != 2:
            raise ConfigError(f"linear scorer weights must be (K, d), got shape {self.weights.shape}")
        self.bias = np.zeros(self.weights.shape[0]) if bias is None else np.asarray(bias, dtype=np.float64)

    @classmethod
    def for_schema(cls, schema: Schema, config: dict[str, Any], state: dict[str, np.ndarray]) -> LinearScorer:
        return cls(state["weights"], state.get("bias"))

    def scores(self, batch: PolicyInput) -> Scores:
        if batch.candidates is not None:
            raise ConfigError("the linear scorer needs fixed discrete actions")
        return batch.x @ self.weights.T + self.bias

    def config(self) -> dict[str, Any]:
        return {}

    def state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights, "bias": self.bias}


class RidgeScorer:
    """Online ridge regression of reward on context (per action), or on joint features for candidate sets.

    Args:
        model: the ridge model; :meth:`for_schema` builds an empty one.
    """

    kind: ClassVar[str] = "ridge"

    def __init__(self, model: RidgeModel) -> None:
        self.model = model

    @classmethod
    def for_schema(cls, schema: Schema, config: dict[str, Any], state: dict[str, np.ndarray]) -> RidgeScorer:
        l2 = float(config.get("l2", 1.0))
        if state:
            return cls(RidgeModel.from_arrays(state["A"], state["b"], l2))
        if isinstance(schema.actions, BoxActions):
            raise ConfigError("the ridge scorer needs discrete actions or per-request candidates")
        cand = schema.actions.width if isinstance(schema.actions, CandidateActions) else None
        dim, n_models = model_dims(schema.width, cand, schema.n_actions)
        return cls(RidgeModel(dim, n_models, l2))

    def scores(self, batch: PolicyInput) -> Scores:
        if batch.candidates is None:
            return RidgeModel.disjoint_phi(batch.x) @ self.model.theta.T
        return [joint_features(batch.x[i], c) @ self.model.theta[0] for i, c in enumerate(batch.candidates)]

    def update(self, batch: LearningBatch) -> None:
        self.model.update_from(batch)

    def config(self) -> dict[str, Any]:
        return {"l2": self.model.l2}

    def state(self) -> dict[str, np.ndarray]:
        return {"A": self.model.A, "b": self.model.b}


SCORERS: dict[str, Any] = {LinearScorer.kind: LinearScorer, RidgeScorer.kind: RidgeScorer}


def build_scorer(schema: Schema, kind: str, config: dict[str, Any], state: dict[str, np.ndarray]) -> Any:
    """Construct a scorer by kind (``linear`` or ``ridge``)."""
    if kind not in SCORERS:
        raise ConfigError(f"scorer: unknown kind {kind!r} (known: {sorted(SCORERS)})")
    return SCORERS[kind].for_schema(schema, config, state)
