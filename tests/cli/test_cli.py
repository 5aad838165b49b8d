"""The rlops command: every command's help, the fast demo, apply/preview/stats/export, and clear errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow.compute as pc
import pytest
import yaml

from rlops.cli.main import main
from rlops.scenarios import SyntheticBandit

COMMANDS = [[], ["init"], ["demo"], ["serve"], ["deploy"], ["deploy", "apply"], ["deploy", "list"], ["reward"],
            ["reward", "preview"], ["events"], ["events", "stats"], ["events", "export"], ["events", "compact"],
            ["data"], ["data", "check"], ["stress"], ["budget"], ["plan"], ["validate"], ["export"],
            ["events", "ingest"], ["deploy", "shadow"], ["deploy", "canary"], ["deploy", "promote"],
            ["deploy", "rollback"], ["deploy", "holdout"], ["deploy", "arms"], ["deploy", "history"],
            ["deploy", "check"], ["alerts"], ["alerts", "list"], ["alerts", "check"],
            ["drift"], ["drift", "report"], ["monitor"], ["retrain"], ["loop"],
            ["keys"], ["keys", "create"], ["keys", "list"], ["keys", "revoke"], ["audit"], ["audit", "verify"],
            ["audit", "export"], ["audit", "tail"], ["audit", "report"], ["erase"], ["retention"],
            ["retention", "apply"], ["encryption"], ["encryption", "status"], ["encryption", "init"],
            ["encryption", "rotate"], ["models", "card"], ["explain"], ["schedule"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "rlops")
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage:" in out and ("--home" in out or "Commands" in out or "--events" in out
                                  or "--policy" in out or "--onnx" in out or "FILE" in out or "rules" in out)


def test_fast_demo_end_to_end_as_a_real_process(tmp_path: Path) -> None:
    home = tmp_path / "demo-home"
    exe = Path(sys.executable).parent / "rlops"
    proc = subprocess.run([str(exe), "demo", "--fast", "--home", str(home)], capture_output=True, text=True,
                          timeout=480, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert "LinUCB" in proc.stdout and "optimum" in proc.stdout
    assert "Over HTTP" in proc.stdout and "decisions/s" in proc.stdout
    # the real service ran as its own process and logged one JSON line per request, each with a request id
    import json

    lines = [json.loads(line) for line in (home / "logs" / "service.log").read_text().splitlines()
             if line.startswith("{")]
    decides = [ln for ln in lines if ln.get("path") == "/v1/deployments/demo-logging/decide"]
    # 2,000 from the bandit part, then the closed loop's traffic; not one failed
    assert len(decides) > 2000 and all(ln["status"] == 200 and len(ln["request_id"]) == 32 for ln in decides)
    # the home folder is left holding the deployment 'demo', with its events
    assert main(["events", "stats", "--home", str(home)]) == 0
    from rlops.engine import Engine

    with Engine(home) as engine:
        assert engine.store.names() == ["demo", "demo-logging", "demo-ray", "hvac"]
        joined = engine.interactions("demo", include_pending=True)
        assert joined.stats.decisions == 2000 and joined.stats.joined == 2000
        # the demo re-sends one outcome every 1,000 decisions: recognised, never stored twice
        assert "sent 4, recognised 4" in proc.stdout
        # every decision of every part got one outcome (shadows none), plus 3 outcomes for unknown decisions
        served = sum(engine.interactions(name, include_pending=True).stats.decisions
                     for name in ("demo", "demo-logging", "hvac"))
        assert engine.log.read_outcomes().num_rows == served + 3
        assert engine.dead_letters()["reason"].to_pylist() == ["unknown decision"] * 3
        # once it has learned, LinUCB beats the uniform logging policy on observed clicks: its last 500 decisions
        # (expected ~0.53 against ~0.29; the standard error of either mean is about 0.02)
        logging = engine.interactions("demo-logging", include_pending=True).interactions
        logged = logging.filter(pc.equal(logging["policy_version"], "demo-logging@r1"))["reward"].to_numpy()
        learned = joined.interactions.sort_by("decision_id")["reward"].to_numpy()[-500:]
        assert learned.mean() > logged.mean() + 0.15
    # the scale-out part: the stress suite on Ray gave the local report, and the replicas logged every decision
    assert re.search(r"Ray, 2 actors .* yes", proc.stdout), proc.stdout[-3000:]
    assert "200 of them found in the event log, written by 2 replica processes" in proc.stdout
    # the learned LinUCB was validated off-policy on the logging policy's logs: the DR gate passes
    assert re.search(r"DR lower bound beats the logging policy\s+│\s+PASS", proc.stdout), proc.stdout[-3000:]
    # one decision explained (exact attributions of the learned LinUCB), and its behaviour plotted in the report
    assert "why LinUCB showed" in proc.stdout and "Try: rlops explain" in proc.stdout
    bandit_report = (home / "reports" / "bandit" / "report.html").read_text()
    assert "rlops-global-explanation" in bandit_report and bandit_report.count("<svg") >= 5
    # the HVAC lifecycle: the weather shift raised the drift alert, two versions were registered, reports written
    assert "ALERT weather-drift on hvac: obs_2" in proc.stdout
    assert "Dashboard:" in proc.stdout
    # the closed loop: a retrained candidate promoted, then the broken canary rolled back by the server
    with Engine(home) as engine:
        changes = [(c.action, c.actor) for c in engine.store.changes("demo-logging")]
    assert ("promote", "guardrail") in changes or ("promote", "loop") in changes
    assert changes[-2:] == [("canary", "demo"), ("rollback", "guardrail")], changes
    assert (home / "reports" / "lifecycle.html").is_file() and (home / "reports" / "v2" / "report.html").is_file()
    assert main(["models", "verify", "hvac-ppo@2", "--home", str(home)]) == 0
    # every change went to the audit chain, which verifies; the clients' keys were all revoked at the end
    assert re.search(r"Audit chain of \d+ entries verifies", proc.stdout), proc.stdout[-2000:]
    from rlops.home import Home
    from rlops.security import KeyStore
    from rlops.security.audit import AuditLog

    with AuditLog.for_home(Home.resolve(home)) as audit:
        actions = Counter(e.action for e in audit.entries())
    with KeyStore.for_home(Home.resolve(home)) as keys:
        made = keys.list()
    assert made and not any(k.active for k in made) and actions["key_create"] == actions["key_revoke"] == len(made)
    assert actions["deploy"] >= 5 and actions["rollback"] >= 1 and actions["register"] >= 3
    # a second run into the same folder refuses rather than mixing numbers
    again = subprocess.run([str(exe), "demo", "--fast", "--home", str(home)], capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 1 and "already holds an event log" in again.stderr
    assert "Traceback" not in again.stderr


def _deployment_files(tmp_path: Path) -> Path:
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(SyntheticBandit().schema.to_dict()))
    (tmp_path / "reward.yaml").write_text(yaml.safe_dump(
        {"name": "click", "version": 1, "expression": "1 if clicked else 0", "fields": {"clicked": {}},
         "window": "1h", "missing": 0.0}))
    (tmp_path / "d.yaml").write_text("name: shop\nschema: schema.yaml\nreward: reward.yaml\n"
                                     "policy: {kind: uniform}\n")
    return tmp_path / "d.yaml"


def test_apply_preview_stats_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from rlops.engine import Engine

    home = tmp_path / "home"
    file = _deployment_files(tmp_path)
    assert main(["deploy", "apply", str(file), "--home", str(home)]) == 0
    assert "created revision 1" in capsys.readouterr().out
    assert main(["deploy", "apply", str(file), "--home", str(home)]) == 0
    assert "unchanged at revision 1" in capsys.readouterr().out
    assert main(["deploy", "list", "--home", str(home)]) == 0
    listing = capsys.readouterr().out
    assert "shop" in listing and "uniform" in listing and "click@1" in listing
    world = SyntheticBandit()
    with Engine(home) as engine:
        decisions = engine.decide_batch("shop", world.sample_contexts(40, np.random.default_rng(0)),
                                        [f"u{i}" for i in range(40)])
        engine.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": i % 4 == 0}}
                             for i, d in enumerate(decisions)])
    (tmp_path / "revenue.yaml").write_text(yaml.safe_dump(
        {"name": "value", "version": 1, "expression": "10 if clicked else -1", "fields": {"clicked": {}},
         "window": "1h", "missing": 0.0}))
    assert main(["reward", "preview", str(tmp_path / "revenue.yaml"), "--events", str(home)]) == 0
    out = capsys.readouterr().out
    assert "40" in out and "1.75" in out  # 10 clicks * 10 + 30 * -1 = 70 over 40 decisions
    assert main(["events", "stats", "--home", str(home)]) == 0
    assert "shop" in capsys.readouterr().out
    assert main(["events", "export", "--format", "parquet", "--out", str(tmp_path / "x"), "--home", str(home)]) == 0
    interactions = tmp_path / "x" / "interactions-shop.parquet"
    frame = pd.read_parquet(interactions)
    assert len(frame) == 40 and frame["reward"].sum() == 10
    assert frame["context"].iloc[0]["device"] in ("mobile", "desktop", "tablet")  # context is a struct
    assert pl.read_parquet(interactions).height == 40
    import duckdb

    rows = duckdb.sql(f"select sum(reward), count(*) from '{interactions}'").fetchall()
    assert rows == [(10.0, 40)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["deploy", "apply", "missing.yaml"], "cannot read deployment file"),
        (["reward", "preview", "missing.yaml", "--events", "."], "missing.yaml"),
        (["events", "export", "--out", "x", "--deployment", "nope"], "no rlops home folder at"),
        (["events", "stats"], "no rlops home folder at"),
        (["deploy", "apply", "[/x].yaml"], "cannot read deployment file [/x].yaml"),  # rich markup in a message
    ],
)
def test_errors_are_one_clear_line(args: list[str], message: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*args, "--home", str(tmp_path / "home")] if args[0] != "reward" else args) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.strip().count("\n") <= 1


@pytest.mark.parametrize("args", [["deploy", "apply"], ["deploy", "apply", "x.yaml", "--bogus"], ["nonsense"],
                                  ["demo", "--decisions", "5"], ["events", "export", "--format", "csv", "--out", "x"]])
def test_usage_errors_exit_2_without_traceback(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert "Usage:" in captured.err + captured.out


def test_bad_deployment_file_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = _deployment_files(tmp_path)
    file.write_text(file.read_text().replace("kind: uniform", "kind: unicorn"))
    assert main(["deploy", "apply", str(file), "--home", str(tmp_path / "home")]) == 1
    assert "policy.kind: unknown kind 'unicorn'" in capsys.readouterr().err


def test_home_that_is_a_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "home"
    blocker.write_text("not a folder")
    assert main(["init", "--home", str(blocker)]) == 1
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "Traceback" not in err and err.count("\n") == 1
    assert blocker.read_text() == "not a folder"  # nothing already there is changed


def test_read_only_commands_do_not_create_a_home(tmp_path: Path) -> None:
    assert main(["events", "stats", "--home", str(tmp_path / "typo")]) == 1
    assert not (tmp_path / "typo").exists()


def test_export_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    assert main(["init", "--home", str(home)]) == 0
    assert main(["events", "export", "--out", str(tmp_path / "x"), "--deployment", "nope", "--home", str(home)]) == 1
    assert "deployment 'nope' does not exist" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    assert main(["events", "export", "--out", str(blocker), "--home", str(home)]) == 1
    err = capsys.readouterr().err
    assert "--out" in err and "Traceback" not in err and blocker.read_text() == "keep me"


def test_paths_with_markup_characters_and_a_broken_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "h[/]"
    file = _deployment_files(tmp_path)
    file.write_text(file.read_text().replace("kind: uniform", "kind: linucb"))
    assert main(["deploy", "apply", str(file), "--home", str(home)]) == 0
    assert main(["events", "stats", "--home", str(home)]) == 0
    assert main(["events", "export", "--out", str(tmp_path / "o[/]"), "--home", str(home)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    state = next((home / "deployments").rglob("state.npz"))
    state.write_bytes(b"garbage")
    assert main(["deploy", "list", "--home", str(home)]) == 0  # listing does not load policies
    assert "shop" in capsys.readouterr().out


def test_export_of_one_deployment_holds_only_its_records(tmp_path: Path) -> None:
    import numpy as np
    import pyarrow.parquet as pq

    from rlops.engine import Engine

    home = tmp_path / "home"
    file = _deployment_files(tmp_path)
    assert main(["deploy", "apply", str(file), "--home", str(home)]) == 0
    file.write_text(file.read_text().replace("name: shop", "name: other"))
    assert main(["deploy", "apply", str(file), "--home", str(home)]) == 0
    contexts = SyntheticBandit().sample_contexts(6, np.random.default_rng(0))
    with Engine(home) as engine:
        for name, n in (("shop", 2), ("other", 4)):
            ds = engine.decide_batch(name, contexts[:n], ["u"] * n)
            engine.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": True}} for d in ds])
        engine.report("unknown-id", {"clicked": True})
    assert main(["events", "export", "--out", str(tmp_path / "x"), "--deployment", "shop", "--home", str(home)]) == 0
    rows = {p.stem: pq.read_table(p).num_rows for p in (tmp_path / "x").glob("*.parquet")}
    assert rows == {"decisions": 2, "outcomes": 2, "interactions-shop": 2, "dead_letters": 0}
