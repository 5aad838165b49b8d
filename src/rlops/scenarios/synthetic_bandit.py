"""A built-in contextual bandit with a known reward model: synthetic users choosing among content categories.

Each user has an age, a device, whether they are returning, an activity level and a 4-dimensional taste vector.
The probability that a user clicks the content shown is linear in the encoded features (one weight vector per
action) and kept inside [0.02, 0.95]; the best action differs by segment, so a policy that ignores the context
leaves clicks on the table. Because the model is known, the optimum ``E[max_a p(x, a)]`` is exact, and any policy's
expected click rate on a set of contexts can be computed without sampling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlops.schema import Schema

ACTIONS = ["news", "sports", "tech", "travel", "food"]
DEVICES = ["mobile", "desktop", "tablet"]


def bandit_schema() -> Schema:
    """The schema of the synthetic users (9 features' worth of columns, 5 actions)."""
    return Schema.model_validate({
        "name": "synthetic-users",
        "features": [
            {"name": "age", "type": "float", "min": 18, "max": 90, "description": "years"},
            {"name": "device", "type": "categorical", "vocabulary": DEVICES},
            {"name": "returning", "type": "bool", "default": False},
            {"name": "activity", "type": "float", "min": 0, "max": 1, "description": "sessions per day, scaled"},
            {"name": "taste", "type": "vector", "size": 4, "min": -1, "max": 1},
        ],
        "actions": {"type": "discrete", "names": ACTIONS},
    })


@dataclass
class SyntheticBandit:
    """Users and their click model.

    Args:
        seed: seeds the click model's weights (the *world*); contexts and clicks take their own generators.
        shift: moves the context distribution (older users, more desktop); 0 is the training world.
    """

    seed: int = 0
    shift: float = 0.0
    schema: Schema = field(default_factory=bandit_schema)

    def __post_init__(self) -> None:
        world = np.random.default_rng(self.seed)
        k, d = len(ACTIONS), self.schema.width
        # Weights on encoded columns: age is scaled inside expected(), so all columns are O(1).
        self.weights = world.normal(0.0, 0.12, size=(k, d))
        self.bias = world.uniform(0.15, 0.35, size=k)

    def sample_contexts(self, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        """Draw ``n`` users (as raw context dicts the schema accepts)."""
        age = np.clip(rng.normal(38 + 15 * self.shift, 12, n), 18, 90)
        device_p = np.array([0.6 - 0.3 * self.shift, 0.3 + 0.25 * self.shift, 0.1 + 0.05 * self.shift])
        device = rng.choice(len(DEVICES), size=n, p=device_p / device_p.sum())
        returning = rng.random(n) < 0.4
        activity = rng.beta(2, 5, n)
        taste = np.clip(rng.normal(0.2 * self.shift, 0.5, (n, 4)), -1, 1)
        return [
            {"age": round(float(age[i]), 2), "device": DEVICES[int(device[i])], "returning": bool(returning[i]),
             "activity": round(float(activity[i]), 4), "taste": [round(float(t), 4) for t in taste[i]]}
            for i in range(n)
        ]

    def _scaled(self, x: np.ndarray) -> np.ndarray:
        scaled = x.copy()
        scaled[:, 0] = (scaled[:, 0] - 40.0) / 20.0  # age column
        return scaled

    def click_probability(self, x: np.ndarray) -> np.ndarray:
        """Click probability of every action, ``(n, K)``, for encoded contexts ``x``."""
        return np.clip(self._scaled(x) @ self.weights.T + self.bias, 0.02, 0.95)

    def sample_clicks(self, x: np.ndarray, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Whether each user clicked the action shown (bool array)."""
        p = self.click_probability(x)[np.arange(len(actions)), actions]
        return rng.random(len(actions)) < p

    def optimal_value(self, x: np.ndarray) -> float:
        """Expected click rate of the best action for every context: the ceiling any policy can reach."""
        return float(self.click_probability(x).max(axis=1).mean())

    def value_of(self, x: np.ndarray, actions: np.ndarray) -> float:
        """Expected click rate of the given actions on these contexts."""
        return float(self.click_probability(x)[np.arange(len(actions)), actions].mean())
