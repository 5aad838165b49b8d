"""Policies: the ``Policy`` protocol and its implementations, each saved as a folder with a versioned manifest."""

from rlops.policies.base import (
    ActResult,
    BasePolicy,
    LearningBatch,
    OnlineLearner,
    Policy,
    PolicyInput,
)
from rlops.policies.exploration import EpsilonGreedy, Softmax
from rlops.policies.io import content_hash, kinds, load_policy, read_manifest, save_policy
from rlops.policies.linear import LinearThompson, LinUCB
from rlops.policies.mlp import MLPPolicy
from rlops.policies.rule import RulePolicy
from rlops.policies.sb3 import SB3Policy
from rlops.policies.scorers import LinearScorer, RidgeScorer, Scorer
from rlops.policies.uniform import UniformRandom
from rlops.policies.vw import VWConfig, VWPolicy

__all__ = [
    "ActResult",
    "BasePolicy",
    "EpsilonGreedy",
    "LearningBatch",
    "LinUCB",
    "LinearScorer",
    "LinearThompson",
    "MLPPolicy",
    "OnlineLearner",
    "Policy",
    "PolicyInput",
    "RidgeScorer",
    "RulePolicy",
    "SB3Policy",
    "Scorer",
    "Softmax",
    "UniformRandom",
    "VWConfig",
    "VWPolicy",
    "content_hash",
    "kinds",
    "load_policy",
    "read_manifest",
    "save_policy",
]
