"""Alerts: rules over signals (metrics, drift, guardrails) that fire stored alerts, POST them to a webhook, and roll
a canary back or trigger retraining (see ``docs/alerts.md``).

Compute, judge, present: producers turn their results into :class:`Signal` values (:func:`drift_signals`,
:func:`guardrail_signals`, or by hand); :class:`AlertEvaluator` judges them against :class:`AlertRules` (a YAML
file) with a per-(rule, label set) state machine kept in :class:`AlertStore` (the home's ``meta.db``); ``rlops
alerts`` presents the stored :class:`AlertRecord` values.

Example:
    >>> rules = AlertRules.from_dict({"resolve_after": 0, "rules": [
    ...     {"name": "errors", "signal": "error_rate", "op": ">", "threshold": 0.05, "severity": "critical"}]})
    >>> evaluator = AlertEvaluator(rules, AlertStore("sqlite://"))
    >>> [(e.transition.value, e.alert.state.value) for e in evaluator.evaluate([Signal("error_rate", {}, 0.2)], 1)]
    [('fired', 'firing')]
    >>> evaluator.evaluate([Signal("error_rate", {}, 0.3)], 2)  # still firing: not fired again
    []
    >>> [(e.transition.value, e.alert.state.value) for e in evaluator.evaluate([Signal("error_rate", {}, 0.0)], 3)]
    [('resolved', 'resolved')]
"""

from rlops.monitoring.alerts.evaluator import ActionHandler, AlertEvaluator, AlertEvent, Transition, not_configured
from rlops.monitoring.alerts.rules import Action, AlertRule, AlertRules, AlertSeverity, Op, format_span, parse_span
from rlops.monitoring.alerts.signals import Signal, drift_signals, guardrail_signals, labels_key
from rlops.monitoring.alerts.store import (
    AlertInstance,
    AlertRecord,
    AlertState,
    AlertStore,
    Delivery,
    DeliveryStatus,
    InstanceState,
)
from rlops.monitoring.alerts.webhook import WebhookSender

__all__ = [
    "Action",
    "ActionHandler",
    "AlertEvaluator",
    "AlertEvent",
    "AlertInstance",
    "AlertRecord",
    "AlertRule",
    "AlertRules",
    "AlertSeverity",
    "AlertState",
    "AlertStore",
    "Delivery",
    "DeliveryStatus",
    "InstanceState",
    "Op",
    "Signal",
    "Transition",
    "WebhookSender",
    "drift_signals",
    "format_span",
    "guardrail_signals",
    "labels_key",
    "not_configured",
    "parse_span",
]
