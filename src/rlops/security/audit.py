"""The tamper-evident audit log: every state change as a hash-chained entry in the metadata database.

Each entry records who (``actor``), what (``action`` on ``target``, with ``details``), when (``ts_us``) and the hash
of the entry before it; its own ``hash`` covers all of that (see :func:`entry_hash`). Changing, removing or
reordering a stored entry breaks the chain at that entry, and :meth:`AuditLog.verify` names the first one.

What the chain can and cannot show:

- With no key, the hash is plain SHA-256: it catches accidents and edits by someone who does not bother to rehash,
  but whoever can write the database can also recompute every hash after an edit.
- With a key (``$RLOPS_AUDIT_KEY``, else the file ``HOME/keys/audit_hmac``), the hash is HMAC-SHA256: without the
  key nobody can produce a valid entry, so a recomputed chain is caught. Keep the key away from the database's
  writers (a secret store, another account); a key readable by others is refused.
- Removing entries at the *end* leaves a valid, shorter chain. Only an anchor catches that: :meth:`AuditLog.anchor`
  returns ``SEQ:HASH`` of the newest entry; keep it somewhere else (a ticket, a second machine) and pass it to
  :meth:`AuditLog.verify` later.

Appends are serialised across threads and processes (SQLite: one ``BEGIN IMMEDIATE`` transaction reads the last
entry and inserts the next; PostgreSQL: the same under a transaction-level advisory lock), and on every database
the primary key refuses a second entry with the same ``seq`` (the loser reads the new head and retries), so the
chain never forks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text, event, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.exc import IntegrityError

from rlops.errors import ConfigError, ConflictError, StorageError, ValidationError
from rlops.home import Home
from rlops.metadata import display_url, open_database
from rlops.security.keyfiles import create_key_file, load_key

ENV_VAR = "RLOPS_AUDIT_KEY"
KEY_FILE = "audit_hmac"
#: The ``prev_hash`` of the first entry.
GENESIS = "0" * 64

_ACTION = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
_MAX_ACTOR = 200
_MAX_TARGET = 500
_APPEND_ATTEMPTS = 50
#: PostgreSQL advisory lock key that serialises appends (any fixed 64-bit number; this one spells "rlops-au").
_PG_APPEND_LOCK = int.from_bytes(b"rlops-au", "big") - 2**63

_metadata = MetaData()
audit_log = Table(
    "audit_log",
    _metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts_us", BigInteger, nullable=False, index=True),
    Column("actor", String(_MAX_ACTOR), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(_MAX_TARGET), nullable=False),
    Column("details", Text, nullable=False),
    Column("alg", String(16), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)


class AuditAction(StrEnum):
    """The state changes the audit log records (``append`` takes any lower-case name; these are the known ones)."""

    REGISTER = "register"
    STAGE_CHANGE = "stage_change"
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    KEY_CREATE = "key_create"
    KEY_REVOKE = "key_revoke"
    GATE_OVERRIDE = "gate_override"
    ERASURE = "erasure"
    CONFIG_CHANGE = "config_change"
    RETENTION = "retention"


class HashAlg(StrEnum):
    """How an entry's hash was computed."""

    SHA256 = "sha256"
    HMAC_SHA256 = "hmac-sha256"


