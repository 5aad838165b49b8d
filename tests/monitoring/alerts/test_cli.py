"""``rlops alerts``: listing stored alerts (table and JSON, filters) and checking rules files (exit 2 on bad ones)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rlops.cli.alerts  # noqa: F401  registers the commands on the shared app
from rlops.cli.common import app
from rlops.home import Home
from rlops.monitoring.alerts import AlertEvaluator, AlertRules, AlertStore, Signal
from rlops.monitoring.alerts.store import now_us

runner = CliRunner()

RULES = """
webhook: http://127.0.0.1:9/hook
rules:
  - name: drift
    signal: drift_psi
    match: {deployment: hvac}
    op: ">"
    threshold: 0.25
    for: 10m
    action: retrain
  - name: canary
    signal: guardrail_rollback
    op: ge
    threshold: 1
    severity: critical
    action: rollback
    resolve_after: 0
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home with three alerts: hvac errors resolved, hvac errors firing again, shop errors firing."""
    root = Home(tmp_path / "home").ensure()
    rules = AlertRules.from_dict({"resolve_after": 0, "rules": [
        {"name": "errors", "signal": "error_rate", "op": ">", "threshold": 0.1, "severity": "critical"}]})
    start = now_us() - 3_600_000_000  # an hour ago
    with AlertStore.for_home(root) as store:
        evaluator = AlertEvaluator(rules, store)
        evaluator.evaluate([Signal("error_rate", {"deployment": "hvac"}, 0.5)], start)
        evaluator.evaluate([Signal("error_rate", {"deployment": "hvac"}, 0.0)], start + 60_000_000)
        evaluator.evaluate([Signal("error_rate", {"deployment": "hvac"}, 0.7)], start + 120_000_000)
        evaluator.evaluate([Signal("error_rate", {"deployment": "shop"}, 0.9)], start + 180_000_000)
    return root.root


def _json(args: list[str]) -> list[dict[str, object]]:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data: list[dict[str, object]] = json.loads(result.output)
    return data


def test_alerts_lists_a_table_newest_first(home: Path) -> None:
    result = runner.invoke(app, ["alerts", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert "alerts in" in result.output and "firing" in result.output and "resolved" in result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows if row.split("│")[1].strip()] == ["3", "2", "1"]
    listed = runner.invoke(app, ["alerts", "list", "--home", str(home)])
    assert listed.exit_code == 0 and listed.output == result.output  # 'alerts' is 'alerts list'


def test_json_state_limit_deployment_and_since_filters(home: Path) -> None:
    everything = _json(["alerts", "--json", "--home", str(home)])
    assert [a["id"] for a in everything] == [3, 2, 1]
    assert everything[2]["state"] == "resolved" and everything[2]["labels"] == {"deployment": "hvac"}
    assert everything[2]["value"] == 0.5 and everything[2]["resolved_value"] == 0.0
    assert everything[0]["severity"] == "critical" and everything[0]["webhook_status"] == "none"
    assert [a["id"] for a in _json(["alerts", "--state", "firing", "--json", "--home", str(home)])] == [3, 2]
    assert [a["id"] for a in _json(["alerts", "list", "--state", "resolved", "--json", "--home", str(home)])] == [1]
    assert [a["id"] for a in _json(["alerts", "--limit", "1", "--json", "--home", str(home)])] == [3]
    assert [a["id"] for a in _json(["alerts", "--deployment", "hvac", "--json", "--home", str(home)])] == [2, 1]
    # the resolved one ended 59 minutes ago: not active in the last 30 minutes; the firing ones are
    assert [a["id"] for a in _json(["alerts", "--since", "30m", "--json", "--home", str(home)])] == [3, 2]
    assert [a["id"] for a in _json(["alerts", "--since", "2000-01-01", "--json", "--home", str(home)])] == [3, 2, 1]


def test_empty_home_and_missing_home(tmp_path: Path) -> None:
    root = Home(tmp_path / "empty").ensure().root
    result = runner.invoke(app, ["alerts", "--state", "firing", "--home", str(root)])
    assert result.exit_code == 0 and "no firing alerts in" in result.output
    assert _json(["alerts", "--json", "--home", str(root)]) == []
    missing = runner.invoke(app, ["alerts", "--home", str(tmp_path / "nope")])
    assert missing.exit_code != 0 and "no rlops home folder" in str(missing.exception)
    assert not (tmp_path / "nope").exists()


def test_bad_options_are_usage_errors(home: Path) -> None:
    assert runner.invoke(app, ["alerts", "--state", "open", "--home", str(home)]).exit_code == 2
    assert runner.invoke(app, ["alerts", "--limit", "0", "--home", str(home)]).exit_code == 2
    bad_since = runner.invoke(app, ["alerts", "--since", "yesterday", "--home", str(home)])
    assert bad_since.exit_code != 0 and "since: expected a duration" in str(bad_since.exception)


def test_check_prints_the_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    result = runner.invoke(app, ["alerts", "check", str(path)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # undo the console's wrapping
    assert "2 rules OK" in text
    assert "drift: drift_psi{deployment=hvac} > 0.25 for 10m -> warning, retrain, resolves after 5m false" in text
    assert "canary: guardrail_rollback >= 1 -> critical, rollback, resolves after 0s false" in text
    assert "webhook http://127.0.0.1:9/hook" in text


@pytest.mark.parametrize(("text", "message"), [
    (RULES.replace("severity: critical", "severty: critical"), "rules.1.severty: unknown key"),
    (RULES.replace("threshold: 0.25", "threshold: high"), "rules.0.threshold: Input should be a valid number"),
    (RULES.replace('op: ">"', "op: >"), "rules.0.op: must be one of"),
    (RULES.replace("for: 10m", "for: ten minutes"), "rules.0.for: expected seconds or a duration"),
    ("rules: [\n", "not valid YAML"),
])
def test_check_refuses_a_bad_file_with_exit_2_naming_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["alerts", "check", str(path)])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert out.startswith("error: ") and message in out and str(path) in out
    assert "Traceback" not in result.output


def test_check_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["alerts", "check", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "cannot read alert rules file" in result.output


@pytest.mark.parametrize("command", [["alerts"], ["alerts", "list"], ["alerts", "check"]])
def test_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output
