"""`rlops serve`'s backend options: wrong combinations are refused before anything starts, naming the option; the
environment sets what the flags set (a container passes no flags)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from rlops.cli.main import main
from rlops.engine import Engine
from rlops.errors import DependencyNotInstalled
from rlops.scale.ray_serve import replica_env
from rlops.service import ServiceSettings


@pytest.fixture
def home(tmp_path: Path) -> Path:
    Engine(tmp_path / "home").close()
    return tmp_path / "home"


@pytest.mark.parametrize(("args", "option", "message"), [
    (["--backend", "ray", "--workers", "2"], "--workers", "use --replicas"),
    (["--backend", "ray", "--port", "0"], "--port", "fixed port"),
    (["--replicas", "2"], "--replicas", "--backend ray"),
    (["--backend", "kubernetes"], "--backend", "kubernetes"),
    (["--backend", "ray", "--replicas", "0"], "--replicas", "greater than or equal to 1"),
])
def test_wrong_combinations_name_the_option(home: Path, args: list[str], option: str, message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--home", str(home), *args]) == 2
    err = " ".join(capsys.readouterr().err.replace("│", " ").split())  # typer draws a box and wraps lines
    assert option in err and message in err


def test_the_environment_sets_the_options(home: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RLOPS_SERVE_BACKEND", "ray")
    monkeypatch.setenv("RLOPS_WORKERS", "3")
    assert main(["serve", "--home", str(home)]) == 2  # RLOPS_WORKERS=3 with the Ray backend from the environment
    assert "--workers" in capsys.readouterr().err


def test_a_port_in_use_is_refused_before_ray_starts(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--home", str(home), "--backend", "ray", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"port: cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


def test_without_ray_the_error_says_how_to_install_it(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rlops.scale.ray_serve import serve_on_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(DependencyNotInstalled, match=r"rlops\[ray\]"):
        serve_on_ray(ServiceSettings(home=home, port=8000), 2)


def test_replicas_get_the_settings_and_the_storage_locations(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLOPS_METADATA_URL", "postgresql+psycopg://rlops@db/rlops")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("UNRELATED", "x")
    settings = ServiceSettings(home=home, port=8123, rate_limit=0)
    env = replica_env(settings, home / "run" / "m", local=True)
    assert env["RLOPS_HOME"] == str(home) and env["RLOPS_PORT"] == "8123" and env["RLOPS_RATE_LIMIT"] == "0.0"
    assert env["RLOPS_METADATA_URL"] == "postgresql+psycopg://rlops@db/rlops"
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1" and "UNRELATED" not in env
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(home / "run" / "m")
    assert str(Path(__file__).resolve().parents[2]) in env["PYTHONPATH"].split(":")
    assert "PYTHONPATH" not in replica_env(settings, home / "run" / "m", local=False)
