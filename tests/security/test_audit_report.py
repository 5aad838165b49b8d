"""The compliance report: exact numbers from real audit entries with controlled times, consent from a real event
log, the broken-chain warning, the recompute commands actually recomputing, and ``rlops audit report`` end to end."""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

import rlops.cli.main  # noqa: F401  (registers every command on the app)
import rlops.security.audit as audit_module
from rlops.cli.common import app
from rlops.errors import ValidationError
from rlops.events import DecisionRecord, EventLog, Mode
from rlops.home import Home
from rlops.security.audit import AuditAction, AuditLog
from rlops.security.audit_report import (
    GateStatus,
    KeyChangeKind,
    Period,
    ProductionInterval,
    Section,
    compliance_report,
    render_json,
    render_markdown,
)

START, END = "2025-11-01", "2025-12-01"


def us(text: str) -> int:
    """Microseconds since the epoch of an ISO time in UTC."""
    moment = dt.datetime.fromisoformat(text)
    return int(moment.replace(tzinfo=dt.UTC).timestamp()) * 1_000_000


P0, P1 = us(START), us(END)
DAY = 86_400 * 1_000_000


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Set the audit log's clock (it stamps entries with ``time.time_ns()``) to an ISO time in UTC."""
    now = [0]
    monkeypatch.setattr(audit_module, "time", SimpleNamespace(time_ns=lambda: now[0] * 1000, sleep=time.sleep))

    def set_to(text: str) -> None:
        now[0] = us(text)

    return set_to


def append_at(log: AuditLog, clock: Callable[[str], None], when: str, actor: str, action: str, target: str,
              details: dict[str, Any] | None = None) -> None:
    clock(when)
    log.append(actor, action, target, details)


def deploy(change: str, production: str | None, canary: str | None = None, revision: int = 1) -> dict[str, Any]:
    return {"revision": revision, "change": change, "production_version": production, "canary_version": canary,
            "reason": None}


@pytest.fixture
def home(tmp_path: Path, clock: Callable[[str], None], monkeypatch: pytest.MonkeyPatch) -> Home:
    """A home folder whose audit log tells a month of news and ads (entries before, in and after November 2025)."""
    monkeypatch.delenv("RLOPS_AUDIT_KEY", raising=False)
    h = Home(tmp_path / "home").ensure()
    with AuditLog.for_home(h) as log:
        steps: list[tuple[str, str, str, str, dict[str, Any] | None]] = [
            # before the period: the state at its start
            ("2025-10-01", "alice", AuditAction.REGISTER, "news@1", {"model": "news", "version": 1,
                                                                     "gates_passed": True, "gates_overridden": []}),
            ("2025-10-02", "alice", AuditAction.DEPLOY, "deployment:news", deploy("apply", "news@1")),
            ("2025-10-05", "bob", AuditAction.DEPLOY, "deployment:ads", deploy("apply", "ads@1")),
            ("2025-10-10", "root", AuditAction.KEY_CREATE, "key:k1", {"role": "admin", "scope": []}),
            # the period
            ("2025-11-02", "alice", AuditAction.REGISTER, "news@2", {
                "model": "news", "version": 2, "gates_passed": False, "gates_overridden": ["ope_lower_bound"],
                "reason": "hotfix"}),
            ("2025-11-02T00:00:01", "alice", AuditAction.GATE_OVERRIDE, "news@2",
             {"gates": ["ope_lower_bound"], "reason": "hotfix"}),
            ("2025-11-03", "alice", AuditAction.STAGE_CHANGE, "news@2", {"from": "candidate", "to": "shadow"}),
            ("2025-11-05", "alice", AuditAction.DEPLOY, "deployment:news", deploy("canary", "news@1", "news@2", 2)),
            ("2025-11-10", "alice", AuditAction.DEPLOY, "deployment:news", deploy("promote", "news@2", None, 3)),
            ("2025-11-12", "guardrail", AuditAction.ROLLBACK, "deployment:news", {
                "revision": 4, "production_version": "news@1", "rolled_back_version": "news@2",
                "reason": "reward below the guardrail"}),
            ("2025-11-15", "bob", AuditAction.REGISTER, "ads@2", {"model": "ads", "version": 2, "gates_passed": True,
                                                                  "gates_overridden": []}),
            ("2025-11-16", "bob", AuditAction.REGISTER, "ads@3", {"model": "ads", "version": 3}),  # no gate keys
            ("2025-11-17", "root", AuditAction.KEY_CREATE, "key:k2", {"role": "operator",
                                                                      "scope": ["deployment:news"]}),
            ("2025-11-18", "root", AuditAction.KEY_REVOKE, "key:k1", {"role": "admin", "scope": []}),
            ("2025-11-20", "dpo", AuditAction.ERASURE, "unit:9f86d0", {"decisions": 3, "outcomes": 2, "files": 1}),
            ("2025-11-21", "loop", "retention", "deployment:news", {"deployment": "news", "cutoff_us": us("2025-08-23"),
                                                                    "decisions": 100, "outcomes": 80}),
            ("2025-11-22", "alice", AuditAction.CONFIG_CHANGE, "alerts", {"rules": 3}),
            ("2025-11-25", "alice", AuditAction.DEPLOY, "deployment:news", deploy("promote", "news@3", None, 5)),
            ("2025-11-26", "loop", "loop.cycle", "deployment:news", {"step": "retrain"}),
            # after the period: ignored
            ("2025-12-02", "bob", AuditAction.DEPLOY, "deployment:ads", deploy("promote", "ads@2", None, 2)),
        ]
        for when, actor, action, target, details in steps:
            append_at(log, clock, when, actor, action, target, details)
    return h


