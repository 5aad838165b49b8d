"""Training from simulators: Stable-Baselines3 agents on the reference scenarios, wrapped as controllers."""

from rlops.training.recipes import RECIPES, recipe
from rlops.training.sb3 import Algorithm, SB3Controller, TrainConfig, TrainStats, train

__all__ = ["RECIPES", "Algorithm", "SB3Controller", "TrainConfig", "TrainStats", "recipe", "train"]
