"""Policies to export, over a schema with every feature type, and random valid contexts for them.

The schema has a float, a categorical with an "other" column, a boolean with a default, an int and a vector, so
every export exercises the in-graph one-hot and every raw column kind. SB3 models are untrained (built with a
seed, output layers sharpened so that distributions are far from uniform) and built once per process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from rlops.policies import (
    BasePolicy,
    EpsilonGreedy,
    LearningBatch,
    LinearScorer,
    LinearThompson,
    LinUCB,
    PolicyInput,
    RidgeScorer,
    SB3Policy,
    Softmax,
    UniformRandom,
)
from rlops.policies.preprocessed import with_preprocessing
from rlops.policies.preprocessing import ColumnTransform, Preprocessor, Transform
from rlops.schema import Schema

DEVICES = ["mobile", "desktop", "tablet"]
FEATURES: list[dict[str, Any]] = [
    {"name": "age", "type": "float", "min": 18, "max": 90},
    {"name": "device", "type": "categorical", "vocabulary": DEVICES, "unknown": "other"},
    {"name": "returning", "type": "bool", "default": False},
    {"name": "visits", "type": "int", "min": 0, "max": 20},
    {"name": "taste", "type": "vector", "size": 3, "min": -1, "max": 1},
]
ACTIONS = ["a", "b", "c", "d"]
BOX_LOW, BOX_HIGH = [-1.0, 0.0], [1.0, 4.0]
DISCRETE = Schema.model_validate({"name": "mixed", "features": FEATURES,
                                  "actions": {"type": "discrete", "names": ACTIONS}})
BOX = Schema.model_validate({"name": "mixed-box", "features": FEATURES,
                             "actions": {"type": "box", "low": BOX_LOW, "high": BOX_HIGH}})
WIDTH = DISCRETE.width  # 1 + 4 + 1 + 1 + 3 = 10


def contexts(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` valid contexts: ints as ints, some unknown devices ("other"), some without the defaulted boolean."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(18, 90, n)
    device = rng.choice([*DEVICES, "watch", "tv"], n, p=[0.3, 0.3, 0.2, 0.1, 0.1])
    returning = rng.random(n) < 0.5
    omit = rng.random(n) < 0.2
    visits = rng.integers(0, 21, n)
    taste = rng.uniform(-1, 1, (n, 3))
    out = []
    for i in range(n):
        context: dict[str, Any] = {"age": float(age[i]), "device": str(device[i]), "visits": int(visits[i]),
                                   "taste": taste[i].tolist()}
        if not omit[i]:
            context["returning"] = bool(returning[i])
        out.append(context)
    return out


def _trained(policy: BasePolicy, n: int = 400) -> BasePolicy:
    """Feed random interactions with a context-dependent reward, so that learned state is not trivial."""
    rng = np.random.default_rng(11)
    batch = PolicyInput.from_contexts(policy.schema, contexts(n, seed=5))
    act = UniformRandom(policy.schema).act(batch, rng)
    reward = rng.normal(size=n) + batch.x[:, 0] / 30.0 * (act.action == 1) + batch.x[:, 1] * (act.action == 2)
    policy.update(LearningBatch(batch, act.action, reward, act.propensity))  # type: ignore[attr-defined]
    return policy


def _weights(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(len(ACTIONS), WIDTH)) / 10.0


class MixedEnv(gym.Env[np.ndarray, Any]):
    """A do-nothing environment that only gives SB3 its spaces: the encoded context as the observation."""

    def __init__(self, box: bool) -> None:
        self.observation_space = gym.spaces.Box(-100.0, 100.0, (WIDTH,), np.float32)
        self.action_space: gym.Space[Any] = (
            gym.spaces.Box(np.array(BOX_LOW, np.float32), np.array(BOX_HIGH, np.float32)) if box
            else gym.spaces.Discrete(len(ACTIONS)))

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        return self.observation_space.sample(), 0.0, False, False, {}


@functools.cache
def sb3_model(algo: str, box: bool) -> Any:
    """An untrained SB3 model (net_arch [32, 32], seed 0) whose distributions are far from uniform."""
    import stable_baselines3 as sb3
    import torch

    kwargs: dict[str, Any] = {"n_steps": 64, "batch_size": 32} if algo in ("PPO", "A2C") else {"buffer_size": 500}
    if algo == "A2C":
        kwargs.pop("batch_size")
    model = getattr(sb3, algo)("MlpPolicy", MixedEnv(box), policy_kwargs={"net_arch": [32, 32]}, seed=0,
                               device="cpu", **kwargs)
    with torch.no_grad():
        if algo in ("PPO", "A2C"):
            for p in model.policy.action_net.parameters():
                p.mul_(20.0)
            if box:
                model.policy.log_std.fill_(-0.5)
        elif algo == "DQN":
            for p in model.q_net.q_net.parameters():
                p.mul_(10.0)
    return model


PolicyFactory = Callable[[], BasePolicy]


def _fitted() -> Preprocessor:
    """Every fitted transform on the mixed schema: Box-Cox (lmbda 0.5) on age, a log (lmbda 0) on visits whose
    zeros are floored, standardised taste, one-hots left alone, and a clip tight enough to bite."""
    columns = []
    for name in DISCRETE.column_names:
        if name == "age":
            columns.append(ColumnTransform(name, Transform.BOXCOX, mean=9.0, std=3.0, lmbda=0.5, floor=18.0))
        elif name == "visits":
            columns.append(ColumnTransform(name, Transform.BOXCOX, mean=1.5, std=0.8, lmbda=0.0, floor=1.0))
        elif name.startswith("taste"):
            columns.append(ColumnTransform(name, Transform.STANDARDIZE, mean=0.1, std=0.4))
        else:
            columns.append(ColumnTransform(name, Transform.IDENTITY))
    return Preprocessor(tuple(columns), clip=2.0)


#: Every exportable case: name -> factory. The first five are the parity cases the issue names.
CASES: dict[str, PolicyFactory] = {
    "sb3_ppo_discrete": lambda: SB3Policy(DISCRETE, sb3_model("PPO", False)),
    "sb3_sac": lambda: SB3Policy(BOX, sb3_model("SAC", True)),
    "linucb": lambda: _trained(LinUCB(DISCRETE, alpha=1.0)),
    "softmax_ridge": lambda: _trained(Softmax(DISCRETE, RidgeScorer.for_schema(DISCRETE, {}, {}), temperature=0.2,
                                              min_probability=0.02)),
    "epsilon_greedy_linear": lambda: EpsilonGreedy(DISCRETE, LinearScorer(_weights(), np.arange(4) / 10), 0.3),
    "linucb_epsilon": lambda: _trained(LinUCB(DISCRETE, alpha=0.5, epsilon=0.2)),
    "linucb_mean": lambda: _trained(LinUCB(DISCRETE, alpha=0.0)),
    "linear_thompson": lambda: _trained(LinearThompson(DISCRETE, v=0.3, n_samples=32)),
    "softmax_linear": lambda: Softmax(DISCRETE, LinearScorer(_weights(1)), temperature=0.5),
    "epsilon_greedy_ridge": lambda: _trained(EpsilonGreedy(DISCRETE, RidgeScorer.for_schema(DISCRETE, {}, {}), 0.1)),
    "uniform": lambda: UniformRandom(DISCRETE),
    "sb3_a2c_discrete": lambda: SB3Policy(DISCRETE, sb3_model("A2C", False)),
    "sb3_ppo_greedy": lambda: SB3Policy(DISCRETE, sb3_model("PPO", False), deterministic=True),
    "sb3_dqn": lambda: SB3Policy(DISCRETE, sb3_model("DQN", False), epsilon=0.1),
    "sb3_dqn_greedy": lambda: SB3Policy(DISCRETE, sb3_model("DQN", False)),
    "sb3_ppo_box": lambda: SB3Policy(BOX, sb3_model("PPO", True)),
    "sb3_ppo_box_mean": lambda: SB3Policy(BOX, sb3_model("PPO", True), deterministic=True),
    "sb3_sac_mean": lambda: SB3Policy(BOX, sb3_model("SAC", True), deterministic=True),
    "sb3_td3": lambda: SB3Policy(BOX, sb3_model("TD3", True), noise_std=0.2),
    "sb3_td3_mean": lambda: SB3Policy(BOX, sb3_model("TD3", True), deterministic=True),
    "sb3_ddpg": lambda: SB3Policy(BOX, sb3_model("DDPG", True), noise_std=0.3),
    "sb3_a2c_box": lambda: SB3Policy(BOX, sb3_model("A2C", True)),
    # A fitted preprocessor in front (rlops.policies.preprocessing): baked into the graph too.
    "linucb_preprocessed": lambda: with_preprocessing(_trained(LinUCB(DISCRETE, alpha=1.0)), _fitted()),
    "sb3_ppo_preprocessed": lambda: with_preprocessing(SB3Policy(DISCRETE, sb3_model("PPO", False)), _fitted()),
    "sb3_sac_preprocessed": lambda: with_preprocessing(SB3Policy(BOX, sb3_model("SAC", True)), _fitted()),
}
