"""The metadata database every part shares (registry, deployments, API keys, audit chain, alerts): one way to open it.

SQLite by default (``HOME/meta.db``) in WAL mode with full synchronous commits; any SQLAlchemy URL works, and
PostgreSQL (``postgresql+psycopg://USER@HOST:PORT/DB``, set as ``$RLOPS_METADATA_URL``) is tested as well: the
stores use only portable SQL, take their numbers inside the transaction that inserts them, and retry when a
concurrent writer's row wins the primary key.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from rlops.errors import ConfigError, DependencyNotInstalled, StorageError

#: Seconds to wait for a database server to accept a connection before failing (not for SQLite).
CONNECT_TIMEOUT_S = 10


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    # Switching a new database to WAL takes an exclusive lock, and SQLite may answer "database is locked" at once
    # (without waiting out the busy timeout) while other processes open the same new file: try again, briefly.
    for attempt in range(1, 41):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == 40:
                raise
            time.sleep(min(0.25, 0.01 * attempt))
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def display_url(url: str) -> str:
    """``url`` with its password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable database URL>"


def _created_meanwhile(e: DBAPIError) -> bool:
    """Whether ``e`` only says another process created the same table or index at the same moment.

    SQLite says "already exists"; PostgreSQL says so too when the other creator has committed, and reports a
    "duplicate key" on its catalogue while that creator is still in its transaction.
    """
    text = str(e.orig)
    return "already exists" in text or ("duplicate key" in text and "pg_" in text)


def open_database(url: str, metadata: MetaData, what: str) -> SqlEngine:
    """An engine on ``url`` with ``metadata``'s tables created if missing.

    Two processes opening a fresh database at once both see no table and both create it; the loser's "already
    exists" only means the tables are there now, so it is retried rather than raised.

    Raises:
        ConfigError: ``url`` is not a database URL SQLAlchemy knows.
        DependencyNotInstalled: the URL's driver is not installed (PostgreSQL needs ``psycopg``).
        StorageError: the database cannot be reached or the tables cannot be created (``what`` names them).
    """
    shown = display_url(url)
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            engine: SqlEngine = create_engine(parsed)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            # pre-ping: a pooled connection the server dropped (restart, failover) is replaced, not handed out dead
            connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if parsed.get_backend_name() == "postgresql" else {}
            engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except ArgumentError as e:
        raise ConfigError(f"metadata database URL {shown!r} is not valid: {e} (expected e.g. sqlite:///PATH or "
                          "postgresql+psycopg://USER@HOST:PORT/DB)") from e
    except (NoSuchModuleError, ImportError) as e:
        raise DependencyNotInstalled(f"metadata database {shown}: its driver is not installed ({e}); for PostgreSQL "
                                     "install psycopg: pip install 'psycopg[binary]'") from e
    for attempt in range(5):
        try:
            metadata.create_all(engine)
            return engine
        except DBAPIError as e:
            if _created_meanwhile(e) and attempt < 4:
                continue
            engine.dispose()
            raise StorageError(f"metadata database {shown}: cannot create the {what} tables: {e.orig}") from e
    return engine  # pragma: no cover - the loop returns or raises
