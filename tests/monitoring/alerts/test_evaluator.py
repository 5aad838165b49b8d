"""The state machine over time: pending, firing once, hysteresis, resolving, re-firing; persistence; actions."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from rlops.home import Home
from rlops.monitoring.alerts import (
    Action,
    AlertEvaluator,
    AlertRecord,
    AlertRules,
    AlertState,
    AlertStore,
    InstanceState,
    Signal,
    Transition,
)

#: Every test runs on SQLite and on PostgreSQL (see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("home_on_backend")

S = 1_000_000  # microseconds per second
HVAC = {"deployment": "hvac", "feature": "outdoor_temp"}


def _rules(**rule: Any) -> AlertRules:
    base = {"name": "drift", "signal": "drift_psi", "op": ">", "threshold": 0.25}
    return AlertRules.from_dict({"resolve_after": 0, "rules": [{**base, **rule}]})


@pytest.fixture
def store(tmp_path: Path) -> AlertStore:
    return AlertStore.for_home(Home(tmp_path / "home").ensure())


def psi(value: float, **labels: str) -> list[Signal]:
    return [Signal("drift_psi", {**HVAC, **labels}, value)]


def test_pending_until_for_then_fires_once(store: AlertStore) -> None:
    evaluator = AlertEvaluator(_rules(**{"for": "5m"}), store)
    assert evaluator.evaluate(psi(0.3), 0) == []
    assert store.instance_state("drift", HVAC) is InstanceState.PENDING
    assert evaluator.evaluate(psi(0.4), 299 * S) == []  # 4m59s: not yet
    fired = evaluator.evaluate(psi(0.5), 300 * S)
    assert [e.transition for e in fired] == [Transition.FIRED]
    alert = fired[0].alert
    assert alert.state is AlertState.FIRING and alert.value == 0.5 and alert.fired_at_us == 300 * S
    assert alert.labels == HVAC and alert.deployment == "hvac" and alert.rule == "drift"
    assert alert.message == "drift: drift_psi{deployment=hvac,feature=outdoor_temp} = 0.5 > 0.25 for 5m"
    assert store.instance_state("drift", HVAC) is InstanceState.FIRING
    for t in range(301, 400, 10):  # still true: no second alert
        assert evaluator.evaluate(psi(0.6), t * S) == []
    assert len(store.list_alerts()) == 1


def test_condition_breaking_while_pending_restarts_the_for_clock(store: AlertStore) -> None:
    evaluator = AlertEvaluator(_rules(**{"for": "60s"}), store)
    evaluator.evaluate(psi(0.3), 0)
    evaluator.evaluate(psi(0.1), 30 * S)  # false: back to inactive
    assert store.instance_state("drift", HVAC) is InstanceState.INACTIVE
    assert evaluator.evaluate(psi(0.3), 40 * S) == []  # pending again from 40 s
    assert evaluator.evaluate(psi(0.3), 90 * S) == []  # 50 s held, not 60
    assert [e.transition for e in evaluator.evaluate(psi(0.3), 100 * S)] == [Transition.FIRED]


def test_for_zero_fires_on_first_sight_and_resolves_then_refires(store: AlertStore) -> None:
    evaluator = AlertEvaluator(_rules(), store)
    first = evaluator.evaluate(psi(0.3), 1 * S)
    assert [e.transition for e in first] == [Transition.FIRED]
    resolved = evaluator.evaluate(psi(0.1), 2 * S)
    assert [e.transition for e in resolved] == [Transition.RESOLVED]
    record = resolved[0].alert
    assert record.id == first[0].alert.id and record.state is AlertState.RESOLVED
    assert record.resolved_at_us == 2 * S and record.resolved_value == 0.1 and record.value == 0.3
    assert store.instance_state("drift", HVAC) is InstanceState.INACTIVE
    again = evaluator.evaluate(psi(0.35), 3 * S)
    assert [e.transition for e in again] == [Transition.FIRED] and again[0].alert.id != record.id
    assert [a.state for a in store.list_alerts()] == [AlertState.FIRING, AlertState.RESOLVED]  # newest first


def test_flapping_fires_once_while_resolve_after_has_not_run_out(store: AlertStore) -> None:
    evaluator = AlertEvaluator(_rules(resolve_after="2m"), store)
    transitions: list[tuple[int, Transition]] = []
    # flaps every 30 s for 10 minutes: never false for 2 minutes in a row
    for t in range(0, 600, 30):
        value = 0.3 if (t // 30) % 2 == 0 else 0.1
        transitions += [(t, e.transition) for e in evaluator.evaluate(psi(value), t * S)]
    assert transitions == [(0, Transition.FIRED)]
    assert store.instance_state("drift", HVAC) is InstanceState.FIRING
    # then false for good: resolves 2 minutes after the first false evaluation of the final run
    assert evaluator.evaluate(psi(0.1), 600 * S) == []  # clock started at 570 s (the last flap was false)
    assert evaluator.evaluate(psi(0.1), 689 * S) == []
    assert [e.transition for e in evaluator.evaluate(psi(0.1), 690 * S)] == [Transition.RESOLVED]
    assert len(store.list_alerts()) == 1


def test_resolve_after_zero_lets_flapping_fire_again_after_each_resolve(store: AlertStore) -> None:
    evaluator = AlertEvaluator(_rules(), store)  # resolve_after 0: the documented trade-off
    kinds = [e.transition for t, v in enumerate([0.3, 0.3, 0.1, 0.3, 0.1]) for e in evaluator.evaluate(psi(v), t)]
    assert kinds == [Transition.FIRED, Transition.RESOLVED, Transition.FIRED, Transition.RESOLVED]


def test_absent_or_nan_signals_keep_the_state(store: AlertStore) -> None:
    evaluator = AlertEvaluator(_rules(**{"for": "60s"}), store)
    evaluator.evaluate(psi(0.3), 0)
    assert evaluator.evaluate([], 30 * S) == []
    assert evaluator.evaluate(psi(float("nan")), 45 * S) == []
    assert evaluator.evaluate([Signal("other", HVAC, 0.0)], 50 * S) == []
    assert store.instance_state("drift", HVAC) is InstanceState.PENDING
    assert [e.transition for e in evaluator.evaluate(psi(0.3), 60 * S)] == [Transition.FIRED]
    assert evaluator.evaluate([], 120 * S) == []
    assert store.instance_state("drift", HVAC) is InstanceState.FIRING


def test_each_label_set_is_its_own_alert_and_match_filters(store: AlertStore) -> None:
    evaluator = AlertEvaluator(_rules(match={"deployment": "hvac"}), store)
    events = evaluator.evaluate([Signal("drift_psi", {"deployment": "hvac", "feature": "a"}, 0.3),
                                 Signal("drift_psi", {"deployment": "hvac", "feature": "b"}, 0.4),
                                 Signal("drift_psi", {"deployment": "hvac", "feature": "c"}, 0.1),
                                 Signal("drift_psi", {"deployment": "shop", "feature": "a"}, 0.9),
                                 Signal("drift_ks", {"deployment": "hvac", "feature": "a"}, 0.9)], 0)
    assert sorted(e.alert.labels["feature"] for e in events) == ["a", "b"]
    assert {e.alert.deployment for e in events} == {"hvac"}


def test_the_last_duplicate_of_a_label_set_counts(store: AlertStore) -> None:
    evaluator = AlertEvaluator(_rules(), store)
    events = evaluator.evaluate([*psi(0.9), *psi(0.1)], 0)
    assert events == []


def test_state_survives_a_new_evaluator(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    rules = _rules(**{"for": "60s"}, resolve_after="60s")
    with AlertStore.for_home(home) as store:
        AlertEvaluator(rules, store).evaluate(psi(0.3), 0)  # pending from 0
    with AlertStore.for_home(home) as store:  # a restarted process: the for clock kept counting
        assert [e.transition for e in AlertEvaluator(rules, store).evaluate(psi(0.3), 60 * S)] == [Transition.FIRED]
    with AlertStore.for_home(home) as store:  # still firing: a new evaluator does not fire it again
        assert AlertEvaluator(rules, store).evaluate(psi(0.3), 70 * S) == []
        assert AlertEvaluator(rules, store).evaluate(psi(0.1), 80 * S) == []  # resolve clock starts at 80 s
    with AlertStore.for_home(home) as store:
        assert AlertEvaluator(rules, store).evaluate(psi(0.1), 139 * S) == []
        events = AlertEvaluator(rules, store).evaluate(psi(0.1), 140 * S)
        assert [e.transition for e in events] == [Transition.RESOLVED]
        assert len(store.list_alerts()) == 1


def test_two_evaluators_on_one_database_fire_an_alert_once(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    rules = _rules()
    stores = [AlertStore.for_home(home) for _ in range(4)]
    fired: list[int] = []
    barrier = threading.Barrier(len(stores))

    def run(store: AlertStore) -> None:
        evaluator = AlertEvaluator(rules, store)
        barrier.wait()
        fired.extend(e.alert.id for e in evaluator.evaluate(psi(0.3), 0))

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fired) == 1 and len(stores[0].list_alerts()) == 1
    for s in stores:
        s.close()


def test_actions_run_on_fire_and_their_result_is_stored(store: AlertStore) -> None:
    rules = AlertRules.from_dict({"resolve_after": 0, "rules": [
        {"name": "canary", "signal": "guardrail_rollback", "op": ">=", "threshold": 1, "action": "rollback",
         "severity": "critical"},
        {"name": "retrain", "signal": "drift_psi", "op": ">", "threshold": 0.25, "action": "retrain"},
        {"name": "notify", "signal": "error_rate", "op": ">", "threshold": 0.1},
    ]})
    seen: list[AlertRecord] = []

    def rollback(alert: AlertRecord) -> str:
        seen.append(alert)
        return f"rolled back {alert.labels['deployment']} to hvac@1"

    evaluator = AlertEvaluator(rules, store, actions={Action.ROLLBACK: rollback})
    signals = [Signal("guardrail_rollback", {"deployment": "hvac"}, 1.0), *psi(0.3),
               Signal("error_rate", {"deployment": "hvac"}, 0.2)]
    events = {e.alert.rule: e.alert for e in evaluator.evaluate(signals, 0)}
    assert events["canary"].action_result == "rolled back hvac to hvac@1"
    assert len(seen) == 1 and seen[0].state is AlertState.FIRING and seen[0].id == events["canary"].id
    assert events["retrain"].action_result == "not configured (the evaluator has no retrain handler)"
    assert events["notify"].action is Action.NOTIFY and events["notify"].action_result is None
    assert store.get(events["canary"].id).action_result == "rolled back hvac to hvac@1"
    # actions run on firing only, never again while firing, and not on resolve
    evaluator.evaluate(signals, 1)
    evaluator.evaluate([Signal("guardrail_rollback", {"deployment": "hvac"}, 0.0)], 2)
    assert len(seen) == 1


def test_a_failing_action_is_recorded_not_raised(store: AlertStore) -> None:
    def broken(_alert: AlertRecord) -> str:
        raise RuntimeError("registry unreachable")

    evaluator = AlertEvaluator(_rules(action="retrain"), store, actions={Action.RETRAIN: broken})
    (event,) = evaluator.evaluate(psi(0.3), 0)
    assert event.alert.action_result == "failed: RuntimeError: registry unreachable"
    assert store.list_alerts()[0].state is AlertState.FIRING


def test_rules_only_see_their_own_instances(store: AlertStore) -> None:
    AlertEvaluator(_rules(), store).evaluate(psi(0.3), 0)
    other = AlertEvaluator(_rules(name="other"), store)
    assert [e.alert.rule for e in other.evaluate(psi(0.3), 1)] == ["other"]
    assert {i.rule for i in store.instances()} == {"drift", "other"}
    assert [i.rule for i in store.instances(["other"])] == ["other"]
