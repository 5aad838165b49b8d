"""``rlops schedule``: --once, intervals from options and environment variables, clear errors, and a real process
that keeps running through a failing job and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rlops.cli.main import main
from rlops.events import DecisionRecord, EventLog, Mode
from rlops.home import Home
from rlops.security.audit import AuditAction, AuditLog

T0 = 1_700_000_000_000_000


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def seal_a_segment(home: Home, n: int, start: int = 0) -> None:
    """Write ``n`` decisions to a segment of their own and seal it (as a server does when it stops)."""
    with EventLog(home.events) as log:
        log.append([DecisionRecord(f"d-{i:05d}", T0 + i, "news", "news@r1", Mode.SERVED, f"u{i}", {"i": i},
                                   ["a", "b"], "a", 0, 0.5, [0.5, 0.5]) for i in range(start, start + n)])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    monkeypatch.delenv("RLOPS_AUDIT_KEY", raising=False)
    for name in ("RLOPS_COMPACT_EVERY", "RLOPS_AUDIT_EVERY", "RLOPS_AUDIT_UNKEYED_UNTIL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RLOPS_EVENTS_URI", (tmp_path / "parts").as_uri())
    home = Home(tmp_path / "home").ensure()
    with AuditLog.for_home(home) as log:
        for i in range(3):
            log.append("alice", AuditAction.STAGE_CHANGE, f"news@{i}", {"to": "shadow"})
    return home


def test_once_runs_every_job_once_and_logs_one_json_line_each(home: Home, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    seal_a_segment(home, 4)
    assert main(["schedule", "--once", "--home", str(home.root)]) == 0
    lines = json_lines(capsys.readouterr().err)
    assert [(ln["job"], ln["status"], ln["level"]) for ln in lines] == [("compact", "ok", "INFO"),
                                                                       ("audit", "ok", "INFO")]
    assert lines[0]["segments"] == 1 and lines[0]["decisions"] == 4 and lines[0]["duration_ms"] >= 0
    assert lines[1]["entries"] == 3 and lines[1]["anchor"].startswith("3:")
    assert sorted(p.parent.name for p in (tmp_path / "parts").rglob("*.parquet")) == ["decisions", "outcomes"]


def test_a_broken_audit_chain_fails_the_run_but_not_the_other_jobs(home: Home,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    seal_a_segment(home, 2)
    with sqlite3.connect(home.meta_db) as db:
        db.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    assert main(["schedule", "--once", "--home", str(home.root)]) == 1
    compact, audit = json_lines(capsys.readouterr().err)
    assert compact["status"] == "ok" and compact["segments"] == 1
    assert audit["status"] == "failed" and audit["level"] == "ERROR" and audit["first_bad_seq"] == 2
    assert audit["message"].startswith("audit chain broken: entry 2")


def test_a_job_can_be_turned_off_by_option_or_environment(home: Home, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", "--once", "--audit-every", "off", "--home", str(home.root)]) == 0
    assert [ln["job"] for ln in json_lines(capsys.readouterr().err)] == ["compact"]
    monkeypatch.setenv("RLOPS_COMPACT_EVERY", "OFF")
    assert main(["schedule", "--once", "--home", str(home.root)]) == 0
    assert [ln["job"] for ln in json_lines(capsys.readouterr().err)] == ["audit"]


DURATION_RULE = "expected seconds or a duration like '30s', '15m', '1h', '7d', got"


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--compact-every", "5x"], {}, f"'--compact-every' (or $RLOPS_COMPACT_EVERY): {DURATION_RULE} '5x' (or 'off'"),
    ([], {"RLOPS_AUDIT_EVERY": "-1h"}, f"'--audit-every' (or $RLOPS_AUDIT_EVERY): {DURATION_RULE} '-1h'"),
    ([], {"RLOPS_COMPACT_EVERY": "0"}, "'--compact-every' (or $RLOPS_COMPACT_EVERY): must be"),
    ([], {"RLOPS_AUDIT_UNKEYED_UNTIL": "-3"}, "'--audit-unkeyed-until' (env var: 'RLOPS_AUDIT_UNKEYED_UNTIL'): "
                                              "Input should be greater than or equal to 0"),
    (["--compact-every", "off", "--audit-every", "off"], {}, "'--compact-every' / '--audit-every': every job is off"),
], ids=["bad-option", "bad-env", "zero", "negative-int", "all-off"])
def test_bad_intervals_are_usage_errors_naming_the_option(home: Home, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str], args: list[str],
                                                          env: dict[str, str], message: str) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one line per message, so the test can read it whole
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["schedule", "--once", *args, "--home", str(home.root)]) == 2
    err = capsys.readouterr().err
    assert f"Invalid value for {message}" in err, err
    assert not json_lines(err)  # nothing ran


def test_a_missing_home_is_an_error_not_a_new_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", "--once", "--home", str(tmp_path / "typo")]) == 1
    assert "typo" in capsys.readouterr().err and not (tmp_path / "typo").exists()


def _wait_for(path: Path, predicate: Any, timeout: float = 60.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = json_lines(path.read_text()) if path.exists() else []
        if predicate(lines):
            return lines
        time.sleep(0.1)
    raise AssertionError(f"timed out; log so far:\n{path.read_text() if path.exists() else ''}")


def test_a_real_scheduler_keeps_going_through_a_failing_job_and_stops_on_sigterm(home: Home, tmp_path: Path) -> None:
    """The audit job fails on every turn (its database cannot be opened); compaction goes on all the same, and a
    segment sealed while the scheduler runs is compacted at a later turn. SIGTERM: exit 1 (the audit failed)."""
    log = tmp_path / "schedule.log"
    env = {**os.environ, "RLOPS_HOME": str(home.root), "RLOPS_COMPACT_EVERY": "1s", "RLOPS_AUDIT_EVERY": "1s",
           "RLOPS_METADATA_URL": f"sqlite:///{tmp_path / 'no-such-folder' / 'meta.db'}"}
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "rlops", "schedule"], env=env, stdout=subprocess.DEVNULL,
                                stderr=err)
    try:
        _wait_for(log, lambda lines: sum(ln.get("job") == "audit" for ln in lines) >= 2)
        seal_a_segment(home, 5)
        lines = _wait_for(log, lambda lines: any(ln.get("decisions") == 5 for ln in lines))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = json_lines(log.read_text())
    audits = [ln for ln in lines if ln.get("job") == "audit"]
    assert len(audits) >= 2 and all(a["status"] == "error" and a["level"] == "ERROR" for a in audits)
    assert [a["run"] for a in audits] == list(range(1, len(audits) + 1))  # retried each turn, never given up
    compacts = [ln for ln in lines if ln.get("job") == "compact"]
    assert all(c["status"] == "ok" for c in compacts) and sum(c["segments"] for c in compacts) == 1
    assert lines[0]["message"] == "scheduler started" and lines[0]["jobs"] == {"compact": 1.0, "audit": 1.0}
    assert lines[-1]["message"] == "scheduler stopped" and lines[-1]["signal"] == "SIGTERM"
    assert lines[-1]["healthy"] is False
