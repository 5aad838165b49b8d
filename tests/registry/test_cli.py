"""``rlops models``: the commands run end to end and errors are one line with exit code 1."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlops.cli.main import main
from rlops.events import EventLog
from tests.registry.conftest import save_linucb
from tests.registry.test_lineage import T0, decision


@pytest.fixture(autouse=True, scope="module")
def _models_command() -> Iterator[None]:
    """``rlops models`` for these tests; until ``rlops.cli.main`` imports the module, only for these tests (so the
    README's command table is not expected to list it yet)."""
    from rlops.cli.common import app

    fresh = "rlops.cli.models" not in sys.modules
    import rlops.cli.models  # adds `models` to the app

    yield
    if fresh:
        app.registered_groups[:] = [g for g in app.registered_groups
                                    if g.typer_instance is not rlops.cli.models.models_app]


def test_register_list_show_diff_stage_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    with EventLog(home / "events", fsync=False) as log:
        log.append([decision(i) for i in range(6)])
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"status": "pass", "gates": [{"gate": {"name": "DR lower bound"}, "status": "pass",
                                                                "reason": "0.31 > 0.25"}]}))
    a, b = save_linucb(tmp_path / "a", 0.5), save_linucb(tmp_path / "b", 1.0)
    h = ["--home", str(home)]
    assert main(["models", "register", "pricing", str(a), "--scenario", "shop", "--reward-spec", "revenue@1",
                 "--events-range", f"pricing@{T0}..{T0 + 3_000_000}", "--actor", "alice", *h]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the console wraps at 80 columns
    assert "registered pricing@1 as candidate" in out and "(3 decisions)" in out
    assert main(["models", "register", "pricing", str(b), "--parent", "1", "--report", str(report), *h]) == 0
    assert main(["models", "list", *h]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the console wraps at 80 columns
    assert "pricing" in out and "candidate" in out
    assert main(["models", "show", "pricing@2", *h]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the console wraps at 80 columns
    assert "pricing@1" in out and "DR lower bound" in out and "verified" in out
    assert main(["models", "diff", "pricing@1", "pricing@2", *h]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the console wraps at 80 columns
    assert "config.alpha" in out and "revenue@1" in out
    assert main(["models", "stage", "pricing@2", "canary", "--reason", "gates passed", *h]) == 0
    assert main(["models", "stage", "pricing@2", "production", "--reason", "guardrail promoted", *h]) == 0
    assert "canary -> production" in " ".join(capsys.readouterr().out.split())
    assert main(["models", "verify", "pricing@2", *h]) == 0
    assert "verified" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["models", "stage", "pricing@1", "production", "--reason", "skip"], "allowed from candidate: shadow, canary, "
                                                                         "retired"),
    (["models", "stage", "pricing", "canary", "--reason", "x"], "needs a version"),
    (["models", "show", "pricing@9"], "pricing@9 is not registered"),
    (["models", "diff", "pricing@1", "../x@1"], "not a model name"),
    (["models", "register", "pricing", "/nonexistent"], "not a policy folder"),
    (["models", "register", "pricing", "POLICY", "--events-range", "pricing@.."], "no served decisions"),
    (["models", "register", "pricing", "POLICY", "--events-hash", "0" * 64], "needs --events-range"),
    (["models", "list", "nothing"], "'nothing' is not registered"),
])
def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                             message: str) -> None:
    home = ["--home", str(tmp_path / "home")]
    policy = save_linucb(tmp_path / "policy")
    assert main(["models", "register", "pricing", str(policy), *home]) == 0
    capsys.readouterr()
    assert main([a.replace("POLICY", str(policy)) for a in args] + home) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1  # one line, however long
    assert message in err and err.startswith("error: ") and "Traceback" not in err


def test_an_unknown_stage_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["models", "stage", "pricing@1", "live", "--reason", "x", "--home", str(tmp_path)]) == 2


def test_show_of_a_tampered_version_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    assert main(["models", "register", "pricing", str(save_linucb(tmp_path / "p")), "--home", str(home)]) == 0
    state = home / "registry" / "pricing" / "v1" / "policy" / "state.npz"
    state.write_bytes(state.read_bytes()[:-1])
    assert main(["models", "show", "pricing", "--home", str(home)]) == 1
    assert "integrity: FAILED" in capsys.readouterr().err
    assert main(["models", "verify", "pricing", "--home", str(home)]) == 1


def test_read_commands_need_an_existing_home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--home", str(tmp_path / "typo")]) == 1
    assert "no rlops home folder" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()
