"""``rlops retrain``, ``rlops loop`` and ``rlops deploy ...`` from the command line, on a home folder with logged
traffic."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlops.cli.main import main
from rlops.engine import DeploymentSpec, Engine
from rlops.home import Home
from rlops.registry import Registry, Stage
from tests.rollout.test_loop import REWARD, WORLD, World


@pytest.fixture
def home(tmp_path: Path) -> Path:
    with Engine(tmp_path / "home", fsync=False) as engine:
        engine.apply(DeploymentSpec.from_dict({"name": "news", "schema": WORLD.schema.to_dict(), "reward": REWARD,
                                              "policy": {"kind": "uniform"}, "all_outcomes_reported": True}))
        World(engine).traffic(1500)
    return tmp_path / "home"


def test_retrain_stops_after_register_and_deploy_commands_move_it(home: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--home", str(home)]
    assert main(["retrain", "news", "--kind", "bandit", "--stop-after", "register", *args]) == 0
    out = capsys.readouterr().out
    assert "registered news@1" in out and "stopped before shadow" in out
    with Registry(Home.resolve(home)) as registry:
        assert registry.get("news", 1).stage is Stage.CANDIDATE
    assert main(["deploy", "canary", "news", "news@1", "-f", "0.2", "-r", "looks good", *args]) == 0
    assert main(["deploy", "arms", "news", *args]) == 0
    out = capsys.readouterr().out
    assert "canary" in out and "news@1" in out and "20.0%" in out
    assert main(["deploy", "check", "news", "--dry-run", *args]) == 0
    assert "verdict" in capsys.readouterr().out
    assert main(["deploy", "rollback", "news", "-r", "changed my mind", *args]) == 0
    assert main(["deploy", "history", "news", "--json", *args]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split('"action": "')[1].split('"')[0] for line in lines[-2:]] == ["canary", "rollback"]
    with Registry(Home.resolve(home)) as registry:
        assert registry.get("news", 1).stage is Stage.CANDIDATE  # back from canary


def test_bad_options_exit_2_and_name_them(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["retrain", "news", "--kind", "magic", "--home", str(home)]) == 2
    assert "--kind" in capsys.readouterr().err
    assert main(["retrain", "news", "--stop-after", "lunch", "--home", str(home)]) == 2
    assert main(["retrain", "news", "--sweep", "0", "--home", str(home)]) == 2
    assert "--sweep" in capsys.readouterr().err
    assert main(["loop", "news", "--backend", "spark", "--home", str(home)]) == 2
    assert "--backend" in capsys.readouterr().err
    assert main(["deploy", "canary", "news", "nope@1", "-r", "x", "--home", str(home)]) == 1
    assert "not registered" in capsys.readouterr().err


def test_loop_stops_on_sigterm_and_exits_0(home: Path) -> None:
    """SIGTERM (what a container runtime sends) stops `rlops loop` as Ctrl-C does, with exit status 0."""
    proc = subprocess.Popen([sys.executable, "-m", "rlops", "loop", "news", "--home", str(home)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed once the engine is open and the loop is waiting for a trigger
        assert "loop on news: on trigger; Ctrl-C or SIGTERM to stop" in first, first
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "stopped (SIGTERM); the next 'rlops loop' resumes where this one stopped" in out
