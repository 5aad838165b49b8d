"""Registered versions and their stage history in the metadata database (``HOME/meta.db``; any SQLAlchemy URL).

Two tables next to the deployments': ``registry_versions`` (one row per version, with its current stage, content
hash, signer's public key and the signed registration document) and ``registry_transitions`` (every stage change,
append-only: who, why, when). Version numbers are taken inside the transaction that inserts the row, and a writer
that lost a race retries, so concurrent registrations of one name get distinct, consecutive numbers.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.exc import IntegrityError, OperationalError

from rlops.errors import ConflictError, NotFoundError, StorageError
from rlops.metadata import open_database
from rlops.registry.lineage import Lineage
from rlops.registry.refs import ModelRef
from rlops.registry.stages import Stage

_metadata = MetaData()
versions = Table(
    "registry_versions",
    _metadata,
    Column("name", String(64), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("stage", String(16), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("public_key", String(64), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("registration", Text, nullable=False),
)
transitions = Table(
    "registry_transitions",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("from_stage", String(16), nullable=True),
    Column("to_stage", String(16), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at_us", BigInteger, nullable=False),
)

T = TypeVar("T")


@dataclass(frozen=True)
class ModelVersion:
    """One registered version as the database records it.

    Attributes:
        name: the model's name.
        version: its number, from 1, consecutive per name.
        stage: its current stage.
        kind: the policy kind (``linucb``, ``sb3``...).
        content_hash: :func:`rlops.policies.io.content_hash` of its policy folder.
        public_key: base64 raw Ed25519 public key of the key that signed it.
        created_at_us: registration time, microseconds since the epoch (UTC).
        actor: who registered it.
        registration: the signed registration document (see :mod:`rlops.registry.artifact`).
    """

    name: str
    version: int
    stage: Stage
    kind: str
    content_hash: str
    public_key: str
    created_at_us: int
    actor: str
    registration: dict[str, Any]

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.name, self.version)

    @property
    def lineage(self) -> Lineage:
        return Lineage.from_dict(self.registration.get("lineage") or {})

    @property
    def has_report(self) -> bool:
        return "report.json" in self.registration.get("files", {})


@dataclass(frozen=True)
class Transition:
    """One stage change: ``from_stage`` is ``None`` for the registration itself."""

    name: str
    version: int
    from_stage: Stage | None
    to_stage: Stage
    actor: str
    reason: str
    at_us: int


def _version(row: Any) -> ModelVersion:
    return ModelVersion(row.name, row.version, Stage(row.stage), row.kind, row.content_hash, row.public_key,
                        row.created_at_us, row.actor, json.loads(row.registration))


def _transition(row: Any) -> Transition:
    return Transition(row.name, row.version, None if row.from_stage is None else Stage(row.from_stage),
                      Stage(row.to_stage), row.actor, row.reason, row.at_us)


def now_us() -> int:
    return time.time_ns() // 1000


#: PostgreSQL's SQLSTATEs of a transaction chosen to fail for another's sake: serialization failure, deadlock.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


def _lost_race(e: OperationalError) -> bool:
    """Whether another writer made this transaction fail (SQLite: the database was locked; PostgreSQL: a
    serialization failure or a deadlock), so that running it again may succeed."""
    text = str(e.orig)
    return "locked" in text or "busy" in text or getattr(e.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


class RegistryStore:
    """The registry's two tables.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///HOME/meta.db``.
    """

    #: Attempts at a write that lost a race to another writer before giving up.
    ATTEMPTS = 50

    def __init__(self, url: str) -> None:
        self.engine: SqlEngine = open_database(url, _metadata, "registry")

    def close(self) -> None:
        self.engine.dispose()

    # ---- reads ----

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """A version, or the latest of ``name`` when ``version`` is None."""
        query = select(versions).where(versions.c.name == name)
        query = query.where(versions.c.version == version) if version is not None else \
            query.order_by(versions.c.version.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            what = f"model {name!r}" if version is None else f"version {name}@{version}"
            raise NotFoundError(f"{what} is not registered (see 'rlops models list')")
        return _version(row)

    def list_versions(self, name: str | None = None) -> list[ModelVersion]:
        query = select(versions).order_by(versions.c.name, versions.c.version)
        if name is not None:
            query = query.where(versions.c.name == name)
        with self.engine.connect() as conn:
            return [_version(r) for r in conn.execute(query)]

    def names(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(versions.c.name).distinct().order_by(versions.c.name))]

    def history(self, name: str, version: int | None = None) -> list[Transition]:
        query = select(transitions).where(transitions.c.name == name).order_by(transitions.c.id)
        if version is not None:
            query = query.where(transitions.c.version == version)
        with self.engine.connect() as conn:
            return [_transition(r) for r in conn.execute(query)]

    # ---- writes ----

    def retrying(self, attempt: Callable[[Connection], T]) -> T:
        """Run ``attempt`` in a transaction, again (after a short random wait) when another writer won a race."""
        for n in range(self.ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    return attempt(conn)
            except (IntegrityError, OperationalError) as e:
                if isinstance(e, OperationalError) and not _lost_race(e):
                    raise StorageError(f"metadata database: {e.orig}") from e
                if n == self.ATTEMPTS - 1:
                    raise ConflictError(f"gave up after {self.ATTEMPTS} attempts: other writers kept winning "
                                        f"({e.orig})") from e
                time.sleep(random.uniform(0.001, 0.02 * (n + 1)))
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def next_version(conn: Connection, name: str) -> int:
        latest = conn.execute(select(func.max(versions.c.version)).where(versions.c.name == name)).scalar()
        return 1 if latest is None else int(latest) + 1

    @staticmethod
    def insert(conn: Connection, record: ModelVersion, reason: str) -> None:
        """Insert a new version and its registration transition (``None -> stage``)."""
        conn.execute(versions.insert().values(
            name=record.name, version=record.version, stage=record.stage.value, kind=record.kind,
            content_hash=record.content_hash, public_key=record.public_key, created_at_us=record.created_at_us,
            actor=record.actor, registration=json.dumps(record.registration, sort_keys=True)))
        conn.execute(transitions.insert().values(
            name=record.name, version=record.version, from_stage=None, to_stage=record.stage.value,
            actor=record.actor, reason=reason, at_us=record.created_at_us))

    @staticmethod
    def current(conn: Connection, name: str, version: int) -> ModelVersion:
        row = conn.execute(select(versions).where(versions.c.name == name, versions.c.version == version)).first()
        if row is None:
            raise NotFoundError(f"version {name}@{version} is not registered (see 'rlops models list {name}')")
        return _version(row)

    @staticmethod
    def was_in(conn: Connection, name: str, version: int, stage: Stage) -> bool:
        row = conn.execute(select(transitions.c.id).where(
            transitions.c.name == name, transitions.c.version == version, transitions.c.to_stage == stage.value
        ).limit(1)).first()
        return row is not None

    @staticmethod
    def in_stage(conn: Connection, name: str, stage: Stage) -> list[int]:
        rows = conn.execute(select(versions.c.version).where(versions.c.name == name,
                                                             versions.c.stage == stage.value))
        return sorted(r[0] for r in rows)

    @staticmethod
    def move(conn: Connection, name: str, version: int, source: Stage, target: Stage, actor: str, reason: str,
             at_us: int) -> Transition:
        """Change the stage if it is still ``source`` (else a :class:`ConflictError`) and record the move."""
        changed = conn.execute(update(versions).where(
            versions.c.name == name, versions.c.version == version, versions.c.stage == source.value
        ).values(stage=target.value)).rowcount
        if changed != 1:
            raise ConflictError(f"{name}@{version} left stage {source.value} while it was being moved; look again "
                                "with 'rlops models show'")
        conn.execute(transitions.insert().values(name=name, version=version, from_stage=source.value,
                                                 to_stage=target.value, actor=actor, reason=reason, at_us=at_us))
        return Transition(name, version, source, target, actor, reason, at_us)
