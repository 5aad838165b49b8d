"""Shared fixtures: every test gets its own home folder; nothing touches the developer's ./.rlops.

Metadata tests run on both backends through ``metadata_url`` (a SQLAlchemy URL: a fresh SQLite file, or a fresh
database on the session's throwaway PostgreSQL server, see :mod:`tests.pg`) or ``metadata_backend`` plus
``home_on_backend`` (which points ``$RLOPS_METADATA_URL`` at it, for code that opens stores through a home folder).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlops.home import METADATA_URL_VAR
from tests.pg import REQUIRE_VAR, PostgresServer, Unavailable


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(METADATA_URL_VAR, raising=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session; skipped when it cannot start, unless ``$RLOPS_REQUIRE_POSTGRES``."""
    try:
        server = PostgresServer.start()
    except Unavailable as e:
        if os.environ.get(REQUIRE_VAR):
            pytest.fail(f"PostgreSQL is required ({REQUIRE_VAR} is set) but cannot start: {e}", pytrace=False)
        pytest.skip(f"PostgreSQL cannot start here ({e}); set {REQUIRE_VAR}=1 to make this an error")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def metadata_backend(request: pytest.FixtureRequest) -> str:
    """Which metadata database a test runs on."""
    return str(request.param)


@pytest.fixture
def metadata_url(metadata_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of an empty metadata database of the test's own on ``metadata_backend``."""
    if metadata_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'meta.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def home_on_backend(metadata_backend: str, metadata_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every home folder's stores use ``metadata_url`` (on SQLite, each home keeps its own ``meta.db``)."""
    if metadata_backend != "sqlite":
        monkeypatch.setenv(METADATA_URL_VAR, metadata_url)
    return metadata_url
