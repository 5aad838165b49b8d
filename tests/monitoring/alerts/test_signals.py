"""Signals: the model's checks, and drift reports and guardrail verdicts turned into signals."""

from __future__ import annotations

import numpy as np
import pytest

from rlops.errors import ValidationError
from rlops.monitoring.alerts import Signal, drift_signals, guardrail_signals, labels_key
from rlops.monitoring.drift import ReferenceProfile, batch_drift
from rlops.rollout import GuardrailConfig, GuardrailMonitor
from rlops.schema import Schema

SCHEMA = Schema.model_validate({
    "features": [{"name": "outdoor_temp", "type": "float"}, {"name": "occupancy", "type": "float"}],
    "actions": {"type": "discrete", "names": ["off", "low", "high"]},
})


def test_signal_checks_and_copies_its_labels() -> None:
    labels = {"deployment": "hvac"}
    signal = Signal("error_rate", labels, 1)
    labels["deployment"] = "other"
    assert signal.labels == {"deployment": "hvac"} and signal.value == 1.0 and isinstance(signal.value, float)
    assert signal.key == labels_key({"deployment": "hvac"}) == '{"deployment":"hvac"}'
    assert labels_key({"b": "2", "a": "1"}) == labels_key({"a": "1", "b": "2"})
    with pytest.raises(ValidationError, match=r"signal\.name"):
        Signal("", {}, 1.0)
    with pytest.raises(ValidationError, match=r"signal\.labels\.version"):
        Signal("x", {"version": 2}, 1.0)  # type: ignore[dict-item]


def _window(n: int, seed: int, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.normal(10 + shift, 3, n), rng.normal(50, 10, n)])


def test_drift_report_becomes_one_signal_per_feature_per_statistic() -> None:
    rng = np.random.default_rng(0)
    profile = ReferenceProfile.build(SCHEMA, _window(3000, 0, 0.0), actions=rng.integers(0, 3, 3000),
                                     rewards=rng.normal(1, 0.5, 3000))
    report = batch_drift(profile, _window(2000, 1, 6.0), actions=rng.integers(0, 3, 2000),
                         rewards=rng.normal(1, 0.5, 2000))
    signals = drift_signals(report, {"deployment": "hvac", "policy_version": "hvac@2"})
    by_key = {(s.name, s.labels.get("source"), s.labels.get("feature")): s for s in signals}
    assert all(s.labels["deployment"] == "hvac" and s.labels["policy_version"] == "hvac@2" for s in signals)
    for feature in report.features:
        for metric in feature.metrics:
            signal = by_key[(f"drift_{metric.metric.value}", "context", feature.name)]
            assert signal.value == metric.value
    assert len([s for s in signals if s.labels.get("source") == "context"]) == \
        sum(len(f.metrics) for f in report.features)
    assert by_key[("drift_psi", "context", "outdoor_temp")].value > 0.25  # the shifted feature
    assert by_key[("drift_psi", "context", "occupancy")].value < 0.1
    assert ("drift_psi", "action", report.actions[0].name) in by_key
    assert ("drift_psi", "reward", report.rewards.name if report.rewards else "") in by_key
    severity = [s for s in signals if s.name == "drift_severity"]
    assert len(severity) == 1 and severity[0].value == 2.0 and report.severity.value == "alert"
    with pytest.raises(ValidationError, match="labels: drift_signals sets"):
        drift_signals(report, {"feature": "x"})


def test_guardrail_verdict_becomes_signals() -> None:
    monitor = GuardrailMonitor(GuardrailConfig(min_samples=50, max_samples=5_000))
    rng = np.random.default_rng(0)
    arms = rng.integers(0, 2, size=400)
    result = monitor.update(arms, rng.normal(np.where(arms == 1, 0.5, 1.0), 1.0))
    assert result.decision.value == "rollback"
    signals = {(s.name, s.labels.get("metric")): s for s in guardrail_signals(result, {"deployment": "hvac"})}
    assert signals[("guardrail_rollback", None)].value == 1.0
    assert signals[("guardrail_promote", None)].value == 0.0
    assert signals[("guardrail_margin", "reward")].value == result.metric("reward").margin.estimate < 0
    assert signals[("guardrail_difference", "reward")].value == pytest.approx(-0.5, abs=0.3)
    assert all(s.labels["deployment"] == "hvac" for s in signals.values())
    with pytest.raises(ValidationError, match="labels: guardrail_signals sets"):
        guardrail_signals(result, {"metric": "x"})