class Problem(StrEnum):
    """Why verification stopped at an entry."""

    ALTERED = "altered"  # the entry's content no longer matches its hash
    REMOVED = "removed"  # a seq is missing before this entry
    BROKEN_LINK = "broken_link"  # prev_hash is not the previous entry's hash: altered and rehashed, or reordered
    UNKEYED = "unkeyed"  # plain SHA-256 where the configured key requires HMAC
    NO_KEY = "no_key"  # an HMAC entry, but no key to check it with
    TRUNCATED = "truncated"  # the anchor's entry is missing or different


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the audit log.

    Attributes:
        seq: position in the chain, 1 for the first entry, no gaps.
        ts_us: when it was appended, microseconds since the epoch (UTC).
        actor: who made the change (a user, a principal, ``guardrail``, ``loop``).
        action: what kind of change (see :class:`AuditAction`).
        target: what it changed (``news@3``, ``deployment:news``, ``key:ab12``); may be empty.
        details: anything else worth keeping, as JSON-compatible values.
        alg: how ``hash`` was computed: a :class:`HashAlg` value (kept as read, so that an edited name is reported
            by verification rather than refused on reading).
        prev_hash: the previous entry's hash (:data:`GENESIS` for the first).
        hash: the hex digest of this entry (see :func:`entry_hash`).
    """

    seq: int
    ts_us: int
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    alg: str
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """The entry as one JSON object (the export format), with an ISO-8601 ``ts`` for people."""
        return {"seq": self.seq, "ts_us": self.ts_us,
                "ts": dt.datetime.fromtimestamp(self.ts_us / 1e6, dt.UTC).isoformat(timespec="microseconds"),
                "actor": self.actor, "action": self.action, "target": self.target, "details": self.details,
                "alg": str(self.alg), "prev_hash": self.prev_hash, "hash": self.hash}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEntry:
        """An entry from :meth:`to_dict`'s output (``ts`` is ignored: ``ts_us`` is what the hash covers).

        Raises:
            ValidationError: a field is missing or has the wrong type.
        """
        try:
            details = data["details"]
            if not isinstance(details, dict):
                raise ValidationError("details", "must be a JSON object")
            return cls(seq=_int(data["seq"], "seq"), ts_us=_int(data["ts_us"], "ts_us"), actor=str(data["actor"]),
                       action=str(data["action"]), target=str(data["target"]), details=details,
                       alg=str(data["alg"]), prev_hash=str(data["prev_hash"]), hash=str(data["hash"]))
        except KeyError as e:
            raise ValidationError(str(e.args[0]), "is missing from the audit entry") from e


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(name, f"must be an integer, got {value!r}")
    return value


@dataclass(frozen=True)
class VerifyResult:
    """What :meth:`AuditLog.verify` found.

    Attributes:
        ok: the whole chain (and the anchor, if given) checked out.
        entries: how many entries checked out before the first bad one (all of them when ``ok``).
        first_bad_seq: the seq of the first entry that failed (``None`` when ``ok``; for a truncation, the anchor's
            seq, which is no longer there).
        problem: one sentence naming the entry and what is wrong with it (``None`` when ``ok``).
        kind: the kind of problem (``None`` when ``ok``).
    """

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str | None = None
    kind: Problem | None = None


def canonical_json(value: Any) -> str:
    """``value`` as JSON with sorted keys, no spaces and no NaN: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(seq: int, ts_us: int, actor: str, action: str, target: str, details: Mapping[str, Any],
               prev_hash: str, alg: HashAlg, key: bytes | None = None) -> str:
    """The hex digest of an entry: SHA-256, or HMAC-SHA256 with ``key``, over the canonical JSON of every field.

    Raises:
        ConfigError: ``alg`` is HMAC-SHA256 and no key is given.
    """
    payload = canonical_json({"seq": seq, "ts_us": ts_us, "actor": actor, "action": action, "target": target,
                              "details": details, "prev_hash": prev_hash, "alg": alg.value}).encode()
    if alg is HashAlg.HMAC_SHA256:
        if key is None:
            raise ConfigError(f"an HMAC-SHA256 audit entry needs the audit key (set {ENV_VAR})")
        return hmac.new(key, payload, hashlib.sha256).hexdigest()
    return hashlib.sha256(payload).hexdigest()


# ---- the key ----


