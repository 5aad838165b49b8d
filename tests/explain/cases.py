"""Policies of every kind for the explanation tests: the policy conformance factories plus trained networks.

Each case gives a policy and one context ``x``, a baseline and, for candidate action spaces, the candidate set the
scores are taken over (the first row's).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlops.policies import BasePolicy, MLPPolicy, PolicyInput, SB3Policy
from rlops.policies.preprocessed import with_preprocessing
from rlops.policies.preprocessing import Preprocessor
from tests.policies.factories import BANDIT, FACTORIES, bandit_batch, k, trained
from tests.policies.factories_ml import TinyEnv, sb3_batch, sb3_schema


@dataclass(frozen=True)
class Case:
    policy: BasePolicy
    x: np.ndarray
    baseline: np.ndarray
    candidates: np.ndarray | None


def mlp8(seed: int = 5) -> MLPPolicy:
    """A random MLP with 8 hidden units over the synthetic bandit's schema (a greedy head)."""
    rng = np.random.default_rng(seed)
    schema = BANDIT.schema
    weights = [rng.normal(size=(8, schema.width)), rng.normal(size=(k, 8))]
    return MLPPolicy(schema, weights, [rng.normal(size=8), rng.normal(size=k)], x_mean=np.full(schema.width, 0.2),
                     x_scale=np.full(schema.width, 1.5))


@functools.cache
def trained_sb3(algo: str) -> Any:
    """A DQN or PPO trained for 64 steps on the tiny environment (built once per process)."""
    import stable_baselines3 as sb3

    kwargs: dict[str, Any] = ({"n_steps": 64, "batch_size": 32} if algo == "PPO"
                              else {"buffer_size": 500, "learning_starts": 16, "train_freq": 4})
    model = getattr(sb3, algo)("MlpPolicy", TinyEnv(), policy_kwargs={"net_arch": [16]}, seed=0, device="cpu",
                               **kwargs)
    model.learn(64)
    return model


def _preprocessed(boxcox: bool) -> Callable[[], tuple[BasePolicy, Any]]:
    def factory() -> tuple[BasePolicy, Any]:
        rng = np.random.default_rng(4)
        x = bandit_batch(rng, 400).x
        if boxcox:
            x[:, 0] = np.exp(rng.normal(3.5, 0.6, 400))  # a skewed positive age column gets Box-Cox
        pre = Preprocessor.fit(x, BANDIT.schema.column_names, boxcox=boxcox)
        inner = mlp8() if boxcox else trained(FACTORIES["linucb"]()[0], bandit_batch)
        return with_preprocessing(inner, pre), bandit_batch

    return factory


def _sb3_trained(algo: str) -> Callable[[], tuple[BasePolicy, Any]]:
    def factory() -> tuple[BasePolicy, Any]:
        schema = sb3_schema(box=False)
        return SB3Policy(schema, trained_sb3(algo), epsilon=0.1 if algo == "DQN" else 0.0), sb3_batch(schema)

    return factory


CASES: dict[str, Callable[[], tuple[BasePolicy, Any]]] = {
    **FACTORIES,
    "mlp8": lambda: (mlp8(), bandit_batch),
    "sb3_dqn_trained": _sb3_trained("DQN"),
    "sb3_ppo_trained": _sb3_trained("PPO"),
    "preprocessed_linucb": _preprocessed(boxcox=False),
    "preprocessed_mlp_boxcox": _preprocessed(boxcox=True),
}


def build(name: str, seed: int = 1) -> Case:
    policy, make_batch = CASES[name]()
    batch: PolicyInput = make_batch(np.random.default_rng(seed), 2)
    candidates = None if batch.candidates is None else batch.candidates[0]
    return Case(policy, batch.x[0], batch.x[1], candidates)
