"""Small ready-to-use VW and SB3 policies, with random valid batches, for the shared policy conformance suite.

Each entry of :data:`ML_FACTORIES` builds a policy and a ``make_batch(rng, n)`` that returns ``n`` valid random
contexts for that policy's schema. SB3 models are built once per process (the first torch model takes a second or
two to build, later ones milliseconds) and shared by the policies that wrap them: the suite only acts and saves.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from rlops.policies.base import BasePolicy, LearningBatch, PolicyInput
from rlops.policies.sb3 import SB3Policy
from rlops.policies.vw import VWPolicy
from rlops.schema import Schema

MakeBatch = Callable[[np.random.Generator, int], PolicyInput]
Factory = Callable[[], tuple[BasePolicy, MakeBatch]]

OBS_DIM = 3
BOX_LOW = [-1.0, 0.0]
BOX_HIGH = [1.0, 4.0]
SEGMENTS = ["north", "south", "east"]
COLORS = ["red", "green", "blue"]


class TinyEnv(gym.Env[np.ndarray, Any]):
    """A do-nothing environment that only gives SB3 its spaces: observations in [-5, 5]^3."""

    def __init__(self, box: bool = False) -> None:
        self.observation_space = gym.spaces.Box(-5.0, 5.0, (OBS_DIM,), np.float32)
        self.action_space: gym.Space[Any] = (
            gym.spaces.Box(np.array(BOX_LOW, np.float32), np.array(BOX_HIGH, np.float32))
            if box
            else gym.spaces.Discrete(3)
        )

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs = self.observation_space.sample()
        return obs, float(np.tanh(obs[0])), False, False, {}


# ---- schemas ------------------------------------------------------------------------------------------------------

def sb3_schema(box: bool) -> Schema:
    """Three floats in [-5, 5] (the TinyEnv observation) and 3 discrete actions or the TinyEnv box."""
    actions: dict[str, Any] = (
        {"type": "box", "low": BOX_LOW, "high": BOX_HIGH} if box else {"type": "discrete", "names": ["a", "b", "c"]}
    )
    features = [{"name": f"o{i}", "type": "float", "min": -5.0, "max": 5.0} for i in range(OBS_DIM)]
    return Schema.model_validate({"name": "tiny", "features": features, "actions": actions})


VW_DISCRETE_SCHEMA = Schema.model_validate({
    "name": "segments",
    "features": [
        {"name": "segment", "type": "categorical", "vocabulary": SEGMENTS},
        {"name": "x", "type": "float", "min": -1.0, "max": 1.0},
    ],
    "actions": {"type": "discrete", "names": ["show a", "show:b", "show|c"]},
})
VW_ADF_SCHEMA = Schema.model_validate({
    "name": "catalog",
    "features": [{"name": "x", "type": "float", "min": -1.0, "max": 1.0}],
    "actions": {
        "type": "candidates",
        "features": [
            {"name": "price", "type": "float", "min": 0.0},
            {"name": "color", "type": "categorical", "vocabulary": COLORS},
        ],
        "max_candidates": 16,
    },
})


# ---- batches ------------------------------------------------------------------------------------------------------

def sb3_batch(schema: Schema) -> MakeBatch:
    def make_batch(rng: np.random.Generator, n: int) -> PolicyInput:
        rows = rng.uniform(-5.0, 5.0, (n, OBS_DIM))
        return PolicyInput.from_contexts(schema, [{f"o{i}": float(v) for i, v in enumerate(r)} for r in rows])

    return make_batch


def vw_discrete_batch(rng: np.random.Generator, n: int) -> PolicyInput:
    contexts = [{"segment": SEGMENTS[int(rng.integers(3))], "x": float(rng.uniform(-1, 1))} for _ in range(n)]
    return PolicyInput.from_contexts(VW_DISCRETE_SCHEMA, contexts)


def vw_adf_batch(rng: np.random.Generator, n: int, max_k: int = 6) -> PolicyInput:
    contexts = [{"x": float(rng.uniform(-1, 1))} for _ in range(n)]
    candidates = [
        [{"id": f"item-{j}", "features": {"price": float(rng.uniform(0, 10)), "color": COLORS[int(rng.integers(3))]}}
         for j in range(int(rng.integers(1, max_k + 1)))]
        for _ in range(n)
    ]
    return PolicyInput.from_contexts(VW_ADF_SCHEMA, contexts, candidates)


# ---- policies -----------------------------------------------------------------------------------------------------

def warm_up(policy: VWPolicy, make_batch: MakeBatch, steps: int = 4, n: int = 50) -> VWPolicy:
    """A few rounds of act/update with a reward for the first action, so the PMF is not uniform."""
    rng = np.random.default_rng(123)
    for _ in range(steps):
        batch = make_batch(rng, n)
        result = policy.act(batch, rng)
        reward = (result.action == 0).astype(np.float64)
        policy.update(LearningBatch(batch, result.action, reward, result.propensity))
    return policy


def _vw_epsilon() -> tuple[BasePolicy, MakeBatch]:
    return warm_up(VWPolicy(VW_DISCRETE_SCHEMA, epsilon=0.2), vw_discrete_batch), vw_discrete_batch


def _vw_adf() -> tuple[BasePolicy, MakeBatch]:
    return warm_up(VWPolicy(VW_ADF_SCHEMA, exploration="squarecb"), vw_adf_batch), vw_adf_batch


def _sharpen(layer: Any, scale: float) -> None:
    """Scale a freshly initialised output layer so that untrained distributions are far from uniform."""
    import torch

    with torch.no_grad():
        for p in layer.parameters():
            p.mul_(scale)


@functools.cache
def sb3_model(algo: str, box: bool) -> Any:
    """A tiny untrained SB3 model on :class:`TinyEnv` (net_arch [16], seed 0), built once per process."""
    import stable_baselines3 as sb3
    import torch

    kwargs: dict[str, Any] = {"n_steps": 64, "batch_size": 32} if algo in ("PPO", "A2C") else {"buffer_size": 500}
    if algo == "A2C":
        kwargs.pop("batch_size")
    model = getattr(sb3, algo)("MlpPolicy", TinyEnv(box), policy_kwargs={"net_arch": [16]}, seed=0, device="cpu",
                               **kwargs)
    if algo in ("PPO", "A2C"):
        _sharpen(model.policy.action_net, 200.0)
        if box:
            with torch.no_grad():
                model.policy.log_std.fill_(-0.5)
    elif algo == "DQN":
        _sharpen(model.q_net.q_net, 10.0)
    return model


def _sb3(algo: str, box: bool, **settings: Any) -> Factory:
    def factory() -> tuple[BasePolicy, MakeBatch]:
        schema = sb3_schema(box)
        return SB3Policy(schema, sb3_model(algo, box), **settings), sb3_batch(schema)

    return factory


ML_FACTORIES: dict[str, Factory] = {
    "vw_epsilon": _vw_epsilon,
    "vw_adf": _vw_adf,
    "sb3_ppo_discrete": _sb3("PPO", box=False),
    "sb3_dqn": _sb3("DQN", box=False, epsilon=0.1),
    "sb3_ppo_box": _sb3("PPO", box=True),
    "sb3_sac": _sb3("SAC", box=True),
    "sb3_td3": _sb3("TD3", box=True, noise_std=0.2),
}
