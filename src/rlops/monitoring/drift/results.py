"""Typed results of batch drift: one value and severity per metric, per feature, and overall."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rlops.monitoring.drift.profile import FeatureKind
from rlops.monitoring.drift.severity import Severity


class Metric(StrEnum):
    PSI = "psi"  #: population stability index over the reference's quantile bins
    KS = "ks"  #: Kolmogorov-Smirnov statistic, sup |F - G|
    WASSERSTEIN = "wasserstein"  #: Wasserstein-1 distance divided by the reference's standard deviation
    JENSEN_SHANNON = "jensen_shannon"  #: Jensen-Shannon distance, base 2
    CRAMERS_V = "cramers_v"  #: Cramér's V with equally weighted samples
    DOMAIN_AUC = "domain_auc"  #: cross-validated ROC AUC of a classifier telling reference rows from live rows


@dataclass(frozen=True)
class MetricResult:
    metric: Metric
    value: float
    severity: Severity

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric.value, "value": self.value, "severity": self.severity.value}


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one feature (or the actions, or the reward) between the reference and a live window.

    Attributes:
        name: feature or column name.
        kind: numeric or categorical.
        metrics: one result per metric computed for this kind.
        severity: the worst of the metrics' severities.
        n_live: live values compared.
    """

    name: str
    kind: FeatureKind
    metrics: tuple[MetricResult, ...]
    severity: Severity
    n_live: int

    def value(self, metric: Metric) -> float:
        """The value of ``metric`` (``KeyError`` when it was not computed for this kind)."""
        for result in self.metrics:
            if result.metric is metric:
                return result.value
        raise KeyError(metric)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind.value, "severity": self.severity.value, "n_live": self.n_live,
                "metrics": {r.metric.value: {"value": r.value, "severity": r.severity.value} for r in self.metrics}}


@dataclass(frozen=True)
class DomainDrift:
    """The multivariate check: can a classifier tell live rows from reference rows?"""

    auc: float
    severity: Severity
    classifier: str
    n_reference: int
    n_live: int

    def to_dict(self) -> dict[str, Any]:
        return {"auc": self.auc, "severity": self.severity.value, "classifier": self.classifier,
                "n_reference": self.n_reference, "n_live": self.n_live}


@dataclass(frozen=True)
class BatchDriftReport:
    """Drift of a live window against a reference profile.

    Attributes:
        features: per context feature (vectors per element), in the profile's order.
        actions: per action profile (one for discrete actions, one per dimension for continuous ones).
        rewards: the reward's drift, when both the profile and the window have rewards.
        multivariate: the domain classifier's result, when run.
        severity: the worst severity of all of the above.
        n_live: live rows.
    """

    features: tuple[FeatureDrift, ...]
    actions: tuple[FeatureDrift, ...]
    rewards: FeatureDrift | None
    multivariate: DomainDrift | None
    severity: Severity
    n_live: int

    def feature(self, name: str) -> FeatureDrift:
        for result in self.features:
            if result.name == name:
                return result
        raise KeyError(name)

    @property
    def drifted(self) -> list[str]:
        """Names of the features whose severity is not NONE."""
        return [f.name for f in self.features if f.severity is not Severity.NONE]

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity.value, "n_live": self.n_live, "drifted": self.drifted,
                "features": [f.to_dict() for f in self.features], "actions": [a.to_dict() for a in self.actions],
                "rewards": None if self.rewards is None else self.rewards.to_dict(),
                "multivariate": None if self.multivariate is None else self.multivariate.to_dict()}
