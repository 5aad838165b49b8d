"""``rlops erase`` and ``rlops retention apply`` through typer's CliRunner: output, exit codes, nothing changed on
bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import rlops.cli.main  # noqa: F401  (registers every command on the app)
from rlops.cli import privacy as _privacy  # noqa: F401  (until rlops.cli.main imports it)
from rlops.cli.common import app
from rlops.engine import DeploymentSpec, Engine
from rlops.errors import RlopsError
from rlops.events import DecisionRecord, Mode
from rlops.scenarios import SyntheticBandit

runner = CliRunner()
UNIT = "cli-erase-unit-42"
REWARD = {"name": "click", "version": 1, "expression": "1 if clicked else 0", "fields": {"clicked": {}},
          "window": "1h", "missing": 0.0}
CONTEXT = {"age": 33.0, "device": "tablet", "returning": True, "activity": 0.25, "taste": [0.0, 0.5, 0.0, 0.0]}
DAY_US = 86_400_000_000


@pytest.fixture
def home(tmp_path: Path) -> Path:
    root = tmp_path / "home"
    with Engine(root) as engine:
        engine.apply(DeploymentSpec.from_dict({
            "name": "news", "schema": SyntheticBandit().schema.to_dict(), "reward": REWARD,
            "policy": {"kind": "uniform"}, "retention": "30d"}))
        for unit in (UNIT, "someone-else", UNIT):
            decision = engine.decide("news", CONTEXT, unit)
            engine.report(decision.decision_id, {"clicked": True})
        old = engine.log.read_decisions().to_pylist()[0]["ts"].timestamp() * 1e6 - 40 * DAY_US
        engine.log.append([DecisionRecord("old-1", int(old), "news", "news@r1", Mode.SERVED, "someone-old", CONTEXT,
                                          ["news"], "news", 0, 1.0)])
    return root


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), input=stdin, env={"COLUMNS": "200"})
    if isinstance(result.exception, RlopsError):  # what rlops.cli.main.main prints as one line, exit 1
        return 1, str(result.exception)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, " ".join(result.output.split())


def files(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command", [["erase"], ["retention"], ["retention", "apply"]])
def test_help(command: list[str]) -> None:
    code, out = run(*command, "--help")
    assert code == 0 and "Usage:" in out and ("--home" in out or "Commands" in out)


def test_erase_removes_the_unit_and_says_so(home: Path) -> None:
    code, out = run("erase", "--unit", UNIT, "--yes", "--actor", "dpo", "--home", str(home))
    assert code == 0, out
    assert "erased 2 decisions and 2 outcomes" in out and "audit target unit:" in out
    assert not [p for p, data in files(home).items() if UNIT.encode() in data]
    with Engine(home) as engine:
        assert "someone-else" in engine.log.read_decisions()["unit_id"].to_pylist()


def test_erase_asks_first_and_refuses_bad_input(home: Path) -> None:
    before = files(home)
    code, out = run("erase", "--unit", UNIT, "--home", str(home), stdin="n\n")
    assert code == 1 and "nothing erased" in out
    code, out = run("erase", "--unit", "", "--yes", "--home", str(home))
    assert code == 2 and "--unit" in out and "non-empty unit id" in out
    code, out = run("erase", "--unit", UNIT, "--yes", "--actor", " ", "--home", str(home))
    assert code == 2 and "--actor" in out
    assert files(home) == before


def test_erase_exits_1_naming_what_remains(home: Path) -> None:
    (home / "exports").mkdir()
    (home / "exports" / "list.csv").write_text(f"unit\n{UNIT}\n")
    code, out = run("erase", "--unit", UNIT, "--yes", "--home", str(home))
    assert code == 1 and "not complete" in out and "exports/list.csv" in out


def test_retention_dry_run_then_apply(home: Path) -> None:
    before = {p: d for p, d in files(home).items() if "meta.db" not in p}
    code, out = run("retention", "apply", "--dry-run", "--home", str(home))
    assert code == 0 and "dry run" in out and "news │ 30d" in out and "│ 1 │ 0 │" in out, out
    assert {p: d for p, d in files(home).items() if "meta.db" not in p} == before
    code, out = run("retention", "apply", "--deployment", "nope", "--home", str(home))
    assert code == 1 and "'nope' does not exist" in out
    code, out = run("retention", "apply", "--home", str(home))
    assert code == 0 and "decisions deleted" in out and "│ 1 │ 0 │" in out, out
    with Engine(home) as engine:
        assert "old-1" not in engine.log.read_decisions()["decision_id"].to_pylist()
