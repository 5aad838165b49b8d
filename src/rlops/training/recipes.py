"""Per-scenario training recipes: the algorithm, step budget and hyperparameters that train well on 2 CPUs."""

from __future__ import annotations

from rlops.errors import NotFoundError
from rlops.scenarios import SCENARIOS
from rlops.training.sb3 import Algorithm, TrainConfig

RECIPES: dict[str, TrainConfig] = {
    name: TrainConfig(algo=Algorithm.PPO, steps=100_000) for name in SCENARIOS
}


def recipe(name: str, seed: int = 0) -> TrainConfig:
    """The recipe for scenario ``name`` with ``seed``."""
    if name not in RECIPES:
        raise NotFoundError(f"recipe: no training recipe for {name!r}; known: {sorted(RECIPES)}")
    from dataclasses import replace

    return replace(RECIPES[name], seed=seed)
