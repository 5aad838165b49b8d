"""Deployment revisions in the metadata database (SQLite by default; any SQLAlchemy URL)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text, select
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.exc import IntegrityError

from rlops.engine.deployment import DeploymentSpec
from rlops.errors import ConflictError, NotFoundError
from rlops.metadata import open_database

_metadata = MetaData()
revisions = Table(
    "deployment_revisions",
    _metadata,
    Column("name", String(64), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("spec_hash", String(64), nullable=False),
    Column("spec", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
changes = Table(
    "deployment_changes",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, index=True),
    Column("ts_us", BigInteger, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("action", String(32), nullable=False),
    Column("version", String(200), nullable=True),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("details", Text, nullable=False),
)


@dataclass(frozen=True)
class Change:
    """One rollout change of a deployment, with who made it and why.

    Attributes:
        name: the deployment.
        ts_us: when, microseconds since the epoch.
        revision: the revision the change produced (or the current one, when it produced none).
        action: ``apply``, ``shadow``, ``unshadow``, ``canary``, ``promote``, ``rollback``, ``holdout``...
        version: the policy version it concerned.
        actor: who (a user, ``guardrail``, ``loop``, an alert rule).
        reason: why, in words.
        details: anything else worth keeping (the guardrail's verdict, the registry moves made).
    """

    name: str
    ts_us: int
    revision: int
    action: str
    version: str | None
    actor: str
    reason: str
    details: dict[str, Any]


@dataclass(frozen=True)
class Revision:
    name: str
    revision: int
    spec_hash: str
    spec: dict[str, Any]
    created_at: int

    def deployment_spec(self) -> DeploymentSpec:
        """The revision's deployment spec (without loading its policy)."""
        return DeploymentSpec.from_dict({k: v for k, v in self.spec.items() if k not in _RESOLVED})

    @property
    def arms(self) -> list[dict[str, Any]]:
        """The resolved arms: ``role``, ``name``, ``version``, ``fraction``, and ``folder`` or ``registry``.

        Revisions stored before arms existed have one production arm, version ``NAME@rN``.
        """
        stored = self.spec.get("arms")
        if stored is None:
            return [{"role": "production", "name": "production", "version": f"{self.name}@r{self.revision}",
                     "fraction": 1.0, "folder": self.spec["policy_folder"], "source_hash": ""}]
        return list(stored)

    @property
    def policy_version(self) -> str:
        """The production arm's version: a registered ``MODEL@N``, else ``NAME@rN`` (N: the revision that first
        served this policy)."""
        return str(self.arms[0]["version"])


#: Keys the engine adds to a stored spec when it resolves it (not part of the deployment file).
_RESOLVED = frozenset({"policy_folder", "arms"})


class DeploymentStore:
    """Revisions of every deployment; the newest revision of a name is the live one."""

    def __init__(self, url: str) -> None:
        self.engine: SqlEngine = open_database(url, _metadata, "deployment")

    def latest(self, name: str) -> Revision:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(revisions).where(revisions.c.name == name).order_by(revisions.c.revision.desc()).limit(1)
            ).first()
        if row is None:
            raise NotFoundError(f"deployment {name!r} does not exist (create it with 'rlops deploy apply FILE')")
        return Revision(row.name, row.revision, row.spec_hash, json.loads(row.spec), row.created_at)

    def names(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted({r.name for r in conn.execute(select(revisions.c.name))})

    def history(self, name: str) -> list[Revision]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(revisions).where(revisions.c.name == name).order_by(revisions.c.revision))
            return [Revision(r.name, r.revision, r.spec_hash, json.loads(r.spec), r.created_at) for r in rows]

    def add(self, name: str, spec_hash: str,
            spec: dict[str, Any] | Callable[[int, Revision | None], dict[str, Any]], *,
            base_revision: int | None = None) -> tuple[Revision, bool]:
        """Store a new revision unless the latest has the same hash; returns ``(revision, created)``.

        ``spec`` may be a function of the new revision's number and the previous revision. Two writers racing for
        the same number: the second one's insert fails on the key, and it tries again with the next number.

        Raises:
            ConflictError: ``base_revision`` is given and the latest revision is another one.
        """
        for attempt in range(10):
            try:
                return self._add(name, spec_hash, spec, base_revision)
            except IntegrityError:
                if attempt == 9:
                    raise ConflictError(f"deployment {name!r}: too many concurrent changes; try again") from None
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _add(self, name: str, spec_hash: str, spec: dict[str, Any] | Callable[[int, Revision | None], dict[str, Any]],
             base_revision: int | None) -> tuple[Revision, bool]:
        with self.engine.begin() as conn:
            row = conn.execute(
                select(revisions).where(revisions.c.name == name).order_by(revisions.c.revision.desc()).limit(1)
            ).first()
            previous = None if row is None else Revision(row.name, row.revision, row.spec_hash, json.loads(row.spec),
                                                         row.created_at)
            latest = 0 if previous is None else previous.revision
            if base_revision is not None and latest != base_revision:
                raise ConflictError(f"deployment {name!r} changed meanwhile (revision {latest}, this change was "
                                    f"made on revision {base_revision}); look again and retry")
            if previous is not None and previous.spec_hash == spec_hash:
                return previous, False
            number = 1 if previous is None else previous.revision + 1
            if callable(spec):
                spec = spec(number, previous)
            now = int(time.time())
            conn.execute(revisions.insert().values(name=name, revision=number, spec_hash=spec_hash,
                                                   spec=json.dumps(spec, sort_keys=True), created_at=now))
        return Revision(name, number, spec_hash, spec, now), True

    def record(self, change: Change) -> None:
        """Add a change to the deployment's history."""
        with self.engine.begin() as conn:
            conn.execute(changes.insert().values(
                name=change.name, ts_us=change.ts_us, revision=change.revision, action=change.action,
                version=change.version, actor=change.actor, reason=change.reason,
                details=json.dumps(change.details, sort_keys=True, default=str)))

    def changes(self, name: str | None = None, limit: int | None = None) -> list[Change]:
        """The history of rollout changes, oldest first (the newest ``limit`` when given)."""
        query = select(changes).order_by(changes.c.id.desc())
        if name is not None:
            query = query.where(changes.c.name == name)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [Change(r.name, r.ts_us, r.revision, r.action, r.version, r.actor, r.reason, json.loads(r.details))
                for r in reversed(rows)]

    def close(self) -> None:
        self.engine.dispose()
