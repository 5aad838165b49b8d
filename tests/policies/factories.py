"""Every policy the conformance suite runs over: a name -> (policy, make_batch) factory."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rlops.policies import (
    BasePolicy,
    EpsilonGreedy,
    LearningBatch,
    LinearScorer,
    LinearThompson,
    LinUCB,
    MLPPolicy,
    PolicyInput,
    RidgeScorer,
    RulePolicy,
    Softmax,
    UniformRandom,
)
from rlops.scenarios import SyntheticBandit
from rlops.schema import Schema
from tests.policies import rules

MakeBatch = Callable[[np.random.Generator, int], PolicyInput]
Factory = Callable[[], tuple[BasePolicy, MakeBatch]]

BANDIT = SyntheticBandit(seed=3)
CANDIDATES = Schema.model_validate({
    "features": [{"name": "u", "type": "float", "min": -1, "max": 1}],
    "actions": {"type": "candidates", "features": [{"name": "price", "type": "float", "min": 0, "max": 10},
                                                   {"name": "kind", "type": "categorical",
                                                    "vocabulary": ["a", "b"]}]},
})
BOX = Schema.model_validate({
    "features": [{"name": "u", "type": "float", "min": -1, "max": 1}],
    "actions": {"type": "box", "low": [-1, -0.5], "high": [1, 0.5]},
})


def bandit_batch(rng: np.random.Generator, n: int) -> PolicyInput:
    return PolicyInput.from_contexts(BANDIT.schema, BANDIT.sample_contexts(n, rng))


def candidate_batch(rng: np.random.Generator, n: int) -> PolicyInput:
    contexts = [{"u": float(rng.uniform(-1, 1))} for _ in range(n)]
    cands = [[{"id": f"item{j}", "features": {"price": float(rng.uniform(0, 10)), "kind": "ab"[j % 2]}}
              for j in range(int(rng.integers(2, 6)))] for _ in range(n)]
    return PolicyInput.from_contexts(CANDIDATES, contexts, cands)


def box_batch(rng: np.random.Generator, n: int) -> PolicyInput:
    return PolicyInput.from_contexts(BOX, [{"u": float(rng.uniform(-1, 1))} for _ in range(n)])


def trained(policy: BasePolicy, make_batch: MakeBatch, n: int = 300) -> BasePolicy:
    """Feed a few interactions so that learned state is non-trivial before save/load is checked."""
    rng = np.random.default_rng(11)
    batch = make_batch(rng, n)
    act = UniformRandom(policy.schema).act(batch, rng)
    reward = rng.normal(size=n) + batch.x[:, 0]
    policy.update(LearningBatch(batch, act.action, reward, act.propensity))  # type: ignore[attr-defined]
    return policy


k = len(BANDIT.schema.actions.names)  # type: ignore[union-attr]


def mlp(schema: Schema, outputs: int, **kwargs: object) -> MLPPolicy:
    """A small random network (16 hidden units) of the ``mlp`` kind."""
    rng = np.random.default_rng(5)
    weights = [rng.normal(size=(16, schema.width)), rng.normal(size=(outputs, 16))]
    return MLPPolicy(schema, weights, [rng.normal(size=16), rng.normal(size=outputs)], **kwargs)  # type: ignore[arg-type]


FACTORIES: dict[str, Factory] = {
    "uniform_discrete": lambda: (UniformRandom(BANDIT.schema), bandit_batch),
    "uniform_candidates": lambda: (UniformRandom(CANDIDATES), candidate_batch),
    "uniform_box": lambda: (UniformRandom(BOX), box_batch),
    "rule_epsilon": lambda: (RulePolicy(BANDIT.schema, rules.by_age, epsilon=0.2), bandit_batch),
    "rule_box": lambda: (RulePolicy(BOX, rules.half_box), box_batch),
    "epsilon_greedy_linear": lambda: (
        EpsilonGreedy(BANDIT.schema, LinearScorer(np.random.default_rng(0).normal(size=(k, BANDIT.schema.width))),
                      epsilon=0.3), bandit_batch),
    "epsilon_greedy_ridge_candidates": lambda: (
        trained(EpsilonGreedy(CANDIDATES, RidgeScorer.for_schema(CANDIDATES, {}, {}), 0.2), candidate_batch),
        candidate_batch),
    "softmax_ridge": lambda: (
        trained(Softmax(BANDIT.schema, RidgeScorer.for_schema(BANDIT.schema, {"l2": 2.0}, {}), 0.1, 0.01),
                bandit_batch), bandit_batch),
    "linucb": lambda: (trained(LinUCB(BANDIT.schema, alpha=0.5, epsilon=0.1), bandit_batch), bandit_batch),
    "linucb_greedy": lambda: (trained(LinUCB(BANDIT.schema, alpha=0.5), bandit_batch), bandit_batch),
    "linucb_candidates": lambda: (trained(LinUCB(CANDIDATES, epsilon=0.1), candidate_batch), candidate_batch),
    "linear_thompson": lambda: (trained(LinearThompson(BANDIT.schema, n_samples=64), bandit_batch), bandit_batch),
    "mlp_greedy": lambda: (mlp(BANDIT.schema, k, epsilon=0.1), bandit_batch),
    "mlp_softmax": lambda: (mlp(BANDIT.schema, k, head="softmax", temperature=0.5), bandit_batch),
    "mlp_box": lambda: (mlp(BOX, 2, noise_std=0.05), box_batch),
    "linear_thompson_candidates": lambda: (trained(LinearThompson(CANDIDATES, n_samples=64), candidate_batch),
                                           candidate_batch),
}

try:  # the ML adapters (VW, SB3) contribute their own factories
    from tests.policies.factories_ml import ML_FACTORIES
except ImportError:  # pragma: no cover - only while the adapters are being written
    ML_FACTORIES = {}
FACTORIES.update(ML_FACTORIES)
