"""A schema with every kind of feature, and contexts drawn from it with chosen shifts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rlops.schema import Schema

SCHEMA: dict[str, Any] = {
    "features": [
        {"name": "temperature", "type": "float", "min": -50, "max": 60},
        {"name": "visits", "type": "int", "min": 0},
        {"name": "color", "type": "categorical", "vocabulary": ["red", "green", "blue"], "unknown": "other"},
        {"name": "member", "type": "bool"},
        {"name": "embedding", "type": "vector", "size": 2},
    ],
    "actions": {"type": "discrete", "names": ["a", "b", "c"]},
}


@pytest.fixture
def schema() -> Schema:
    return Schema.model_validate(SCHEMA)


def contexts(n: int, seed: int, temperature_shift: float = 0.0, blue: float = 0.2) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    colors = rng.choice(["red", "green", "blue"], size=n, p=[(1 - blue) / 2, (1 - blue) / 2, blue])
    return [{"temperature": float(20 + 5 * rng.normal() + temperature_shift), "visits": int(rng.poisson(3)),
             "color": str(colors[i]), "member": bool(rng.random() < 0.3),
             "embedding": rng.normal(size=2).tolist()} for i in range(n)]
