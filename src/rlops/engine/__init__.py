"""The in-process decision engine and deployments."""

from rlops.engine.deployment import DeploymentSpec, LearningConfig, PolicySource
from rlops.engine.engine import ApplyResult, Decision, Engine, OutcomeStatus, ReportResult
from rlops.engine.store import DeploymentStore, Revision

__all__ = [
    "ApplyResult",
    "Decision",
    "DeploymentSpec",
    "DeploymentStore",
    "Engine",
    "LearningConfig",
    "OutcomeStatus",
    "PolicySource",
    "ReportResult",
    "Revision",
]
