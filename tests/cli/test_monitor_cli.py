"""``rlops drift report`` and ``rlops monitor`` through typer's CliRunner: output, files, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import rlops.cli.main  # noqa: F401  (registers every command on the app)
from rlops.cli.common import app
from rlops.home import Home
from tests.monitoring.test_report import registered_home, serve, users

runner = CliRunner()


@pytest.fixture
def shifted(tmp_path: Path) -> Home:
    home, _ = registered_home(tmp_path, n_reference=800)
    serve(home, users(600, 3, age_shift=20.0))
    return home


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_drift_report_writes_html_and_prints_the_table(shifted: Home, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["drift", "report", "news", "--window", "1h", "--out", str(out), "--json",
                                 str(tmp_path / "r.json"), "--home", str(shifted.root)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = _flat(result.output)
    assert "drift of news: 600 decisions vs news-model@1" in text
    assert "overall: ALERT; drifted: age" in text
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 5}
    assert "ALERT" in rows["age"] and "NONE" in rows["device"] and "ALERT" not in rows["activity"]
    html = out.read_text()
    assert html.count("<svg") > 10 and "age" in html and "taste[3]" in html
    assert (tmp_path / "r.json").is_file()


def test_fail_on_sets_the_exit_code(shifted: Home, tmp_path: Path) -> None:
    args = ["drift", "report", "news", "--out", str(tmp_path / "r.html"), "--home", str(shifted.root)]
    assert runner.invoke(app, [*args, "--fail-on", "alert"]).exit_code == 1
    assert runner.invoke(app, [*args, "--fail-on", "warn"]).exit_code == 1
    assert runner.invoke(app, [*args, "--fail-on", "never"]).exit_code == 0


@pytest.mark.parametrize(("args", "named", "said"), [
    (["nope"], "DEPLOYMENT", "deployment 'nope' does not exist"),
    (["news", "--window", "abc"], "--window", "abc"),
    (["news", "--window", "1m", "--end", "2001-01-01"], "--window", "no served decisions"),
    (["news", "--end", "yesterday"], "--end", "yesterday"),
    (["news", "--reference", "news-model"], "--reference", "needs a version"),
    (["news", "--reference", "other@1"], "--reference", "other"),
    (["news", "--baseline-window", "1s"], "--baseline-window", "holds 0 interactions"),
])
def test_drift_report_errors_exit_2_and_name_the_option(shifted: Home, tmp_path: Path, args: list[str],
                                                        named: str, said: str) -> None:
    result = runner.invoke(app, ["drift", "report", *args, "--out", str(tmp_path / "r.html"), "--home",
                                 str(shifted.root)], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    text = _flat(result.output)
    assert named in text and said in text, text
    assert not (tmp_path / "r.html").exists()


def test_monitor_once_shows_the_numbers(shifted: Home) -> None:
    result = runner.invoke(app, ["monitor", "--once", "--window", "1h", "--home", str(shifted.root)],
                           env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "news@r1" in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[0] == "news" and cells[1] == "news@r1 *"
    assert cells[2] == "600" and cells[3].startswith("600 (")  # decisions in all, in the last hour
    assert (cells[4], cells[5], cells[6]) == ("600", "0", "0")  # joined, pending, dead letters
    assert cells[7].startswith("0.3333 [")  # every third decision clicked
    assert cells[11].startswith("age ") and "ALERT" in cells[11]


def test_monitor_errors(shifted: Home, tmp_path: Path) -> None:
    result = runner.invoke(app, ["monitor", "nope", "--once", "--home", str(shifted.root)])
    assert result.exit_code == 2 and "DEPLOYMENT" in result.output and "nope" in result.output
    result = runner.invoke(app, ["monitor", "--once", "--window", "0s", "--home", str(shifted.root)])
    assert result.exit_code == 2 and "--window" in result.output
    result = runner.invoke(app, ["monitor", "--once", "--home", str(tmp_path / "missing")])
    assert result.exit_code != 0
