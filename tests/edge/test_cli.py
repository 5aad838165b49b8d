"""``rlops export`` and ``rlops events ingest``: thin commands, one-line errors, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlops.cli.main import main
from rlops.edge import EdgePolicy
from rlops.engine import DeploymentSpec, Engine
from tests.edge.homes import REWARD, deploy
from tests.export.cases import DISCRETE, contexts


@pytest.mark.parametrize("command", [["export"], ["events", "ingest"]])
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    assert "--home" in capsys.readouterr().out


def test_export_then_decide_at_the_edge_then_ingest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = deploy(tmp_path / "home", "linucb_epsilon")
    out = tmp_path / "edge" / "shop.onnx"
    assert main(["export", "shop", "--onnx", str(out), "--home", str(home.root)]) == 0
    printed = capsys.readouterr().out
    assert "shop@r1" in printed and "epsilon_greedy" in printed and "shop.manifest.json" in printed
    log = tmp_path / "edge" / "d.jsonl"
    with EdgePolicy.load(out, log=log) as policy:
        policy.decide_batch(contexts(25))
    assert main(["events", "ingest", str(log), "--home", str(home.root)]) == 0
    assert "25 stored, 0 already in the log" in capsys.readouterr().out
    assert main(["events", "ingest", str(log), "--home", str(home.root)]) == 0
    assert "0 stored, 25 already in the log" in capsys.readouterr().out


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    with Engine(home) as engine:
        engine.apply(DeploymentSpec.from_dict({"name": "vw", "schema": DISCRETE.to_dict(), "reward": REWARD,
                                               "policy": {"kind": "vw_cb_adf"}}))
    assert main(["export", "vw", "--onnx", str(tmp_path / "vw.onnx"), "--home", str(home)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: policy.kind: 'vw_cb_adf' cannot be exported") and err.count("\n") == 1
    assert main(["export", "nope", "--onnx", str(tmp_path / "x.onnx"), "--home", str(home)]) == 1
    assert "deployment 'nope' does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "something else"}\n')
    assert main(["events", "ingest", str(bad), "--home", str(home)]) == 1
    err = capsys.readouterr().err
    assert "bad.jsonl line 1: format: expected 'rlops.edge.decisions'" in err and "Traceback" not in err
    assert main(["events", "ingest", str(tmp_path / "missing.jsonl"), "--home", str(home)]) == 1
    assert "no such decision log" in capsys.readouterr().err
