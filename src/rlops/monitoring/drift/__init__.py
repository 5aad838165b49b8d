"""Drift detection: batch drift of a live window against a policy version's reference profile, and streaming
detectors over scalar streams (reward per version, a feature's mean, latency, actions, propensities).

Batch (compute, judge, present): :class:`ReferenceProfile` is stored with every policy version;
:func:`batch_drift` compares a window with it and returns a :class:`BatchDriftReport` of effect sizes (PSI, KS,
normalised Wasserstein, Jensen-Shannon, Cramér's V, domain-classifier AUC) judged by :class:`DriftConfig` into a
:class:`Severity` per feature and overall.

Streaming: every detector follows the :class:`DriftDetector` protocol (``update``, ``update_many``, ``reset``,
``n_seen``): :class:`PageHinkley`, :class:`ADWIN`, :class:`CUSUM` for a change in a stream's mean,
:class:`ActionShift` for the action mix, :class:`PropensityCollapse` for logged propensities.
"""

from rlops.monitoring.drift.action_shift import ActionShift
from rlops.monitoring.drift.adwin import ADWIN
from rlops.monitoring.drift.batch import batch_drift
from rlops.monitoring.drift.config import DomainClassifier, DriftConfig, Threshold
from rlops.monitoring.drift.cusum import CUSUM
from rlops.monitoring.drift.detector import Direction, DriftDetector, StreamDetector
from rlops.monitoring.drift.domain import domain_auc
from rlops.monitoring.drift.page_hinkley import PageHinkley
from rlops.monitoring.drift.profile import (
    FILENAME,
    CategoricalProfile,
    FeatureKind,
    NumericProfile,
    ReferenceProfile,
)
from rlops.monitoring.drift.propensity import PropensityCollapse
from rlops.monitoring.drift.results import BatchDriftReport, DomainDrift, FeatureDrift, Metric, MetricResult
from rlops.monitoring.drift.severity import Severity, worst
from rlops.monitoring.drift.statistics import cramers_v, jensen_shannon, psi

__all__ = [
    "ADWIN",
    "CUSUM",
    "FILENAME",
    "ActionShift",
    "BatchDriftReport",
    "CategoricalProfile",
    "Direction",
    "DomainClassifier",
    "DomainDrift",
    "DriftConfig",
    "DriftDetector",
    "FeatureDrift",
    "FeatureKind",
    "Metric",
    "MetricResult",
    "NumericProfile",
    "PageHinkley",
    "PropensityCollapse",
    "ReferenceProfile",
    "Severity",
    "StreamDetector",
    "Threshold",
    "batch_drift",
    "cramers_v",
    "domain_auc",
    "jensen_shannon",
    "psi",
    "worst",
]
