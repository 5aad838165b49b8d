"""The shared metadata database: processes opening a fresh one at the same moment all succeed; URLs are checked."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from rlops.engine.store import DeploymentStore
from rlops.errors import ConfigError, StorageError
from rlops.home import Home
from rlops.metadata import display_url
from rlops.registry.store import RegistryStore
from rlops.security.audit import AuditLog
from rlops.security.keys import KeyStore
from tests.pg import PostgresServer


def _open(url: str, barrier: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    DeploymentStore(url).engine.dispose()
    RegistryStore(url).close()
    AuditLog(url).close()


def _fresh_urls(metadata_backend: str, metadata_url: str, request: pytest.FixtureRequest) -> list[str]:
    if metadata_backend == "sqlite":
        return [metadata_url.replace("meta.db", f"meta-{attempt}.db") for attempt in range(3)]
    server: PostgresServer = request.getfixturevalue("postgres_server")
    names = [server.create_database() for _ in range(2)]  # each round costs seconds of process start-up
    for name in names:
        request.addfinalizer(lambda name=name: server.drop_database(name))  # type: ignore[misc]
    return [server.url(name) for name in names]


def test_concurrent_first_opens_all_succeed(metadata_backend: str, metadata_url: str,
                                            request: pytest.FixtureRequest) -> None:
    ctx = multiprocessing.get_context("spawn")
    for url in _fresh_urls(metadata_backend, metadata_url, request):
        barrier = ctx.Barrier(4)
        procs = [ctx.Process(target=_open, args=(url, barrier)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0]


def test_home_uses_the_configured_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      metadata_url: str) -> None:
    home = Home.resolve(tmp_path / "home")
    assert home.metadata_url == f"sqlite:///{home.meta_db}"
    monkeypatch.setenv("RLOPS_METADATA_URL", metadata_url)
    assert home.metadata_url == metadata_url
    with KeyStore.for_home(home) as keys:
        record, _secret = keys.create("admin", actor="alice")
        assert [k.id for k in keys.list()] == [record.id]
    with AuditLog.for_home(home) as log:
        assert [e.action for e in log.entries()] == ["key_create"] and log.verify().ok
    assert not home.meta_db.exists()  # the stores used the configured database, not the folder's


def test_bad_urls_are_named_without_their_password() -> None:
    assert display_url("postgresql+psycopg://u:secret@db/x") == "postgresql+psycopg://u:***@db/x"
    with pytest.raises(ConfigError, match="not valid"):
        DeploymentStore("not a url")
    closed = "postgresql+psycopg://u:secret@127.0.0.1:1/x"
    with pytest.raises(StorageError, match=r"u:\*\*\*@127\.0\.0\.1:1/x: cannot create the deployment") as info:
        DeploymentStore(closed)
    assert "secret" not in str(info.value)
