"""Retraining from logged interactions: bandit policy learning, behaviour cloning and offline RL (discrete CQL).

The entry points are :func:`retrain_from_table` (one candidate) and :func:`sweep_retrain` (several, scored on
held-out logs, the best kept); see ``docs/retraining.md``. Importing this package registers the
``mlp`` policy kind (:class:`MLPPolicy`) that behaviour cloning and CQL produce.
"""

from rlops.policies.mlp import Head, MLPPolicy
from rlops.training.offline.bandit import BanditDiagnostics, BanditFit, BanditMethod, fit_bandit_policy, pseudo_rewards
from rlops.training.offline.bc import BCConfig, behaviour_cloning, fit_bc
from rlops.training.offline.cql import CQLConfig, fit_cql
from rlops.training.offline.data import LoggedRows, read_logged
from rlops.training.offline.networks import NetworkFit, Progress
from rlops.training.offline.retrain import (
    RetrainKind,
    RetrainMethod,
    RetrainResult,
    SequentialDiagnostics,
    choose_kind,
    retrain_from_table,
)
from rlops.training.offline.sweep import (
    CandidateScore,
    SweepPoint,
    SweepResult,
    SweepScore,
    pick_best,
    sweep_grid,
    sweep_retrain,
)
from rlops.training.offline.transitions import (
    DEFAULT_GAP_SECONDS,
    Transitions,
    is_single_step,
    transitions_from_table,
)

__all__ = [
    "DEFAULT_GAP_SECONDS",
    "BCConfig",
    "BanditDiagnostics",
    "BanditFit",
    "BanditMethod",
    "CQLConfig",
    "CandidateScore",
    "Head",
    "LoggedRows",
    "MLPPolicy",
    "NetworkFit",
    "Progress",
    "RetrainKind",
    "RetrainMethod",
    "RetrainResult",
    "SequentialDiagnostics",
    "SweepPoint",
    "SweepResult",
    "SweepScore",
    "Transitions",
    "behaviour_cloning",
    "choose_kind",
    "fit_bandit_policy",
    "fit_bc",
    "fit_cql",
    "is_single_step",
    "pick_best",
    "pseudo_rewards",
    "read_logged",
    "retrain_from_table",
    "sweep_grid",
    "sweep_retrain",
    "transitions_from_table",
]
