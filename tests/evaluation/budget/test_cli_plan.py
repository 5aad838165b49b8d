"""rlops plan and rlops budget: tables and JSON from a real measurement; clear one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rlops.cli.plan  # noqa: F401  (registers the commands on the shared app)
from rlops.cli.main import main
from rlops.policies import LinUCB, save_policy
from rlops.scenarios import bandit_schema


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_policy(LinUCB(bandit_schema()), tmp_path_factory.mktemp("plan") / "linucb")


def test_plan_prints_and_writes_the_sizes(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plan.json"
    code = main(["plan", "--policy", str(folder), "--qps", "5000", "--p99-ms", "50", "--batch", "8", "--cores", "4",
                 "--iterations", "50", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "capacity plan" in printed and "batches" in printed
    data = json.loads(out.read_text())
    single, batched = data["plans"]
    assert single["batch_size"] == 1 and batched["batch_size"] == 8
    assert data["measurement"]["batch_size"] == 8
    # the plan is the arithmetic of the measurement: enough processes for the load under the 70% ceiling
    m = data["measurement"]
    assert single["processes"] >= 5000 / (0.7 * 1000 / m["mean_ms"])
    assert single["machines"] == -(-single["processes"] // 4)
    assert single["binding"] in ("cpu", "tail_latency") and single["feasible"]


def test_an_impossible_latency_target_is_reported_not_an_error(folder: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--policy", str(folder), "--qps", "10", "--p99-ms", "0.000001", "--iterations", "20"]) == 0
    printed = capsys.readouterr().out
    assert "latency" in printed and "no number of processes helps" in printed


@pytest.mark.parametrize(("args", "message"), [
    (["--qps", "0", "--p99-ms", "5"], "qps: must be a finite number > 0"),
    (["--qps", "-3", "--p99-ms", "5"], "qps"),
    (["--qps", "10", "--p99-ms", "0"], "p99_ms"),
    (["--qps", "10", "--p99-ms", "5", "--utilisation", "1.5"], "utilisation"),
])
def test_bad_targets_exit_1_before_measuring(folder: Path, args: list[str], message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--policy", str(folder), *args]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_missing_policy_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--policy", str(tmp_path / "nope"), "--qps", "10", "--p99-ms", "5"]) == 1
    err = capsys.readouterr().err.strip()
    assert "not a policy folder" in err and len(err.splitlines()) == 1
    assert main(["plan", "--policy", str(tmp_path), "--qps", "10", "--p99-ms", "5", "--batch", "1"]) == 2


def test_budget_passes_and_fails_with_exit_codes(folder: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    generous = tmp_path / "generous.yaml"
    generous.write_text("p99_ms: 10000\nbatch_p99_ms: 10000\nbatch_size: 4\nmemory_mb: 100000\nartifact_mb: 100\n")
    out = tmp_path / "budget.json"
    assert main(["budget", "--policy", str(folder), "--budget", str(generous), "--iterations", "20",
                 "--out", str(out)]) == 0
    assert json.loads(out.read_text())["passed"] is True
    assert "pass" in capsys.readouterr().out
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text("p99_ms: 0.000001\nartifact_mb: 100\n")
    assert main(["budget", "--policy", str(folder), "--budget", str(tiny), "--iterations", "20"]) == 1
    captured = capsys.readouterr()
    assert "budget: FAIL (p99_ms)" in captured.err and "fail" in captured.out
    bad = tmp_path / "bad.yaml"
    bad.write_text("p99_ms: fast\n")
    assert main(["budget", "--policy", str(folder), "--budget", str(bad)]) == 1
    assert "p99_ms" in capsys.readouterr().err