def decision(i: int, ts: int, deployment: str, *, consent: bool = True, mode: Mode = Mode.SERVED) -> DecisionRecord:
    return DecisionRecord(decision_id=f"d-{i:05d}", ts=ts, deployment=deployment, policy_version="v1", mode=mode,
                          unit_id=f"u{i}", context={"x": i}, actions=["a", "b"], action="a", action_index=0,
                          propensity=0.5, probabilities=[0.5, 0.5], consent=consent)


def write_decisions(home: Home) -> None:
    """news: 10 served in the period, 3 without consent (and a shadow one without, and 2 outside the period, which do
    not count); ads: 4 served, all consented."""
    records = [decision(i, P0 + i * DAY, "news", consent=i not in (2, 5, 7)) for i in range(10)]
    records += [decision(10, P0 + DAY, "news", consent=False, mode=Mode.SHADOW),
                decision(11, P0 - 1, "news", consent=False), decision(12, P1, "news", consent=False)]
    records += [decision(20 + i, P0 + i * DAY, "ads") for i in range(4)]
    with EventLog(home.events) as log:
        log.append(records[:7])
        log.rotate()
        log.compact()  # some from Parquet parts, some from a segment
        log.append(records[7:])


def test_report_numbers(home: Home) -> None:
    write_decisions(home)
    report = compliance_report(home, P0, P1, environ={})
    assert report.chain.ok and report.chain.result.entries == 20 and not report.chain.keyed
    assert report.chain.anchor is not None and report.chain.anchor.startswith("20:")
    assert report.production == (
        ProductionInterval("ads", "ads@1", P0, P1, us("2025-10-05"), 3, "deploy/apply", True),
        ProductionInterval("news", "news@1", P0, us("2025-11-10"), us("2025-10-02"), 2, "deploy/apply", False),
        ProductionInterval("news", "news@2", us("2025-11-10"), us("2025-11-12"), us("2025-11-10"), 9,
                           "deploy/promote", False),
        ProductionInterval("news", "news@1", us("2025-11-12"), us("2025-11-25"), us("2025-11-12"), 10, "rollback",
                           False),
        ProductionInterval("news", "news@3", us("2025-11-25"), P1, us("2025-11-25"), 18, "deploy/promote", True),
    )
    s = report.summary
    assert (s.entries, s.versions_in_production, s.deploy_changes, s.rollbacks) == (15, 4, 3, 1)
    assert (s.registrations, s.gates_passed, s.gates_overridden, s.gates_failed, s.gates_not_run) == (3, 1, 1, 0, 1)
    assert (s.gate_overrides, s.stage_changes, s.erasures, s.erased_decisions, s.erased_outcomes) == (1, 1, 1, 3, 2)
    assert (s.retention_runs, s.retention_decisions, s.retention_outcomes) == (1, 100, 80)
    assert (s.keys_created, s.keys_revoked, s.config_changes) == (1, 1, 1)
    assert (s.decisions, s.decisions_without_consent) == (14, 3)
    assert s.other == {"loop.cycle": 1}
    assert report.actions == {"config_change": 1, "deploy": 3, "erasure": 1, "gate_override": 1, "key_create": 1,
                              "key_revoke": 1, "loop.cycle": 1, "register": 3, "retention": 1, "rollback": 1,
                              "stage_change": 1}
    assert [(r.target, r.gates, r.gates_overridden, r.reason) for r in report.registrations] == [
        ("news@2", GateStatus.OVERRIDDEN, ("ope_lower_bound",), "hotfix"), ("ads@2", GateStatus.PASSED, (), None),
        ("ads@3", GateStatus.NOT_RUN, (), None)]
    rollback = report.rollbacks[0]
    assert (rollback.seq, rollback.actor, rollback.deployment, rollback.revision, rollback.production_version,
            rollback.rolled_back_version) == (10, "guardrail", "news", 4, "news@1", "news@2")
    assert [(k.key_id, k.kind, k.role, k.scope) for k in report.keys] == [
        ("k2", KeyChangeKind.CREATE, "operator", ("deployment:news",)), ("k1", KeyChangeKind.REVOKE, "admin", ())]
    assert [(r.deployment, r.cutoff_us, r.decisions) for r in report.retention] == [("news", us("2025-08-23"), 100)]
    assert [(c.deployment, c.decisions, c.without_consent, c.share_without_consent) for c in report.consent] == [
        ("ads", 4, 0, 0.0), ("news", 10, 3, 0.3)]
    assert [(c.target, c.details) for c in report.config_changes] == [("alerts", {"rules": 3})]


