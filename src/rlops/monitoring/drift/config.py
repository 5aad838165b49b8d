"""Drift thresholds and settings: one pydantic model, shared by code, files, the CLI and the service."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlops.configfile import parse_model
from rlops.monitoring.drift.severity import Severity


class Threshold(BaseModel):
    """Warn and alert levels for one effect size; ``None`` switches that level off (report only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warn: float | None = Field(default=None, ge=0)
    alert: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if self.warn is not None and self.alert is not None and self.warn > self.alert:
            raise ValueError(f"warn {self.warn} is above alert {self.alert}")
        return self

    def judge(self, value: float) -> Severity:
        """``ALERT`` above ``alert``, ``WARN`` above ``warn``, else ``NONE`` (strictly above, as PSI is read)."""
        if self.alert is not None and value > self.alert:
            return Severity.ALERT
        if self.warn is not None and value > self.warn:
            return Severity.WARN
        return Severity.NONE


class DomainClassifier(StrEnum):
    """Model of the multivariate domain classifier (reference rows vs live rows)."""

    NONE = "none"  #: skip the multivariate check
    LOGISTIC = "logistic"  #: logistic regression on standardised columns and their squares: mean and spread shifts
    GRADIENT_BOOSTING = "gradient_boosting"  #: histogram gradient boosting: also interactions, slower


class DriftConfig(BaseModel):
    """How batch drift is judged. Every threshold is on an effect size, never on a p-value.

    Defaults follow common practice: PSI 0.1 / 0.25 (Siddiqi 2006); Wasserstein distance divided by the
    reference's standard deviation 0.1 and Jensen-Shannon distance 0.1 (Evidently's drift defaults), here the warn
    level with twice that as alert; KS statistic 0.1 / 0.2; Cramér's V 0.1 / 0.3 (Cohen's small and medium); domain
    classifier AUC 0.6 / 0.7 (0.5 is no drift). For scale: a mean shift of 0.1 standard deviations of a normal
    feature gives Wasserstein 0.1, KS 0.04, Jensen-Shannon 0.04, PSI 0.01; a shift of 0.3 gives Wasserstein 0.3, KS
    0.12, Jensen-Shannon 0.12, PSI 0.09.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    psi: Threshold = Threshold(warn=0.1, alert=0.25)
    ks: Threshold = Threshold(warn=0.1, alert=0.2)
    wasserstein: Threshold = Threshold(warn=0.1, alert=0.2)
    jensen_shannon: Threshold = Threshold(warn=0.1, alert=0.2)
    cramers_v: Threshold = Threshold(warn=0.1, alert=0.3)
    domain_auc: Threshold = Threshold(warn=0.6, alert=0.7)
    psi_epsilon: float = Field(default=1e-4, gt=0, lt=1, description="floor for bin proportions in PSI")
    min_rows: int = Field(default=50, ge=1, description="fewest live rows a window must have")
    domain_classifier: DomainClassifier = DomainClassifier.LOGISTIC
    domain_rows: int = Field(default=2000, ge=20, description="live rows sampled for the domain classifier")
    domain_folds: int = Field(default=5, ge=2, le=20, description="cross-validation folds for its AUC")
    seed: int = Field(default=0, description="seed of the live row sample and the classifier")

    @classmethod
    def from_dict(cls, data: Any, source: str = "drift config") -> DriftConfig:
        """Validate parsed YAML/JSON; a bad value raises :class:`~rlops.errors.ConfigError` naming the field."""
        return parse_model(cls, data, source, "drift config")
