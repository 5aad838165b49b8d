"""``rlops encryption status|init|rotate`` on a real home folder."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

import rlops.cli.encryption  # noqa: F401  (registers the commands; rlops.cli.main may not import it yet)
from rlops import encryption
from rlops.cli.main import main
from rlops.encryption import ENV_VAR, load_keyring
from rlops.engine import Engine
from rlops.home import Home
from tests.encrypted_home import SECRET, fill, raw_files


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(encryption, "RELOAD_S", 0.0)  # no other process to wait for


@pytest.mark.parametrize("command", [["encryption"], ["encryption", "status"], ["encryption", "init"],
                                     ["encryption", "rotate"]])
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    assert "Usage:" in capsys.readouterr().out


def test_init_status_rotate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = Home(tmp_path / "home").ensure()
    fill(home, register=False)  # written before encryption: plaintext
    args = ["--home", str(home.root)]
    assert main(["encryption", "status", *args]) == 0
    out = capsys.readouterr().out
    assert "off" in out and "plaintext" in out
    assert main(["encryption", "rotate", *args]) == 1
    assert "no data key is configured" in capsys.readouterr().err

    assert main(["encryption", "init", *args]) == 0
    key_id = load_keyring(home.keys).current.key_id
    assert key_id in capsys.readouterr().out
    assert (home.keys / "data_key").stat().st_mode & 0o777 == 0o600
    assert main(["encryption", "init", *args]) == 1
    assert "exists already" in capsys.readouterr().err

    assert main(["encryption", "rotate", *args]) == 0
    captured = capsys.readouterr()
    new = load_keyring(home.keys).current.key_id
    assert new != key_id and f"new key {new}" in captured.out and "rotation complete" in captured.out
    assert f"{key_id} removed from the key file" in captured.out
    assert all(SECRET.encode() not in data for data in raw_files(home).values())

    assert main(["encryption", "status", *args]) == 0
    out = capsys.readouterr().out
    assert f"key {new} (current)" in out and "plaintext" not in out


def test_rotate_says_when_it_could_not_finish(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = Home(tmp_path / "home").ensure()
    assert main(["encryption", "init", "--home", str(home.root)]) == 0
    fill(home, register=False)
    with Engine(home.root) as engine:  # holds an active segment while the rotation runs
        engine.decide("shop", {"segment": "a", "x": 0.1}, "u")
        assert main(["encryption", "rotate", "--home", str(home.root)]) == 1
    err = capsys.readouterr().err
    assert "skipped" in err and ".seg" in err and "rotation incomplete" in err
    assert main(["encryption", "rotate", "--home", str(home.root)]) == 0
    assert "rotation complete" in capsys.readouterr().out


def test_init_print_makes_a_key_for_the_environment(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["encryption", "init", "--print"]) == 0
    captured = capsys.readouterr()
    assert len(base64.b64decode(captured.out.strip())) == 32 and "key id" in captured.err