def test_markdown_and_json(home: Home) -> None:
    report = compliance_report(home, P0, P1, environ={})
    text = render_markdown(report)
    assert text.startswith("# Compliance report: 2025-11-01 00:00:00Z to 2025-12-01 00:00:00Z")
    assert "**Audit chain: verified** (20 entries, plain SHA-256" in text and "WARNING" not in text
    assert "| news | news@2 | 2025-11-10 00:00:00Z | 2025-11-12 00:00:00Z | 6.67% |" in text
    assert "| ads | ads@1 | 2025-11-01 00:00:00Z | 2025-12-01 00:00:00Z (still in production) | 100.00% |" in text
    assert "No served decisions in the period." in text  # no event log in this home
    # every section names its command
    assert text.count("Recompute: `") == len(Section)
    for command in report.commands.values():
        assert f"Recompute: `{command}`" in text
    data = json.loads(render_json(report))
    assert data["period"] == {"start_us": P0, "end_us": P1, "start": "2025-11-01T00:00:00Z",
                              "end": "2025-12-01T00:00:00Z"}
    assert data["chain"]["ok"] is True and data["chain"]["result"]["entries"] == 20
    assert data["summary"]["rollbacks"] == 1 and data["registrations"][0]["gates"] == "overridden"
    assert data["production"][1]["version"] == "news@1" and data["commands"]["chain"].startswith("rlops audit verify")


def test_period_not_over_ends_now(home: Home) -> None:
    now = us("2025-11-20")
    report = compliance_report(home, P0, P1, now_us=now, environ={})
    ads = [p for p in report.production if p.deployment == "ads"]
    assert [(p.start_us, p.end_us, p.open) for p in ads] == [(P0, now, True)]
    # nothing of the period is cut but the open intervals: entries after now cannot exist yet, except in tests
    assert report.production[-1].end_us == now


def test_state_at_the_start_comes_from_before(home: Home) -> None:
    """A period with no entries of its own still shows what was in production throughout it."""
    report = compliance_report(home, us("2025-10-20"), us("2025-10-30"), environ={})
    assert report.summary.entries == 0
    assert [(p.deployment, p.version, p.open) for p in report.production] == [("ads", "ads@1", True),
                                                                               ("news", "news@1", True)]
    before = compliance_report(home, us("2025-09-01"), us("2025-10-01"), environ={})
    assert before.production == ()
    assert "No version was in production during the period." in render_markdown(before)


