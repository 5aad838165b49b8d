"""Policies whose partial dependence and importance are known in closed form, for the global-explanation tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rlops.schema import Schema

SCHEMA = Schema.model_validate({
    "features": [
        {"name": "x1", "type": "float", "min": -10, "max": 10},
        {"name": "x2", "type": "float"},
        {"name": "n", "type": "int", "min": 0, "max": 50},
        {"name": "flag", "type": "bool"},
        {"name": "color", "type": "categorical", "vocabulary": ["red", "green", "blue"]},
        {"name": "emb", "type": "vector", "size": 2, "min": -5, "max": 5},
    ],
    "actions": {"type": "discrete", "names": ["a", "b", "c"]},
})
ACTIONS = ["a", "b", "c"]
COLUMNS = {"x1": 0, "x2": 1, "n": 2, "flag": 3, "color": slice(4, 7), "emb": slice(7, 9)}


def contexts(n: int, seed: int = 1) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    colors = ["red", "green", "blue"]
    return [{"x1": float(rng.normal()), "x2": float(rng.normal(1.0, 2.0)), "n": int(rng.integers(0, 20)),
             "flag": bool(rng.random() < 0.3), "color": colors[int(rng.integers(0, 3))],
             "emb": [float(v) for v in rng.uniform(-2, 2, size=2)]} for _ in range(n)]


def data(n: int, seed: int = 1) -> np.ndarray:
    return SCHEMA.encode([SCHEMA.validate_context(c) for c in contexts(n, seed)])


def linear(weights: np.ndarray, bias: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """s_a(x) = w_a · x + c_a."""
    return lambda x: x @ weights.T + bias


def weights(seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(len(ACTIONS), SCHEMA.width)), rng.normal(size=len(ACTIONS))


class Counting:
    """Wraps a score function and counts its calls and the rows it scored."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.fn = fn
        self.calls = 0
        self.rows = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.rows += x.shape[0]
        return self.fn(x)
