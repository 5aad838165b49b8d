"""The rules file: defaults, durations, operators, and clear errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rlops.errors import ConfigError
from rlops.monitoring.alerts import Action, AlertRules, AlertSeverity, Op, format_span, parse_span

EXAMPLE = """
webhook: http://alerts.example:9000/rlops
resolve_after: 2m
rules:
  - name: feature-drift
    signal: drift_psi
    match: {deployment: hvac}
    op: ">"
    threshold: 0.25
    for: 10m
    action: retrain
    description: outdoor temperature moved
  - name: canary-worse
    signal: guardrail_rollback
    op: ge
    threshold: 1
    severity: critical
    action: rollback
    resolve_after: 0
    webhook: https://pager.example/hook
"""


def _rules(**rule: Any) -> dict[str, Any]:
    return {"rules": [{"name": "r", "signal": "s", "op": ">", "threshold": 1.0, **rule}]}


def test_example_file_loads_with_defaults_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(EXAMPLE)
    rules = AlertRules.load(path)
    drift, canary = rules.rules
    assert (drift.name, drift.signal, drift.match, drift.op, drift.threshold) == \
        ("feature-drift", "drift_psi", {"deployment": "hvac"}, Op.GT, 0.25)
    assert drift.for_s == 600.0 and drift.severity is AlertSeverity.WARNING and drift.action is Action.RETRAIN
    assert rules.webhook_for(drift) == "http://alerts.example:9000/rlops" and rules.resolve_after_for(drift) == 120.0
    assert canary.op is Op.GE and canary.for_s == 0.0 and canary.severity is AlertSeverity.CRITICAL
    assert rules.webhook_for(canary) == "https://pager.example/hook" and rules.resolve_after_for(canary) == 0.0
    assert drift.condition() == "drift_psi{deployment=hvac} > 0.25 for 10m"
    assert rules.rule("canary-worse") is canary


def test_file_defaults_are_notify_warning_five_minutes_no_webhook() -> None:
    rules = AlertRules.from_dict(_rules())
    rule = rules.rules[0]
    assert rule.action is Action.NOTIFY and rule.severity is AlertSeverity.WARNING and rule.for_s == 0.0
    assert rules.webhook_for(rule) is None and rules.resolve_after_for(rule) == 300.0


@pytest.mark.parametrize(("op", "value", "threshold", "holds"), [
    (">", 2.0, 1.0, True), (">", 1.0, 1.0, False), (">=", 1.0, 1.0, True), ("<", 0.5, 1.0, True),
    ("<", 1.0, 1.0, False), ("<=", 1.0, 1.0, True), ("lt", 2.0, 1.0, False), ("gt", float("nan"), 1.0, False),
])
def test_operators(op: str, value: float, threshold: float, holds: bool) -> None:
    rule = AlertRules.from_dict(_rules(op=op, threshold=threshold)).rules[0]
    assert rule.op.holds(value, threshold) is holds


@pytest.mark.parametrize(("text", "seconds"), [(0, 0.0), ("0", 0.0), ("0s", 0.0), ("0.0m", 0.0), ("30s", 30.0),
                                                ("5m", 300.0), ("1.5h", 5400.0), ("7d", 604_800.0), (90, 90.0)])
def test_durations(text: Any, seconds: float) -> None:
    assert parse_span(text) == seconds
    assert AlertRules.from_dict(_rules(**{"for": text})).rules[0].for_s == seconds


def test_format_span() -> None:
    assert [format_span(s) for s in (0.0, 45.0, 90.0, 600.0, 7200.0, 86_400.0)] == \
        ["0s", "45s", "90s", "10m", "2h", "1d"]


@pytest.mark.parametrize(("data", "field", "rule_text"), [
    (_rules(severty="critical"), "rules.0.severty", "unknown key"),
    (_rules(severity="urgent"), "rules.0.severity", "'info', 'warning' or 'critical'"),
    (_rules(action="reboot"), "rules.0.action", "'notify', 'rollback' or 'retrain'"),
    (_rules(op="!="), "rules.0.op", "must be one of"),
    (_rules(op=""), "rules.0.op", "quote it"),
    (_rules(threshold="high"), "rules.0.threshold", "valid number"),
    (_rules(threshold=float("inf")), "rules.0.threshold", "finite"),
    (_rules(**{"for": "soon"}), "rules.0.for", "duration like"),
    (_rules(**{"for": -5}), "rules.0.for", "positive"),
    (_rules(**{"for": ""}), "rules.0.for", "duration like"),
    (_rules(resolve_after="x"), "rules.0.resolve_after", "duration like"),
    (_rules(webhook="ftp://x/y"), "rules.0.webhook", "http:// or https://"),
    (_rules(name="bad name!"), "rules.0.name", "pattern"),
    (_rules(match={"version": 2}), "rules.0.match.version", "valid string"),
    ({"rules": []}, "rules", "at least 1"),
    ({"rules": [{"name": "r", "op": ">", "threshold": 1}]}, "rules.0.signal", "Field required"),
    ({"webhook": "not a url", **_rules()}, "webhook", "http:// or https://"),
    ({"resolve_after": "later", **_rules()}, "resolve_after", "duration like"),
    ({"rules": [_rules()["rules"][0], _rules()["rules"][0]]}, "", "'r' appears twice"),
])
def test_bad_files_name_the_field(data: dict[str, Any], field: str, rule_text: str) -> None:
    with pytest.raises(ConfigError) as e:
        AlertRules.from_dict(data, "rules.yaml")
    message = str(e.value)
    assert message.startswith(f"rules.yaml: {field}: " if field else "rules.yaml: "), message
    assert rule_text in message


def test_unreadable_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read alert rules file"):
        AlertRules.load(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        AlertRules.load(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("rules: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        AlertRules.load(tmp_path / "broken.yaml")


def test_a_bare_yaml_greater_than_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - name: r\n    signal: s\n    op: >\n    threshold: 1\n")
    with pytest.raises(ConfigError, match=r"rules\.0\.op: .*quote it"):
        AlertRules.load(path)
