"""Webhook delivery against a real local HTTP server: payload, retries, failures recorded and never raised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rlops.errors import ValidationError
from rlops.home import Home
from rlops.monitoring.alerts import (
    Action,
    AlertEvaluator,
    AlertRecord,
    AlertRules,
    AlertState,
    AlertStore,
    DeliveryStatus,
    Signal,
    WebhookSender,
)
from tests.monitoring.alerts.conftest import Receiver

#: Every test runs on SQLite and on PostgreSQL (see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("home_on_backend")

HVAC = {"deployment": "hvac", "feature": "outdoor_temp"}


def _rules(url: str, **rule: Any) -> AlertRules:
    return AlertRules.from_dict({"webhook": url, "resolve_after": 0, "rules": [
        {"name": "drift", "signal": "drift_psi", "op": ">", "threshold": 0.25, "severity": "critical",
         "description": "outdoor temperature moved", **rule}]})


@pytest.fixture
def store(tmp_path: Path) -> AlertStore:
    return AlertStore.for_home(Home(tmp_path / "home").ensure())


def test_fire_and_resolve_are_posted_with_the_alert_record(store: AlertStore, receiver: Receiver,
                                                           sender: WebhookSender) -> None:
    def rollback(alert: AlertRecord) -> str:
        return "rolled back to hvac@1"

    evaluator = AlertEvaluator(_rules(receiver.url, action="rollback"), store, webhook=sender,
                               actions={Action.ROLLBACK: rollback})
    (fired,) = evaluator.evaluate([Signal("drift_psi", HVAC, 0.31)], 1_700_000_000_000_000)
    assert len(receiver.bodies) == 1
    body = receiver.bodies[0]
    assert body["id"] == fired.alert.id and body["rule"] == "drift" and body["state"] == "firing"
    assert body["severity"] == "critical" and body["labels"] == HVAC and body["deployment"] == "hvac"
    assert body["value"] == 0.31 and body["op"] == ">" and body["threshold"] == 0.25
    assert body["fired_at"] == "2023-11-14T22:13:20.000000Z" and body["fired_at_us"] == 1_700_000_000_000_000
    assert body["resolved_at"] is None and body["action"] == "rollback"
    assert body["action_result"] == "rolled back to hvac@1"  # the receiver learns what was done
    assert body["message"].endswith(": outdoor temperature moved") and "deliveries" not in body
    assert receiver.headers[0]["Content-Type"] == "application/json"
    assert fired.alert.webhook_status is DeliveryStatus.DELIVERED
    assert fired.alert.deliveries[0].http_status == 200 and fired.alert.deliveries[0].attempts == 1

    (resolved,) = evaluator.evaluate([Signal("drift_psi", HVAC, 0.05)], 1_700_000_060_000_000)
    assert len(receiver.bodies) == 2
    assert receiver.bodies[1]["state"] == "resolved" and receiver.bodies[1]["resolved_value"] == 0.05
    assert receiver.bodies[1]["resolved_at_us"] == 1_700_000_060_000_000
    stored = store.get(resolved.alert.id)
    assert [(d.state, d.status) for d in stored.deliveries] == [(AlertState.FIRING, DeliveryStatus.DELIVERED),
                                                               (AlertState.RESOLVED, DeliveryStatus.DELIVERED)]


def test_a_500_then_200_is_retried_and_delivered(store: AlertStore, receiver: Receiver,
                                                 sender: WebhookSender) -> None:
    receiver.statuses = [500, 200]
    (event,) = AlertEvaluator(_rules(receiver.url), store, webhook=sender).evaluate(
        [Signal("drift_psi", HVAC, 0.4)], 0)
    assert len(receiver.bodies) == 2 and receiver.bodies[0] == receiver.bodies[1]
    delivery = event.alert.deliveries[-1]
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts == 2 and delivery.http_status == 200


def test_a_receiver_that_keeps_failing_gets_bounded_attempts_and_the_failure_is_stored(
        store: AlertStore, receiver: Receiver, sender: WebhookSender) -> None:
    receiver.statuses = [503]
    (event,) = AlertEvaluator(_rules(receiver.url), store, webhook=sender).evaluate(
        [Signal("drift_psi", HVAC, 0.4)], 0)
    assert len(receiver.bodies) == 3  # sender.attempts
    stored = store.get(event.alert.id)
    assert stored.state is AlertState.FIRING and stored.webhook_status is DeliveryStatus.FAILED
    assert stored.deliveries[0].attempts == 3 and stored.deliveries[0].http_status == 503
    assert stored.deliveries[0].error == "HTTP 503: receiver broke"


def test_a_client_error_is_not_retried(store: AlertStore, receiver: Receiver, sender: WebhookSender) -> None:
    receiver.statuses = [404]
    (event,) = AlertEvaluator(_rules(receiver.url), store, webhook=sender).evaluate(
        [Signal("drift_psi", HVAC, 0.4)], 0)
    assert len(receiver.bodies) == 1 and event.alert.deliveries[0].attempts == 1
    assert event.alert.webhook_status is DeliveryStatus.FAILED


def test_an_unreachable_url_fails_without_raising_and_keeps_the_alert(store: AlertStore, closed_url: str,
                                                                      sender: WebhookSender) -> None:
    evaluator = AlertEvaluator(_rules(closed_url), store, webhook=sender)
    (event,) = evaluator.evaluate([Signal("drift_psi", HVAC, 0.4)], 0)
    delivery = event.alert.deliveries[0]
    assert delivery.status is DeliveryStatus.FAILED and delivery.attempts == 3 and delivery.http_status is None
    assert delivery.error is not None and "ConnectError" in delivery.error
    assert [a.id for a in store.list_alerts(state=AlertState.FIRING)] == [event.alert.id]
    # still firing: not re-fired, not re-posted
    assert evaluator.evaluate([Signal("drift_psi", HVAC, 0.5)], 1) == []
    assert len(store.get(event.alert.id).deliveries) == 1


def test_a_sender_that_raises_is_recorded(store: AlertStore) -> None:
    class Broken(WebhookSender):
        def send(self, url: str, payload: Any, state: AlertState) -> Any:
            raise RuntimeError("boom")

    (event,) = AlertEvaluator(_rules("http://127.0.0.1:1/x"), store, webhook=Broken()).evaluate(
        [Signal("drift_psi", HVAC, 0.4)], 0)
    assert event.alert.webhook_status is DeliveryStatus.FAILED and event.alert.deliveries[0].error == \
        "RuntimeError: boom"


def test_rule_webhook_overrides_and_no_webhook_means_none(store: AlertStore, receiver: Receiver,
                                                          sender: WebhookSender) -> None:
    rules = AlertRules.from_dict({"resolve_after": 0, "rules": [
        {"name": "quiet", "signal": "drift_psi", "op": ">", "threshold": 0.25},
        {"name": "loud", "signal": "drift_psi", "op": ">", "threshold": 0.25, "webhook": receiver.url}]})
    events = {e.alert.rule: e.alert for e in AlertEvaluator(rules, store, webhook=sender).evaluate(
        [Signal("drift_psi", HVAC, 0.4)], 0)}
    assert events["quiet"].webhook is None and events["quiet"].webhook_status is DeliveryStatus.NONE
    assert events["loud"].webhook_status is DeliveryStatus.DELIVERED
    assert [b["rule"] for b in receiver.bodies] == ["loud"]


def test_sender_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="attempts"):
        WebhookSender(attempts=0)
    with pytest.raises(ValidationError, match="timeout_s"):
        WebhookSender(timeout_s=0)
    with pytest.raises(ValidationError, match="backoff_s"):
        WebhookSender(backoff_s=-1)
