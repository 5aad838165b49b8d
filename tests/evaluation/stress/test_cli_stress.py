"""rlops stress: a report table and JSON for a scenario given by import path; clear one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rlops.cli.plan  # noqa: F401  (registers the commands on the shared app)
from rlops.cli.main import main
from rlops.policies import RulePolicy, save_policy
from tests.evaluation.stress.envs import linear_schema, lqr_rule

SPEC = "tests.evaluation.stress.envs:LINEAR"


@pytest.fixture
def lqr_folder(tmp_path: Path) -> Path:
    return save_policy(RulePolicy(linear_schema(), lqr_rule), tmp_path / "lqr")


def test_stress_prints_a_table_and_writes_the_report(lqr_folder: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    variations = tmp_path / "v.yaml"
    variations.write_text("episodes: 30\nvariations:\n  - {name: late, action_delay: {steps: 1}}\n")
    out = tmp_path / "report.json"
    code = main(["stress", "--scenario", SPEC, "--policy", str(lqr_folder), "--variations", str(variations),
                 "--episodes", "8", "--workers", "1", "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "late" in printed and "nominal" in printed and "cost" in printed
    report = json.loads(out.read_text())
    assert report["config"]["episodes"] == 8  # the command line overrides the file
    assert report["candidate"] == str(lqr_folder) and report["baseline"] == "baseline"
    nominal, late = report["variations"]["nominal"], report["variations"]["late"]
    assert nominal["difference"]["low"] > 0  # LQR beats the scenario's sluggish baseline
    assert late["candidate"]["violation_rate"] > 0.2  # and falls apart with one step of delay


def test_baseline_against_itself_differs_by_zero(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    variations = tmp_path / "v.yaml"
    variations.write_text("episodes: 3\n")
    assert main(["stress", "--scenario", SPEC, "--policy", "baseline", "--variations", str(variations),
                 "--workers", "1", "--out", str(out), "--no-progress"]) == 0
    assert json.loads(out.read_text())["variations"]["nominal"]["difference"]["estimate"] == 0.0


@pytest.mark.parametrize(("args", "message"), [
    (["--scenario", "no-such-scenario", "--policy", "baseline"], "scenario"),
    (["--scenario", "tests.evaluation.stress.envs:NOPE", "--policy", "baseline"], "cannot be imported"),
    (["--scenario", "tests.evaluation.stress.envs:lqr_gain", "--policy", "baseline"], "not a ScenarioSpec"),
    (["--scenario", SPEC, "--policy", "/no/such/folder"], "not a policy folder"),
    (["--scenario", SPEC, "--policy", "baseline", "--mode", "best"], "mode: must be one of"),
    (["--scenario", SPEC, "--policy", "baseline", "--variations", "/no/such.yaml"], "cannot read"),
])
def test_bad_input_is_one_line_and_exit_1(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stress", *args, "--workers", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stress", "--scenario", SPEC, "--policy", "baseline", "--workers", "0"]) == 2
    assert main(["stress", "--policy", "baseline"]) == 2  # --scenario is required
