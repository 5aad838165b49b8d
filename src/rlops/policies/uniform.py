"""Uniform random policy: the logging policy of choice for unbiased exploration data."""

from __future__ import annotations

from typing import Any

import numpy as np

from rlops.policies.base import ActResult, BasePolicy, PolicyInput
from rlops.policies.io import register
from rlops.schema import BoxActions, Schema


@register
class UniformRandom(BasePolicy):
    """Every available action with equal probability; for box actions, uniform over the box.

    Propensity: ``1/K`` for K available actions; for a box, the density ``1 / prod(high - low)``.
    """

    kind = "uniform"

    def act(self, batch: PolicyInput, rng: np.random.Generator) -> ActResult:
        space = self.schema.actions
        if isinstance(space, BoxActions):
            low, high = np.asarray(space.low), np.asarray(space.high)
            action = low + (high - low) * rng.random((batch.n, space.dim))
            density = 1.0 / float(np.prod(high - low))
            return ActResult(action=action, propensity=np.full(batch.n, density))
        counts = batch.n_actions(self.schema)
        if batch.candidates is None:
            k = counts[0] if counts else 1
            action = rng.integers(0, k, size=batch.n).astype(np.int64)
            probs = np.full((batch.n, k), 1.0 / k)
            return ActResult(action=action, propensity=np.full(batch.n, 1.0 / k), probabilities=probs)
        action = np.array([rng.integers(0, k) for k in counts], dtype=np.int64)
        return ActResult(
            action=action,
            propensity=np.array([1.0 / k for k in counts]),
            probabilities=[np.full(k, 1.0 / k) for k in counts],
        )

    @classmethod
    def from_state(cls, schema: Schema, config: dict[str, Any], state: dict[str, np.ndarray]) -> UniformRandom:
        return cls(schema)
