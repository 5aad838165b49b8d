"""Deployment revisions in the metadata database (SQLite by default; any SQLAlchemy URL)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, Text, select
from sqlalchemy.engine import Engine as SqlEngine

from rlops.engine.deployment import DeploymentSpec
from rlops.errors import NotFoundError
from rlops.metadata import open_database

_metadata = MetaData()
revisions = Table(
    "deployment_revisions",
    _metadata,
    Column("name", String(64), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("spec_hash", String(64), nullable=False),
    Column("spec", Text, nullable=False),
    Column("created_at", Integer, nullable=False),
)


@dataclass(frozen=True)
class Revision:
    name: str
    revision: int
    spec_hash: str
    spec: dict[str, Any]
    created_at: int

    def deployment_spec(self) -> DeploymentSpec:
        """The revision's deployment spec (without loading its policy)."""
        return DeploymentSpec.from_dict({k: v for k, v in self.spec.items() if k != "policy_folder"})

    @property
    def policy_version(self) -> str:
        """The version decisions are attributed to until the registry names versions: ``NAME@rN``."""
        return f"{self.name}@r{self.revision}"


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

    def add(self, name: str, spec_hash: str, spec: dict[str, Any]) -> tuple[Revision, bool]:
        """Store a new revision unless the latest has the same hash; returns ``(revision, created)``."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(revisions).where(revisions.c.name == name).order_by(revisions.c.revision.desc()).limit(1)
            ).first()
            if row is not None and row.spec_hash == spec_hash:
                return Revision(row.name, row.revision, row.spec_hash, json.loads(row.spec), row.created_at), False
            number = 1 if row is None else row.revision + 1
            now = int(time.time())
            conn.execute(revisions.insert().values(name=name, revision=number, spec_hash=spec_hash,
                                                   spec=json.dumps(spec, sort_keys=True), created_at=now))
        return Revision(name, number, spec_hash, spec, now), True

    def close(self) -> None:
        self.engine.dispose()
