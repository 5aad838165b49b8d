"""Off-policy evaluation: estimate what a target policy would earn, from data logged under another policy.

Bandit estimators read :class:`BanditData` (logged actions, rewards, propensities and the target's action
distribution ``pi_e``); sequential ones read :class:`EpisodeData`. Every estimator follows the small
:class:`Estimator` protocol and returns a typed :class:`Estimate`: the value, an interval (normal, bootstrap or a
high-confidence empirical-Bernstein lower bound), the effective sample size, the largest weight and
:class:`SupportWarning` values when the logs barely cover the target. See ``docs/evaluation.md``.
"""

from rlops.evaluation.ope.adapters import (
    bandit_data_from_parquet,
    bandit_data_from_table,
    episode_data_from_parquet,
    episode_data_from_table,
    target_probabilities,
)
from rlops.evaluation.ope.base import Estimator
from rlops.evaluation.ope.data import BanditData
from rlops.evaluation.ope.dr import DirectMethod, DoublyRobust, DRos, SelfNormalizedDR, SwitchDR
from rlops.evaluation.ope.episodes import EpisodeData
from rlops.evaluation.ope.fqe import FQE, NetworkFactory, Optimizer, QFunction, mlp
from rlops.evaluation.ope.intervals import Terms
from rlops.evaluation.ope.ips import IPS, SNIPS
from rlops.evaluation.ope.result import Estimate, Interval, IntervalMethod, IntervalSpec, SupportWarning
from rlops.evaluation.ope.reward_model import CrossFitted, RewardFeatures, RewardModel, cross_fit
from rlops.evaluation.ope.sequential import PDDR, PDIS, WPDIS
from rlops.evaluation.ope.support import SupportThresholds

__all__ = [
    "FQE",
    "IPS",
    "PDDR",
    "PDIS",
    "SNIPS",
    "WPDIS",
    "BanditData",
    "CrossFitted",
    "DRos",
    "DirectMethod",
    "DoublyRobust",
    "EpisodeData",
    "Estimate",
    "Estimator",
    "Interval",
    "IntervalMethod",
    "IntervalSpec",
    "NetworkFactory",
    "Optimizer",
    "QFunction",
    "RewardFeatures",
    "RewardModel",
    "SelfNormalizedDR",
    "SupportThresholds",
    "SupportWarning",
    "SwitchDR",
    "Terms",
    "bandit_data_from_parquet",
    "bandit_data_from_table",
    "cross_fit",
    "episode_data_from_parquet",
    "episode_data_from_table",
    "mlp",
    "target_probabilities",
]
