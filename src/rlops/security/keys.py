"""API keys: random, shown once at creation, stored only as a hash, revocable.

A key reads ``rlk_<id>_<secret>``: ``id`` is 12 hex digits, public, and names the key in lists and logs;
``secret`` is 32 random bytes (``secrets.token_urlsafe``). The table ``api_keys`` in the metadata database
(``HOME/meta.db``; any SQLAlchemy URL) keeps the id, the SHA-256 of the secret, the role and scope, and when the key
was created, last used and revoked; never the secret. A fast hash is enough because the secret has 256 bits of
entropy (there is nothing to guess); comparisons are constant-time, and every failure reads the same so that a
caller learns nothing about which keys exist.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text, select, update
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.exc import SQLAlchemyError

from rlops.errors import NotFoundError, StorageError, UnauthorizedError, ValidationError
from rlops.home import Home
from rlops.metadata import open_database
from rlops.security import audit
from rlops.security.audit import AuditAction
from rlops.security.permissions import Role
from rlops.security.principal import Principal
from rlops.security.scopes import Scope

PREFIX = "rlk_"
_KEY = re.compile(r"rlk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_ID = re.compile(r"[0-9a-f]{12}")
#: The one message of every failed authentication (malformed, unknown, wrong secret, revoked).
INVALID = "invalid or revoked API key"
#: ``last_used_at`` is written at most this often per key, so authenticating is not a write per request.
LAST_USED_RESOLUTION_US = 60_000_000
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()

_metadata = MetaData()
api_keys = Table(
    "api_keys",
    _metadata,
    Column("id", String(12), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("scope", Text, nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("last_used_at_us", BigInteger, nullable=True),
    Column("revoked_at_us", BigInteger, nullable=True),
    Column("revoked_by", String(200), nullable=True),
)


@dataclass(frozen=True)
class KeyRecord:
    """One key as stored, without its secret (what ``rlops keys list`` shows).

    Attributes:
        id: the public key id (12 hex digits).
        name: a human-readable name (may be empty).
        role: the key's role.
        scope: how the key is narrowed.
        created_at_us: creation time, microseconds since the epoch (UTC).
        created_by: who created it.
        last_used_at_us: last successful authentication (to within a minute), or ``None``.
        revoked_at_us: when it was revoked, or ``None`` while it is active.
        revoked_by: who revoked it, or ``None``.
    """

    id: str
    name: str
    role: Role
    scope: Scope
    created_at_us: int
    created_by: str
    last_used_at_us: int | None = None
    revoked_at_us: int | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at_us is None

    def principal(self) -> Principal:
        """The caller this key identifies."""
        return Principal(self.id, self.name, self.role, self.scope)


def _record(row: Any) -> KeyRecord:
    return KeyRecord(row.id, row.name, Role(row.role), Scope.parse(json.loads(row.scope)), row.created_at_us,
                     row.created_by, row.last_used_at_us, row.revoked_at_us, row.revoked_by)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now_us() -> int:
    return time.time_ns() // 1000


def _default_actor() -> str:
    try:
        return getpass.getuser() or "unknown"
    except (OSError, KeyError, ImportError):
        return "unknown"


def _text(value: str | None, field: str, limit: int) -> str:
    text = (value or "").strip()
    if len(text) > limit:
        raise ValidationError(field, f"must be at most {limit} characters, got {len(text)}")
    return text


class KeyStore:
    """The API keys of one installation.

    There are no default credentials: a fresh store holds no key, and keys exist only once :meth:`create` made
    them.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///HOME/meta.db`` (see :meth:`for_home`).

    Raises:
        StorageError: the table cannot be created.
    """

    def __init__(self, url: str, *, home: Home | None = None) -> None:
        self.engine: SqlEngine = open_database(url, _metadata, "API key")
        self.home = home

    @classmethod
    def for_home(cls, home: Home) -> KeyStore:
        """The store in ``home``'s metadata database; creating and revoking keys is recorded in its audit log."""
        return cls(home.metadata_url, home=home)

    def _audit(self, actor: str, action: AuditAction, record: KeyRecord) -> None:
        if self.home is not None:
            audit.record_change(self.home, actor, action, f"key:{record.id}",
                         {"role": record.role.value, "scope": record.scope.terms(), "name": record.name})

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def create(self, role: Role | str, scope: Scope | None = None, name: str | None = None,
               actor: str | None = None) -> tuple[KeyRecord, str]:
        """Make a new key.

        Args:
            role: its role (a :class:`Role` or its value).
            scope: how to narrow it (default: not at all).
            name: a human-readable name, at most 200 characters (default: none).
            actor: who creates it (default: the OS user).

        Returns:
            The stored record and the plaintext key. The plaintext is not stored anywhere: this is the only time it
            exists, so hand it to its owner now.

        Raises:
            ValidationError: the role is unknown, the name too long, or the scope leaves the role no permission.
        """
        try:
            role = Role(role)
        except ValueError as e:
            raise ValidationError("role", f"unknown role {role!r}; expected one of "
                                          f"{', '.join(r.value for r in Role)}") from e
        scope = scope or Scope()
        record = KeyRecord(secrets.token_hex(6), _text(name, "name", 200), role, scope, _now_us(),
                           _text(actor, "actor", 200) or _default_actor())
        if not record.principal().permissions:
            raise ValidationError("scope", f"{', '.join(scope.terms())} leaves role {role.value!r} no permission")
        secret = secrets.token_urlsafe(32)
        self._write(api_keys.insert().values(
            id=record.id, name=record.name, role=role.value, scope=json.dumps(scope.terms()),
            secret_sha256=_hash(secret), created_at_us=record.created_at_us, created_by=record.created_by))
        self._audit(record.created_by, AuditAction.KEY_CREATE, record)
        return record, f"{PREFIX}{record.id}_{secret}"

    def bootstrap(self, actor: str | None = None) -> tuple[KeyRecord, str] | None:
        """The first admin key, if the store has no key at all (what ``rlops init`` hands out); ``None`` otherwise.

        There are no default credentials: until this runs (or ``rlops keys create``), nobody can call the service.
        """
        if self.list():
            return None
        return self.create(Role.ADMIN, name="first admin key (rlops init)", actor=actor)

    def authenticate(self, key: str) -> Principal:
        """The caller ``key`` identifies.

        Raises:
            UnauthorizedError: the key is malformed, unknown, wrong or revoked (one message for all).
        """
        match = _KEY.fullmatch(key.strip()) if isinstance(key, str) else None
        row = None
        if match is not None:
            with self._reading() as conn:
                row = conn.execute(select(api_keys).where(api_keys.c.id == match.group(1))).first()
        # Compare even when there is nothing to compare with, so a missing key takes as long as a wrong one.
        expected = row.secret_sha256 if row is not None else _DUMMY_HASH
        given = _hash(match.group(2)) if match is not None else _DUMMY_HASH
        if not hmac.compare_digest(expected, given) or row is None or row.revoked_at_us is not None:
            raise UnauthorizedError(INVALID)
        now = _now_us()
        if row.last_used_at_us is None or now - row.last_used_at_us >= LAST_USED_RESOLUTION_US:
            self._write(update(api_keys).where(api_keys.c.id == row.id).values(last_used_at_us=now))
        return _record(row).principal()

    def get(self, key_id: str) -> KeyRecord:
        """The key with this id.

        Raises:
            NotFoundError: there is none.
        """
        key_id = key_id.strip().removeprefix(PREFIX)
        row = None
        if _ID.fullmatch(key_id):
            with self._reading() as conn:
                row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None:
            raise NotFoundError(f"no API key with id {key_id!r} (see 'rlops keys list')")
        return _record(row)

    def list(self, include_revoked: bool = True) -> list[KeyRecord]:
        """Every key, oldest first (no secrets: the store has none)."""
        query = select(api_keys).order_by(api_keys.c.created_at_us, api_keys.c.id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at_us.is_(None))
        with self._reading() as conn:
            return [_record(r) for r in conn.execute(query)]

    def revoke(self, key_id: str, actor: str | None = None) -> KeyRecord:
        """Revoke a key for good; revoking a revoked key changes nothing.

        Returns:
            The key's record, with the time and actor of its (first) revocation.

        Raises:
            NotFoundError: no key has this id.
        """
        record = self.get(key_id)
        if record.active:
            who = _text(actor, "actor", 200) or _default_actor()
            self._write(update(api_keys).where(api_keys.c.id == record.id, api_keys.c.revoked_at_us.is_(None))
                        .values(revoked_at_us=_now_us(), revoked_by=who))
            record = self.get(record.id)
            self._audit(who, AuditAction.KEY_REVOKE, record)
        return record

    def _reading(self) -> Any:
        try:
            return self.engine.connect()
        except SQLAlchemyError as e:
            raise StorageError(f"API keys: cannot read the metadata database: {e}") from e

    def _write(self, statement: Any) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(statement)
        except SQLAlchemyError as e:
            raise StorageError(f"API keys: cannot write the metadata database: {e}") from e