def test_missing_and_odd_details_do_not_fail(tmp_path: Path, clock: Callable[[str], None]) -> None:
    h = Home(tmp_path).ensure()
    with AuditLog.for_home(h, environ={}) as log:
        append_at(log, clock, "2025-11-02", "a", AuditAction.DEPLOY, "deployment:x", {})  # says nothing of production
        append_at(log, clock, "2025-11-03", "a", AuditAction.DEPLOY, "deployment:x", {"production_version": 7})
        append_at(log, clock, "2025-11-04", "a", AuditAction.DEPLOY, "deployment:x", {"production_version": None})
        append_at(log, clock, "2025-11-05", "a", AuditAction.REGISTER, "m@4", {"gates_passed": "yes"})
        append_at(log, clock, "2025-11-06", "a", AuditAction.ERASURE, "unit:1", {"files": ["a", "b"],
                                                                                 "decisions": "many"})
        append_at(log, clock, "2025-11-07", "a", AuditAction.KEY_CREATE, "key:z", {"scope": "read"})
    report = compliance_report(h, P0, P1, environ={})
    assert [(p.version, p.start_us, p.end_us) for p in report.production] == [("7", us("2025-11-03"),
                                                                                us("2025-11-04"))]
    assert report.deploy_changes[0].change is None and report.deploy_changes[1].production_version == "7"
    assert [(r.model, r.version, r.gates) for r in report.registrations] == [("m", "4", GateStatus.NOT_RUN)]
    assert (report.erasures[0].files, report.erasures[0].decisions) == (2, None)
    assert report.keys[0].scope == ("read",) and report.keys[0].role is None
    render_markdown(report)
    render_json(report)


def test_broken_chain_is_said_loudly(home: Home) -> None:
    with sqlite3.connect(home.meta_db) as db:
        db.execute("UPDATE audit_log SET details = ? WHERE seq = 10",
                   (json.dumps({"revision": 4, "production_version": "news@2"}),))
    report = compliance_report(home, P0, P1, environ={})
    assert not report.chain.ok and report.chain.result.first_bad_seq == 10 and report.chain.anchor is None
    text = render_markdown(report)
    first_lines = text.split("## Summary")[0]
    assert "**WARNING: THE AUDIT CHAIN DOES NOT VERIFY.** entry 10:" in first_lines
    assert "(9 entries before it verified.)" in first_lines
    assert text.rstrip().endswith("cannot be trusted until this is explained.")  # and again at the end
    assert json.loads(render_json(report))["chain"]["ok"] is False


def test_bad_period() -> None:
    with pytest.raises(ValidationError) as info:
        Period(P1, P0)
    assert info.value.field == "end_us"
    with pytest.raises(ValidationError):
        Period(P0, P0)


