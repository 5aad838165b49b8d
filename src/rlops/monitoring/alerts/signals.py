"""Signals: the one input alert rules are evaluated over.

A :class:`Signal` is a named number with labels, as a Prometheus sample is: ``drift_psi{deployment="hvac",
feature="outdoor_temp"} = 0.31``. Anything can produce signals (metrics, drift reports, guardrails, a cron job);
:func:`drift_signals` and :func:`guardrail_signals` turn the monitoring and rollout results into them.

Example:
    >>> Signal("error_rate", {"deployment": "hvac"}, 0.02).key
    '{"deployment":"hvac"}'
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rlops.errors import ValidationError

if TYPE_CHECKING:
    from rlops.monitoring.drift import BatchDriftReport, FeatureDrift
    from rlops.rollout import GuardrailResult

#: Labels :func:`drift_signals` and :func:`guardrail_signals` set themselves; callers' labels may not use them.
DRIFT_LABELS = ("source", "feature")
GUARDRAIL_LABELS = ("metric",)
#: Numeric rank of a drift severity in the ``drift_severity`` signal.
SEVERITY_RANK = {"none": 0.0, "warn": 1.0, "alert": 2.0}


def labels_key(labels: Mapping[str, str]) -> str:
    """The canonical text of a label set (sorted keys, compact JSON): equal label sets, equal keys."""
    return json.dumps(dict(sorted(labels.items())), separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Signal:
    """One observation of a named quantity.

    Attributes:
        name: what is measured, e.g. ``drift_psi``, ``reward_mean``, ``error_rate``, ``guardrail_rollback``
            (non-empty). A rule's ``signal`` selects signals by this name.
        labels: which thing it is about, e.g. ``{"deployment": "hvac", "feature": "outdoor_temp"}``; string keys
            and values. A rule's ``match`` filters on them, and each distinct label set of a rule is its own alert.
            ``deployment`` is the label alert listings filter on.
        value: the number. NaN means "no value": the evaluator ignores such a signal (as if it were absent).

    Raises:
        ValidationError: an empty name, or a label key or value that is not a string.
    """

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    value: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValidationError("signal.name", f"must be a non-empty string, got {self.name!r}")
        for key, val in self.labels.items():
            if not isinstance(key, str) or not isinstance(val, str):
                raise ValidationError(f"signal.labels.{key}", f"keys and values must be strings, got {val!r}")
        object.__setattr__(self, "labels", dict(self.labels))  # a private copy: the caller's dict may change
        object.__setattr__(self, "value", float(self.value))

    @property
    def key(self) -> str:
        """:func:`labels_key` of the labels."""
        return labels_key(self.labels)


def _own_labels(labels: Mapping[str, str], reserved: tuple[str, ...], helper: str) -> dict[str, str]:
    clash = sorted(set(labels) & set(reserved))
    if clash:
        raise ValidationError("labels", f"{helper} sets {clash} itself; use other label names")
    return dict(labels)


def _feature_signals(result: FeatureDrift, source: str, labels: dict[str, str]) -> list[Signal]:
    return [Signal(f"drift_{m.metric.value}", {**labels, "source": source, "feature": result.name}, m.value)
            for m in result.metrics if not math.isnan(m.value)]


def drift_signals(report: BatchDriftReport, labels: Mapping[str, str] | None = None) -> list[Signal]:
    """A batch drift report as signals: one per feature per statistic, and the overall severity.

    * ``drift_<metric>`` (``drift_psi``, ``drift_ks``, ``drift_wasserstein``, ``drift_jensen_shannon``,
      ``drift_cramers_v``) with labels ``source`` (``context``, ``action`` or ``reward``) and ``feature`` (the
      feature, action or reward column's name);
    * ``drift_domain_auc`` with ``source=multivariate``, when the domain classifier ran;
    * ``drift_severity``: the report's overall severity as a number (none 0, warn 1, alert 2).

    Args:
        report: from :func:`rlops.monitoring.drift.batch_drift`.
        labels: added to every signal, typically ``{"deployment": ..., "policy_version": ...}``; must not use
            ``source`` or ``feature``.

    Raises:
        ValidationError: ``labels`` uses a label this helper sets.
    """
    base = _own_labels(labels or {}, DRIFT_LABELS, "drift_signals")
    signals: list[Signal] = []
    for result in report.features:
        signals += _feature_signals(result, "context", base)
    for result in report.actions:
        signals += _feature_signals(result, "action", base)
    if report.rewards is not None:
        signals += _feature_signals(report.rewards, "reward", base)
    if report.multivariate is not None and not math.isnan(report.multivariate.auc):
        signals.append(Signal("drift_domain_auc", {**base, "source": "multivariate"}, report.multivariate.auc))
    signals.append(Signal("drift_severity", base, SEVERITY_RANK[report.severity.value]))
    return signals


def guardrail_signals(result: GuardrailResult, labels: Mapping[str, str] | None = None) -> list[Signal]:
    """A canary guardrail verdict as signals.

    * ``guardrail_rollback``: 1 when the decision is ROLLBACK, else 0 (a rule ``guardrail_rollback >= 1`` with
      action ``rollback`` rolls the canary back);
    * ``guardrail_promote``: 1 when the decision is PROMOTE, else 0;
    * per metric (label ``metric``): ``guardrail_margin`` (how far inside its tolerance the canary is; < 0 is
      worse than tolerated) and ``guardrail_difference`` (canary mean minus production mean), when estimated.

    Args:
        result: from :meth:`rlops.rollout.GuardrailMonitor.update`.
        labels: added to every signal, typically ``{"deployment": ..., "policy_version": ...}``; must not use
            ``metric``.

    Raises:
        ValidationError: ``labels`` uses a label this helper sets.
    """
    base = _own_labels(labels or {}, GUARDRAIL_LABELS, "guardrail_signals")
    decision = result.decision.value
    signals = [Signal("guardrail_rollback", base, 1.0 if decision == "rollback" else 0.0),
               Signal("guardrail_promote", base, 1.0 if decision == "promote" else 0.0)]
    for metric in result.metrics:
        for name, value in (("guardrail_margin", metric.margin.estimate),
                            ("guardrail_difference", metric.difference.estimate)):
            if not math.isnan(value):
                signals.append(Signal(name, {**base, "metric": metric.metric}, value))
    return signals