def load_audit_key(keys_dir: Path, *, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The audit log's HMAC key: ``$RLOPS_AUDIT_KEY`` if set, else ``keys_dir/audit_hmac`` if it exists, else None.

    The key is the text's UTF-8 bytes (surrounding whitespace removed), at least :data:`MIN_KEY_BYTES` long.

    Raises:
        ConfigError: the key is too short, or the key file is readable by others.
        StorageError: the key file cannot be read.
    """
    return load_key(keys_dir, env_var=ENV_VAR, file_name=KEY_FILE, what="the audit key", create=False,
                    environ=environ)


def create_audit_key(keys_dir: Path) -> Path:
    """Write a new random key (64 hex digits) to ``keys_dir/audit_hmac`` with mode 0600 and return its path.

    Entries appended from then on are HMAC-SHA256; older ones stay plain SHA-256 (verify them with
    ``unkeyed_until``). Move the file out of the home folder's reach for real protection.

    Raises:
        ConflictError: the key file exists already (replacing it would make keyed entries unverifiable).
        StorageError: the file cannot be written.
    """
    path = keys_dir / KEY_FILE
    try:
        create_key_file(path, replace_existing_is_error=True)  # never replaces an existing key
    except FileExistsError as e:
        raise ConflictError(f"{path}: an audit key exists already; entries hashed with it need it to verify") from e
    except OSError as e:
        raise StorageError(f"{path}: cannot write the audit key: {e.strerror or e}") from e
    return path


# ---- verification ----


def parse_anchor(anchor: str) -> tuple[int, str]:
    """``SEQ:HASH`` (as :meth:`AuditLog.anchor` returns it) as ``(seq, hash)``.

    Raises:
        ValidationError: not of that form.
    """
    seq_text, _, digest = anchor.strip().partition(":")
    if not seq_text.isdigit() or int(seq_text) < 1 or not _HASH.match(digest.lower()):
        raise ValidationError("anchor", f"must be SEQ:HASH (a positive entry number, a colon and 64 hex digits), "
                                        f"got {anchor!r}")
    return int(seq_text), digest.lower()


def verify_chain(entries: Iterable[AuditEntry], key: bytes | None = None, *, anchor: str | None = None,
                 unkeyed_until: int = 0, from_genesis: bool = True) -> VerifyResult:
    """Check a chain of entries, in the order given, and name the first bad one.

    Works on the database (:meth:`AuditLog.verify`) and on an export read back with :func:`read_jsonl`.

    Args:
        entries: the chain, oldest first.
        key: the HMAC key; when given, every entry after ``unkeyed_until`` must be HMAC-SHA256 (so a chain
            recomputed with plain SHA-256 by someone without the key is caught).
        anchor: ``SEQ:HASH`` kept from an earlier :meth:`AuditLog.anchor`: that entry must still be there, unchanged
            (this is what catches entries removed from the end).
        unkeyed_until: entries up to this seq may be plain SHA-256 although a key is given (appended before the
            key was configured). Default 0: none may.
        from_genesis: the chain must start at seq 1 with :data:`GENESIS` (default); False checks a slice (an
            export with ``--from``) from wherever it starts.

    Raises:
        ValidationError: ``anchor`` is malformed.
    """
    anchor_seq, anchor_hash = parse_anchor(anchor) if anchor is not None else (None, None)
    expected_seq = 1 if from_genesis else None
    prev_hash = GENESIS if from_genesis else None
    good = 0
    anchor_seen = False

    def bad(entry_seq: int, kind: Problem, problem: str) -> VerifyResult:
        return VerifyResult(False, good, entry_seq, f"entry {entry_seq}: {problem}", kind)

    for e in entries:
        if expected_seq is not None and e.seq != expected_seq:
            if e.seq > expected_seq:
                missing = str(expected_seq) if e.seq == expected_seq + 1 else f"{expected_seq}..{e.seq - 1}"
                return bad(e.seq, Problem.REMOVED, f"entries before it are missing ({missing}): removed")
            return bad(e.seq, Problem.BROKEN_LINK, f"out of order: expected entry {expected_seq} here")
        try:
            alg = HashAlg(e.alg)
        except ValueError:
            return bad(e.seq, Problem.ALTERED, f"unknown hash algorithm {e.alg!r}: altered")
        if alg is HashAlg.HMAC_SHA256 and key is None:
            return bad(e.seq, Problem.NO_KEY, f"is HMAC-SHA256 but no audit key is configured (set {ENV_VAR} or "
                                              f"put the key in HOME/keys/{KEY_FILE})")
        if alg is HashAlg.SHA256 and key is not None and e.seq > unkeyed_until:
            return bad(e.seq, Problem.UNKEYED, "is plain SHA-256 although an audit key is configured: rehashed "
                                               "without the key, or appended before the key existed (then pass "
                                               "unkeyed_until / --unkeyed-until)")
        try:
            digest = entry_hash(e.seq, e.ts_us, e.actor, e.action, e.target, e.details, e.prev_hash, alg, key)
        except (TypeError, ValueError):
            digest = ""  # details that cannot be hashed were not written by append
        if not hmac.compare_digest(digest, e.hash):
            return bad(e.seq, Problem.ALTERED, "its content does not match its hash: altered")
        if prev_hash is not None and not hmac.compare_digest(e.prev_hash, prev_hash):
            return bad(e.seq, Problem.BROKEN_LINK, f"its prev_hash is not the hash of entry {e.seq - 1}: entry "
                                                   f"{e.seq - 1} was altered and rehashed, or entries were removed "
                                                   "or reordered")
        if anchor_seq == e.seq:
            if not hmac.compare_digest(e.hash, anchor_hash or ""):
                return bad(e.seq, Problem.TRUNCATED, "differs from the anchor: the chain was rewritten from here")
            anchor_seen = True
        good += 1
        expected_seq, prev_hash = e.seq + 1, e.hash
    if anchor_seq is not None and not anchor_seen:
        last = "no entries" if expected_seq in (None, 1) else f"the last entry is {(expected_seq or 1) - 1}"
        return VerifyResult(False, good, anchor_seq, f"entry {anchor_seq}: the anchor's entry is missing ({last}): "
                                                     "entries were removed from the end", Problem.TRUNCATED)
    return VerifyResult(True, good)


def read_jsonl(path: Path) -> Iterator[AuditEntry]:
    """The entries of an export written by :meth:`AuditLog.export`, in file order.

    Raises:
        ValidationError: a line is not a valid entry (the message names the line number).
        StorageError: the file cannot be read.
    """
    try:
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    if not isinstance(data, dict):
                        raise ValidationError("", "is not a JSON object")
                    yield AuditEntry.from_dict(data)
                except (json.JSONDecodeError, ValidationError) as e:
                    raise ValidationError(f"{path}:{number}", f"not an audit entry: {e}") from e
    except OSError as e:
        raise StorageError(f"{path}: cannot read the audit export: {e.strerror or e}") from e


# ---- the log ----


@dataclass
class AuditLog:
    """The ``audit_log`` table of a metadata database.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///HOME/meta.db`` (see :meth:`for_home`).
        key: the HMAC key (see :func:`load_audit_key`); None hashes with plain SHA-256.

    Raises:
        StorageError: the table cannot be created.

    Example:
        >>> with AuditLog.for_home(home) as log:  # doctest: +SKIP
        ...     log.append("alice", AuditAction.DEPLOY, "deployment:news", {"revision": 3})
        ...     assert log.verify().ok
    """

    url: str = field(repr=False)  # may hold a password
    key: bytes | None = field(default=None, repr=False)
    engine: SqlEngine = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.engine = open_database(self.url, _metadata, "audit")
        if self.engine.dialect.name == "sqlite":
            # pysqlite opens transactions itself, late and DEFERRED; take that over so that append can say IMMEDIATE
            # (the write lock before reading the last entry), per SQLAlchemy's documented recipe.
            event.listen(self.engine, "connect", _driver_autocommit)
            event.listen(self.engine, "begin", _begin)
            self.engine.dispose()  # connections pooled by create_all predate the listener

    @classmethod
    def for_home(cls, home: Home, *, environ: Mapping[str, str] | None = None) -> AuditLog:
        """The log in ``home``'s metadata database, keyed with ``$RLOPS_AUDIT_KEY`` or ``HOME/keys/audit_hmac``.

        Raises:
            ConfigError: the key is malformed or its file readable by others.
            StorageError: the table or the key file cannot be read.
        """
        return cls(home.metadata_url, load_audit_key(home.keys, environ=environ))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def alg(self) -> HashAlg:
        """How new entries are hashed: HMAC-SHA256 when a key is configured."""
        return HashAlg.SHA256 if self.key is None else HashAlg.HMAC_SHA256

    def append(self, actor: str, action: str, target: str = "", details: Mapping[str, Any] | None = None) -> AuditEntry:
        """Add an entry after the newest one and return it.

        Args:
            actor: who made the change (non-empty, at most 200 characters).
            action: what kind of change: an :class:`AuditAction` or another lower-case name (``[a-z][a-z0-9_.-]*``,
                at most 64 characters).
            target: what it changed (at most 500 characters; default empty).
            details: JSON-compatible values (no NaN or infinity) worth keeping with it.

        Raises:
            ValidationError: a field breaks its rule (nothing is stored).
            StorageError: the database stayed busy or failed.
        """
        details = _check(actor, action, target, details)
        for _attempt in range(_APPEND_ATTEMPTS):
            try:
                with self.engine.connect() as conn:
                    conn.execution_options(rlops_immediate=True)
                    with conn.begin():
                        if conn.dialect.name == "postgresql":
                            # the transaction's advisory lock queues appenders like SQLite's IMMEDIATE does, so they
                            # do not race for the next seq (the primary key stays the guarantee)
                            conn.execute(select(func.pg_advisory_xact_lock(_PG_APPEND_LOCK)))
                        entry = self._next(conn, actor, str(action), target, details)
                        conn.execute(insert(audit_log).values(
                            seq=entry.seq, ts_us=entry.ts_us, actor=entry.actor, action=entry.action,
                            target=entry.target, details=canonical_json(entry.details), alg=str(entry.alg),
                            prev_hash=entry.prev_hash, hash=entry.hash))
                return entry
            except IntegrityError:
                time.sleep(secrets.randbelow(5000) / 1e6)  # another writer took this seq: read the head again
        raise StorageError(f"audit log {display_url(self.url)}: {_APPEND_ATTEMPTS} appends in a row lost to other "
                           "writers")

    def _next(self, conn: Connection, actor: str, action: str, target: str, details: dict[str, Any]) -> AuditEntry:
        row = conn.execute(select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)).first()
        seq, prev_hash = (1, GENESIS) if row is None else (row.seq + 1, row.hash)
        ts_us = time.time_ns() // 1000
        digest = entry_hash(seq, ts_us, actor, action, target, details, prev_hash, self.alg, self.key)
        return AuditEntry(seq, ts_us, actor, action, target, details, self.alg, prev_hash, digest)

    def entries(self, *, start_us: int | None = None, end_us: int | None = None,
                after_seq: int = 0) -> Iterator[AuditEntry]:
        """Stored entries, oldest first, optionally only those with ``start_us <= ts_us < end_us``.

        A row whose details are not JSON (edited by hand) comes back with ``{"<unreadable>": TEXT}`` so that
        verification reports it as altered instead of failing.
        """
        query = select(audit_log).where(audit_log.c.seq > after_seq).order_by(audit_log.c.seq)
        if start_us is not None:
            query = query.where(audit_log.c.ts_us >= start_us)
        if end_us is not None:
            query = query.where(audit_log.c.ts_us < end_us)
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                yield _entry(row)

    def tail(self, n: int = 20) -> list[AuditEntry]:
        """The newest ``n`` entries, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(audit_log).order_by(audit_log.c.seq.desc()).limit(max(n, 0))).all()
        return [_entry(row) for row in reversed(rows)]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())

    def anchor(self) -> str | None:
        """``SEQ:HASH`` of the newest entry (None while the log is empty).

        Keep it outside the home folder; :meth:`verify` with it then also catches entries removed from the end,
        which a chain alone cannot show.
        """
        with self.engine.connect() as conn:
            row = conn.execute(select(audit_log.c.seq, audit_log.c.hash)
                               .order_by(audit_log.c.seq.desc()).limit(1)).first()
        return None if row is None else f"{row.seq}:{row.hash}"

    def verify(self, *, anchor: str | None = None, unkeyed_until: int = 0) -> VerifyResult:
        """Recompute the chain from the first entry and name the first entry that was altered, removed or reordered.

        Args:
            anchor: ``SEQ:HASH`` from an earlier :meth:`anchor`; also catches entries removed from the end.
            unkeyed_until: with a key, entries up to this seq may be plain SHA-256 (appended before the key).

        Raises:
            ValidationError: ``anchor`` is malformed.
        """
        return verify_chain(self.entries(), self.key, anchor=anchor, unkeyed_until=unkeyed_until)

    def export(self, path: Path, start_us: int | None = None, end_us: int | None = None) -> int:
        """Write entries with ``start_us <= ts_us < end_us`` (default: all) to ``path`` as JSON lines, oldest first,
        and return how many. The file appears whole or not at all.

        Each line is :meth:`AuditEntry.to_dict`: an auditor can recompute the chain with :func:`read_jsonl` and
        :func:`verify_chain` (``from_genesis=False`` for a time range).

        Raises:
            StorageError: the file cannot be written.
        """
        count = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    for entry in self.entries(start_us=start_us, end_us=end_us):
                        f.write(json.dumps(entry.to_dict(), sort_keys=True, ensure_ascii=False) + "\n")
                        count += 1
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as e:
            raise StorageError(f"{path}: cannot write the audit export: {e.strerror or e}") from e
        return count


