"""Rollout: taking a registered version from shadow to canary to production, and back when it misbehaves.

:mod:`rlops.rollout.guardrails` holds the sequential tests that compare a canary with production after every
batch without inflating false alarms.
"""

from rlops.rollout.guardrails import (
    Arm,
    ArmMoments,
    Decision,
    Direction,
    GuardrailConfig,
    GuardrailMonitor,
    GuardrailResult,
    Interval,
    MetricGuard,
    MetricResult,
    ToleranceKind,
    contrast_sequence,
    fixed_horizon_samples,
    judge_metric,
    normal_mixture_radius,
    optimal_rho_ratio,
)

__all__ = [
    "Arm",
    "ArmMoments",
    "Decision",
    "Direction",
    "GuardrailConfig",
    "GuardrailMonitor",
    "GuardrailResult",
    "Interval",
    "MetricGuard",
    "MetricResult",
    "ToleranceKind",
    "contrast_sequence",
    "fixed_horizon_samples",
    "judge_metric",
    "normal_mixture_radius",
    "optimal_rho_ratio",
]
