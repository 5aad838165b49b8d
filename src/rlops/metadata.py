"""The metadata database every part shares (deployments, registry, later principals and alerts): one way to open it.

SQLite by default (``HOME/meta.db``) in WAL mode with full synchronous commits; any SQLAlchemy URL works, so
PostgreSQL can replace it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.exc import OperationalError

from rlops.errors import StorageError


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def open_database(url: str, metadata: MetaData, what: str) -> SqlEngine:
    """An engine on ``url`` with ``metadata``'s tables created if missing.

    Two processes opening a fresh database at once both see no table and both create it; the loser's "already
    exists" only means the tables are there now, so it is retried rather than raised.

    Raises:
        StorageError: the tables cannot be created (``what`` names them in the message).
    """
    engine: SqlEngine = create_engine(url)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    for attempt in range(5):
        try:
            metadata.create_all(engine)
            return engine
        except OperationalError as e:
            if "already exists" in str(e.orig) and attempt < 4:
                continue
            raise StorageError(f"metadata database {url}: cannot create the {what} tables: {e.orig}") from e
    return engine  # pragma: no cover - the loop returns or raises
