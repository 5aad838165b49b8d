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
from rlops.scale.ray_serve import app_name, replica_env, replica_settings
from rlops.service import ServiceSettings


@pytest.fixture(autouse=True)
def _no_logging_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    """`rlops serve` points the service's loggers at this process's stderr, which pytest swaps for every test: keep
    these in-process runs from leaving a handler on a stream that later tests' servers would write to, closed."""
    import rlops.service

    monkeypatch.setattr(rlops.service, "configure_logging", lambda *a, **k: None)


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
    import rlops.scale.ray_serve

    got: dict[str, object] = {}

    def fake(settings: ServiceSettings, replicas: int, *, address: str | None, **_: object) -> None:
        got.update(settings=settings, replicas=replicas, address=address)

    monkeypatch.setattr(rlops.scale.ray_serve, "serve_on_ray", fake)
    monkeypatch.setenv("RLOPS_SERVE_BACKEND", "ray")
    monkeypatch.setenv("RLOPS_REPLICAS", "3")
    monkeypatch.setenv("RLOPS_HOST", "0.0.0.0")
    monkeypatch.setenv("RLOPS_PORT", "8123")
    monkeypatch.setenv("RLOPS_RAY_ADDRESS", "ray://head:10001")
    monkeypatch.setenv("RLOPS_MAX_BATCH", "77")
    assert main(["serve", "--home", str(home)]) == 0
    settings = got["settings"]
    assert isinstance(settings, ServiceSettings)
    assert (settings.host, settings.port, settings.max_batch) == ("0.0.0.0", 8123, 77)
    assert (got["replicas"], got["address"]) == (3, "ray://head:10001")
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


def test_replicas_get_no_secret_through_ray(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLOPS_METADATA_URL", "postgresql+psycopg://rlops@db/rlops")
    monkeypatch.setenv("RLOPS_JWT_KEY_FILE", "/run/secrets/jwt.pem")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    for secret in ("RLOPS_SIGNING_KEY", "RLOPS_API_KEY", "RLOPS_DATA_KEY", "AWS_SECRET_ACCESS_KEY", "UNRELATED"):
        monkeypatch.setenv(secret, "s3cr3t")
    metrics = home / "run" / "m"
    cluster = replica_env(metrics, local=False)
    assert cluster == {"PROMETHEUS_MULTIPROC_DIR": str(metrics), "AWS_DEFAULT_REGION": "eu-west-1",
                       "RLOPS_METADATA_URL": "postgresql+psycopg://rlops@db/rlops",
                       "RLOPS_JWT_KEY_FILE": "/run/secrets/jwt.pem"}
    local = replica_env(metrics, local=True)  # a private instance's replicas inherit the environment itself
    assert set(local) == {"PROMETHEUS_MULTIPROC_DIR", "PYTHONPATH"}
    assert str(Path(__file__).resolve().parents[2]) in local["PYTHONPATH"].split(":")
    settings = ServiceSettings(home=home, port=8123, rate_limit=0, jwt_issuer="https://idp", jwt_audience="rlops",
                               jwt_key="k" * 40, jwt_algorithm="HS256")
    given = replica_settings(settings)
    assert "jwt_key" not in given and "tls_cert" not in given and "s3cr3t" not in str(given)
    assert (given["rate_limit"], given["jwt_issuer"], given["home"]) == (0.0, "https://idp", str(home))


def test_app_names_differ_by_home(tmp_path: Path) -> None:
    assert app_name(tmp_path / "a") != app_name(tmp_path / "b")
    assert app_name(tmp_path / "a") == app_name(tmp_path / "x" / ".." / "a")


def test_stopping_never_hides_the_error_that_stopped_it(caplog: pytest.LogCaptureFixture) -> None:
    from rlops.scale.ray_serve import _remove

    calls: list[str] = []

    class Serve:
        def delete(self, name: str) -> None:
            calls.append(f"delete {name}")
            raise RuntimeError("Serve is not running")

        def shutdown(self) -> None:
            calls.append("shutdown")

    _remove(Serve(), "rlops-1", private=False)  # a cluster: only our application goes
    assert calls == ["delete rlops-1"]
    assert "could not remove the application rlops-1 on Ray: Serve is not running" in caplog.text
    _remove(Serve(), "rlops-1", private=True)  # a private instance: Serve stops too, even after a failed delete
    assert calls == ["delete rlops-1", "delete rlops-1", "shutdown"]