def _driver_autocommit(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("rlops_immediate") else "BEGIN")


def _entry(row: Any) -> AuditEntry:
    try:
        details = json.loads(row.details)
    except (TypeError, ValueError):
        details = None
    if not isinstance(details, dict):
        details = {"<unreadable>": str(row.details)}
    return AuditEntry(row.seq, row.ts_us, row.actor, row.action, row.target, details, str(row.alg), row.prev_hash,
                      row.hash)


def _check(actor: str, action: str, target: str, details: Mapping[str, Any] | None) -> dict[str, Any]:
    if not isinstance(actor, str) or not actor.strip() or len(actor) > _MAX_ACTOR:
        raise ValidationError("actor", f"must be a non-empty text of at most {_MAX_ACTOR} characters")
    if not isinstance(action, str) or not _ACTION.match(action):
        raise ValidationError("action", "must be a lower-case name ([a-z][a-z0-9_.-]*, at most 64 characters), e.g. "
                                        f"{AuditAction.DEPLOY.value!r}")
    if not isinstance(target, str) or len(target) > _MAX_TARGET:
        raise ValidationError("target", f"must be a text of at most {_MAX_TARGET} characters")
    if details is None:
        return {}
    if not isinstance(details, Mapping):
        raise ValidationError("details", "must be a mapping of names to JSON values")
    try:
        # Round-trip: the stored, hashed and verified details are exactly what JSON gives back.
        value = json.loads(canonical_json(dict(details)))
    except (TypeError, ValueError) as e:
        raise ValidationError("details", f"must hold only JSON values (text, numbers, booleans, null, lists, "
                                         f"mappings with text keys; no NaN or infinity): {e}") from e
    return dict(value)  # a mapping serialises to an object