@pytest.mark.skipif(shutil.which("jq") is None, reason="needs jq")
def test_named_commands_recompute_the_numbers(home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the commands the report names (rlops through the CLI runner, jq and DuckDB for real) and compare."""
    duckdb = pytest.importorskip("duckdb")
    write_decisions(home)
    report = compliance_report(home, P0, P1, environ={})
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(command: str) -> str:
        """``rlops ... && tool ...``: the rlops part through the CLI runner, the rest as a real process."""
        rlops_part, _, rest = command.partition(" && ")
        result = runner.invoke(app, rlops_part.split()[1:])
        assert result.exit_code == 0, result.output
        if not rest:
            return ""
        if rest.startswith("duckdb -c "):
            sql = shlex.split(rest)[2]
            return "\n".join(json.dumps(row) for row in duckdb.sql(sql).fetchall())
        return subprocess.run(rest, shell=True, capture_output=True, text=True, check=True).stdout

    rollbacks = [json.loads(line) for line in run(report.commands[Section.ROLLBACKS]).splitlines()]
    assert [e["seq"] for e in rollbacks] == [r.seq for r in report.rollbacks]
    registrations = [json.loads(line) for line in run(report.commands[Section.REGISTRATIONS]).splitlines()]
    assert [e["target"] for e in registrations] == [r.target for r in report.registrations]
    keys = [json.loads(line) for line in run(report.commands[Section.KEYS]).splitlines()]
    assert [e["seq"] for e in keys] == [k.seq for k in report.keys]
    counts = [line.split() for line in run(report.commands[Section.ENTRIES]).splitlines()]
    assert {action: int(n) for n, action in counts} == report.actions
    timeline = [json.loads(line) for line in run(report.commands[Section.PRODUCTION]).splitlines()]
    assert [row[3] for row in timeline] == ["news@1", "ads@1", "news@1", "news@2", "news@1", "news@3"]
    consent = [json.loads(line) for line in run(report.commands[Section.CONSENT]).splitlines()]
    assert consent == [[c.deployment, c.decisions, c.without_consent] for c in report.consent]
    run(report.commands[Section.CHAIN])  # rlops audit verify passes (exit 0)


# ---- the command ----


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_cli_writes_markdown_to_stdout_and_json_to_a_file(home: Home, tmp_path: Path) -> None:
    code, stdout = _run("audit", "report", "--from", START, "--to", END, "--home", str(home.root))
    assert code == 0 and stdout.startswith("# Compliance report: 2025-11-01 00:00:00Z to 2025-12-01 00:00:00Z")
    assert "| 10 | 2025-11-12 00:00:00Z | guardrail | news | 4 | news@2 | news@1 |" in stdout
    path = tmp_path / "out" / "report.json"
    code, out = _run("audit", "report", "--from", "2025-11-01T00:00:00Z", "--to", str(P1), "--out", str(path),
                     "--home", str(home.root))
    assert code == 0 and "wrote the compliance report" in out
    data = json.loads(path.read_text())
    assert data["summary"]["entries"] == 15 and data["period"]["end_us"] == P1
    md = tmp_path / "report.txt"  # no .json suffix: Markdown unless --format says otherwise
    assert _run("audit", "report", "--from", START, "--to", END, "--out", str(md), "--home", str(home.root))[0] == 0
    assert _undated(md.read_text()) == _undated(stdout)
    assert _run("audit", "report", "--from", START, "--to", END, "--out", str(md), "--format", "JSON",
                "--home", str(home.root))[0] == 0
    assert json.loads(md.read_text())["summary"] == data["summary"]


def _undated(text: str) -> str:
    return re.sub(r"generated \S+", "generated ...", text)


def test_cli_broken_chain_writes_the_report_and_exits_1(home: Home, tmp_path: Path) -> None:
    with sqlite3.connect(home.meta_db) as db:
        db.execute("DELETE FROM audit_log WHERE seq = 4")
    path = tmp_path / "report.md"
    code, out = _run("audit", "report", "--from", START, "--to", END, "--out", str(path), "--home", str(home.root))
    assert code == 1 and "does NOT verify" in out and "entry 5" in out
    assert "**WARNING: THE AUDIT CHAIN DOES NOT VERIFY.** entry 5: entries before it are missing (4)" in \
        path.read_text()


@pytest.mark.parametrize(("args", "option", "message"), [
    (["--from", "November", "--to", END], "--from", "neither an ISO 8601 time"),
    (["--from", START, "--to", "2025-13-01"], "--to", "neither an ISO 8601 time"),
    (["--from", END, "--to", START], "--to", "must be after the start of the period (2025-12-01T00:00:00Z)"),
    (["--from", START, "--to", START], "--to", "must be after"),
    (["--from", START, "--to", END, "--format", "pdf"], "--format", "pdf"),
    (["--to", END], "--from", "Missing option"),
    (["--from", START, "--to", END, "--anchor", "nope"], "--anchor", "SEQ:HASH"),
])
def test_cli_bad_options_name_the_option(home: Home, args: list[str], option: str, message: str) -> None:
    code, out = _run("audit", "report", *args, "--home", str(home.root))
    flat = " ".join(out.replace("│", " ").split())
    assert code == 2 and option in flat and message in flat, out


def test_cli_missing_home(tmp_path: Path) -> None:
    code, _ = _run("audit", "report", "--from", START, "--to", END, "--home", str(tmp_path / "nowhere"))
    assert code == 1  # NotFoundError, printed as one line by rlops.cli.main
