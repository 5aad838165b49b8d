"""``rlops audit verify | export | tail`` on a home folder's log: exit codes and what they print."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rlops.cli.main  # noqa: F401  (registers every command on the app)
from rlops.cli.common import app
from rlops.home import Home
from rlops.security.audit import AuditAction, AuditLog


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("RLOPS_AUDIT_KEY", raising=False)
    with AuditLog.for_home(Home(tmp_path).ensure()) as log:
        for i in range(5):
            log.append("alice", AuditAction.STAGE_CHANGE, f"news@{i}", {"to": "shadow"})
    return tmp_path


def _run(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_verify_passes_then_names_the_edited_entry(runner: CliRunner, home: Path) -> None:
    code, out = _run(runner, "audit", "verify", "--home", str(home))
    assert code == 0 and "5 entries verified" in out
    anchor = out.split("anchor: ")[1].split()[0]
    assert _run(runner, "audit", "verify", "--anchor", anchor, "--home", str(home))[0] == 0
    with sqlite3.connect(home / "meta.db") as db:
        db.execute("UPDATE audit_log SET target = 'news@9' WHERE seq = 3")
    code, out = _run(runner, "audit", "verify", "--home", str(home))
    assert code == 1 and "FAILED" in out and "entry 3" in out and "altered" in out


def test_verify_with_anchor_catches_truncation(runner: CliRunner, home: Path) -> None:
    code, out = _run(runner, "audit", "verify", "--home", str(home))
    anchor = out.split("anchor: ")[1].split()[0]
    with sqlite3.connect(home / "meta.db") as db:
        db.execute("DELETE FROM audit_log WHERE seq = 5")
    assert _run(runner, "audit", "verify", "--home", str(home))[0] == 0
    code, out = _run(runner, "audit", "verify", "--anchor", anchor, "--home", str(home))
    assert code == 1 and "entry 5" in out and "removed from the end" in out


def test_export_then_verify_the_file(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "audit.jsonl"
    code, out = _run(runner, "audit", "export", str(out_file), "--home", str(home))
    assert code == 0 and "wrote 5 audit entries" in out
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [e["seq"] for e in lines] == [1, 2, 3, 4, 5] and lines[0]["actor"] == "alice"
    assert _run(runner, "audit", "verify", "--file", str(out_file), "--home", str(home))[0] == 0
    lines[1]["details"]["to"] = "production"
    out_file.write_text("".join(json.dumps(e) + "\n" for e in lines))
    code, out = _run(runner, "audit", "verify", "--file", str(out_file), "--home", str(home))
    assert code == 1 and "entry 2" in out
    code, out = _run(runner, "audit", "export", str(out_file), "--from", "2999-01-01", "--home", str(home))
    assert code == 0 and "wrote 0 audit entries" in out and out_file.read_text() == ""


def test_tail_shows_the_newest_entries(runner: CliRunner, home: Path) -> None:
    code, out = _run(runner, "audit", "tail", "-n", "2", "--json", "--home", str(home))
    assert code == 0
    assert [json.loads(line)["seq"] for line in out.strip().splitlines()] == [4, 5]
    code, out = _run(runner, "audit", "tail", "--home", str(home))
    assert code == 0 and "alice" in out and all(f"│ {seq} " in out for seq in range(1, 6))  # narrow: cells wrap


def test_missing_home_and_bad_options(runner: CliRunner, tmp_path: Path) -> None:
    code, _ = _run(runner, "audit", "verify", "--home", str(tmp_path / "nowhere"))
    assert code == 1  # NotFoundError (rlops.cli.main prints it as one line)
    assert _run(runner, "audit", "tail", "-n", "0", "--home", str(tmp_path))[0] == 2