__all__ = ["ENV_VAR", "GENESIS", "KEY_FILE", "AuditAction", "AuditEntry", "AuditLog", "HashAlg", "Problem",
           "VerifyResult", "canonical_json", "create_audit_key", "entry_hash", "load_audit_key", "parse_anchor",
           "read_jsonl", "record", "record_change", "verify_chain"]


def record(home: Home, actor: str, action: str, target: str = "", details: Mapping[str, Any] | None = None) -> None:
    """Append one entry to ``home``'s audit log (opening and closing it: for state changes, which are rare).

    Raises:
        ValidationError: a field breaks its rule.
        ConfigError: the audit key is malformed or readable by others.
        StorageError: the database stayed busy or failed.
    """
    with AuditLog.for_home(home) as log:
        log.append(actor, action, target, details)


def record_change(home: Home, actor: str, action: str, target: str, details: Mapping[str, Any] | None = None) -> None:
    """:func:`record` for a change already made: a failure says so (the change stands, its entry is missing) as a
    :class:`StorageError` (a server answers 503), never as an error of the request.

    Raises:
        StorageError: naming the change whose entry could not be written, and why.
    """
    try:
        record(home, actor, action, target, details)
    except (ConfigError, ValidationError, StorageError) as e:
        raise StorageError(f"{action} of {target} was made, but its audit entry could not be written: {e}; fix the "
                           "audit log (see 'rlops audit verify') and record it by hand") from e
