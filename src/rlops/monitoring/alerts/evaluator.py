"""The alert evaluator: signals in, alert state changes out (stored, acted on, POSTed).

Each (rule, label set) is an *instance* with a small state machine, kept in the store::

    INACTIVE --condition true--> PENDING --held for `for`--> FIRING --false for `resolve_after`--> INACTIVE
                 (for = 0: straight to FIRING)   |                    (the record becomes RESOLVED)
                                                 +--condition false--> INACTIVE

* An alert **fires once** per episode: while FIRING, a true condition does nothing, and a condition that turns
  false only starts the ``resolve_after`` clock; turning true again before it runs out stops the clock. So a signal
  flapping around its threshold yields one alert, not one per flap (flapping suppression with hysteresis).
* After it resolves, the next true condition starts a new episode and, after ``for``, a new alert record.
* A signal that is absent from an evaluation (or NaN) is *unknown*, not false: its instance keeps its state and
  its clocks. Producers that evaluate separately (drift hourly, metrics every 15 s) therefore never resolve each
  other's alerts.
* State lives in the store, so a new evaluator (a restarted process) carries on where the last one stopped: it does
  not re-fire an alert that is still firing, and a pending ``for`` keeps counting from when it started.

Firing stores the alert first, then runs the rule's action (see :class:`Action`) and stores its result, then POSTs
the record to the rule's webhook and stores the delivery; resolving stores the resolution, then POSTs it. Neither
an action handler nor a webhook can make :meth:`AlertEvaluator.evaluate` raise or lose an alert.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from rlops.monitoring.alerts.rules import Action, AlertRule, AlertRules, format_span
from rlops.monitoring.alerts.signals import Signal
from rlops.monitoring.alerts.store import (
    AlertInstance,
    AlertRecord,
    AlertStore,
    Delivery,
    DeliveryStatus,
    InstanceState,
    NewAlert,
)
from rlops.monitoring.alerts.store import now_us as clock_us
from rlops.monitoring.alerts.webhook import WebhookSender

log = logging.getLogger(__name__)

#: An action handler: given the stored alert, do the thing and say in one line what was done.
ActionHandler = Callable[[AlertRecord], str]


class Transition(StrEnum):
    """A change :meth:`AlertEvaluator.evaluate` reports."""

    FIRED = "fired"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class AlertEvent:
    """An alert that fired or resolved in one evaluation.

    Attributes:
        transition: FIRED or RESOLVED.
        alert: the stored record after the action and the webhook ran.
    """

    transition: Transition
    alert: AlertRecord


def not_configured(action: Action) -> ActionHandler:
    """The default handler of ``action``: does nothing and says so on the alert."""
    def handler(_alert: AlertRecord) -> str:
        return f"not configured (the evaluator has no {action.value} handler)"

    return handler


def _matches(rule: AlertRule, signal: Signal) -> bool:
    return signal.name == rule.signal and all(signal.labels.get(k) == v for k, v in rule.match.items())


def _message(rule: AlertRule, signal: Signal) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(signal.labels.items()))
    held = f" for {format_span(rule.for_s)}" if rule.for_s else ""
    text = f"{rule.name}: {signal.name}{{{labels}}} = {signal.value:.4g} {rule.op.value} {rule.threshold:g}{held}"
    return f"{text}: {rule.description}" if rule.description else text


class AlertEvaluator:
    """Evaluates a rules file over signals and keeps every alert's state in a store.

    Args:
        rules: the rules.
        store: where alert records and instance states live (shared by every evaluator on the same home).
        actions: handlers for ``rollback`` and ``retrain``; a missing one records "not configured" on the alert.
            ``notify`` needs none. A handler that raises is recorded as ``failed: ...``.
        webhook: the sender (default :class:`WebhookSender()`: 5 s timeout, 3 attempts).

    Example:
        >>> from rlops.monitoring.alerts import AlertRules, AlertStore, Signal
        >>> rules = AlertRules.from_dict({"rules": [{"name": "slow", "signal": "latency_p99_ms", "op": ">",
        ...                                          "threshold": 50, "for": "1m"}]})
        >>> evaluator = AlertEvaluator(rules, AlertStore("sqlite://"))
        >>> evaluator.evaluate([Signal("latency_p99_ms", {"deployment": "hvac"}, 80.0)], now_us=0)
        []
        >>> [e.alert.message for e in evaluator.evaluate([Signal("latency_p99_ms", {"deployment": "hvac"}, 90.0)],
        ...                                               now_us=60_000_000)]
        ['slow: latency_p99_ms{deployment=hvac} = 90 > 50 for 1m']
    """

    def __init__(self, rules: AlertRules, store: AlertStore, *, actions: Mapping[Action, ActionHandler] | None = None,
                 webhook: WebhookSender | None = None) -> None:
        self.rules = rules
        self.store = store
        self.handlers: dict[Action, ActionHandler] = {a: not_configured(a) for a in (Action.ROLLBACK, Action.RETRAIN)}
        self.handlers.update(actions or {})
        self.webhook = webhook or WebhookSender()

    def evaluate(self, signals: Iterable[Signal], now_us: int | None = None) -> list[AlertEvent]:
        """Advance every (rule, label set) seen in ``signals`` to time ``now_us``.

        Args:
            signals: this evaluation's observations. When one label set of a signal appears more than once, the
                last one counts. NaN values are ignored.
            now_us: the evaluation time, microseconds since the epoch (default: now). Durations are measured on it,
                so evaluations should come in non-decreasing time.

        Returns:
            The alerts that fired or resolved, in rule order.

        Raises:
            StorageError: the metadata database cannot be written (nothing is half-stored: each change is one
                transaction).
        """
        at = now_us if now_us is not None else clock_us()
        observed = [s for s in signals if not math.isnan(s.value)]
        current = {(i.rule, i.key): i for i in self.store.instances([r.name for r in self.rules.rules])}
        events: list[AlertEvent] = []
        for rule in self.rules.rules:
            latest: dict[str, Signal] = {}
            for signal in observed:
                if _matches(rule, signal):
                    latest[signal.key] = signal
            for key, signal in latest.items():
                event = self._step(rule, signal, current.get((rule.name, key)), at)
                if event is not None:
                    events.append(event)
        return events

    def _step(self, rule: AlertRule, signal: Signal, instance: AlertInstance | None, at: int) -> AlertEvent | None:
        holds = rule.op.holds(signal.value, rule.threshold)
        state = InstanceState.INACTIVE if instance is None else instance.state
        if state is InstanceState.FIRING and instance is not None:
            return self._firing(rule, signal, instance, holds, at)
        if not holds:
            if instance is not None:  # PENDING: the condition broke before `for` was over
                self.store.drop_pending(instance)
            return None
        if instance is None and rule.for_s > 0:
            self.store.start_pending(rule.name, signal.labels, at)
            return None
        if instance is not None and at - instance.since_us < rule.for_s * 1e6:
            return None
        return self._fire(rule, signal, instance, at)

    def _firing(self, rule: AlertRule, signal: Signal, instance: AlertInstance, holds: bool,
                at: int) -> AlertEvent | None:
        if holds:
            if instance.clear_since_us is not None:  # true again before resolve_after ran out: stay firing
                self.store.set_clearing(instance, None)
            return None
        clear_since = instance.clear_since_us if instance.clear_since_us is not None else at
        if at - clear_since < self.rules.resolve_after_for(rule) * 1e6:
            if instance.clear_since_us is None:
                self.store.set_clearing(instance, clear_since)
            return None
        record = self.store.resolve(instance, at, signal.value)
        if record is None:  # another evaluator resolved it first
            return None
        return AlertEvent(Transition.RESOLVED, self._notify(record))

    def _fire(self, rule: AlertRule, signal: Signal, instance: AlertInstance | None, at: int) -> AlertEvent | None:
        new = NewAlert(rule.name, rule.signal, rule.severity, dict(signal.labels), signal.value, rule.op,
                       rule.threshold, _message(rule, signal), rule.action, self.rules.webhook_for(rule))
        record = self.store.fire(new, instance, at)
        if record is None:  # another evaluator fired it first
            return None
        record = self._act(record)
        return AlertEvent(Transition.FIRED, self._notify(record))

    def _act(self, record: AlertRecord) -> AlertRecord:
        if record.action is Action.NOTIFY:
            return record
        try:
            result = self.handlers[record.action](record)
        except Exception as e:  # a handler is someone else's code: its failure is recorded, never raised
            log.exception("alert %s: %s handler failed", record.id, record.action.value)
            result = f"failed: {type(e).__name__}: {e}"
        return self.store.record_action(record.id, str(result))

    def _notify(self, record: AlertRecord) -> AlertRecord:
        if record.webhook is None:
            return record
        try:
            delivery = self.webhook.send(record.webhook, record.to_dict(deliveries=False), record.state)
        except Exception as e:  # a custom sender may raise; the alert is stored either way
            log.exception("alert %s: webhook sender failed", record.id)
            delivery = Delivery(record.state, DeliveryStatus.FAILED, 0, clock_us(), None, f"{type(e).__name__}: {e}")
        return self.store.record_delivery(record.id, delivery)
