"""API keys: random, stored only as a hash, revocable; authentication fails the same way for every bad key."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from rlops.errors import NotFoundError, UnauthorizedError, ValidationError
from rlops.home import Home
from rlops.security import KeyStore, Permission, Role, Scope
from rlops.security.keys import INVALID


@pytest.fixture
def home(tmp_path: Path, home_on_backend: str) -> Home:
    return Home(tmp_path / "home").ensure()


@pytest.fixture
def store(home: Home) -> Iterator[KeyStore]:
    with KeyStore.for_home(home) as s:
        yield s


def _secret(key: str) -> str:
    return key.split("_", 2)[2]


def test_fresh_store_has_no_keys(store: KeyStore) -> None:
    assert store.list() == []


def test_create_and_authenticate(store: KeyStore) -> None:
    record, key = store.create(Role.DECIDER, Scope.parse(["deployment:pricing"]), name="checkout", actor="ana")
    assert key.startswith(f"rlk_{record.id}_") and len(_secret(key)) == 43
    assert record.active and record.created_by == "ana" and record.name == "checkout"
    p = store.authenticate(key)
    assert (p.key_id, p.name, p.role) == (record.id, "checkout", Role.DECIDER)
    assert p.allows(Permission.DECIDE, "pricing") and not p.allows(Permission.DECIDE, "ranking")
    assert store.get(record.id).last_used_at_us is not None
    other, key2 = store.create("viewer")
    assert other.id != record.id and _secret(key2) != _secret(key)


def test_stored_row_holds_no_plaintext(store: KeyStore, home: Home, metadata_backend: str) -> None:
    _, key = store.create(Role.ADMIN, name="root")
    store.close()
    engine = create_engine(home.metadata_url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text("SELECT * FROM api_keys"))]
    engine.dispose()
    assert len(rows) == 1 and "root" in rows[0]  # the row is there...
    assert _secret(key) not in repr(rows)  # ...without the secret
    if metadata_backend == "sqlite":  # and the file and its WAL, read as they are, hold it nowhere either
        raw = b"".join(p.read_bytes() for p in home.root.iterdir() if p.name.startswith("meta.db"))
        assert b"root" in raw
        assert _secret(key).encode() not in raw and key.encode() not in raw
        with sqlite3.connect(home.meta_db) as conn:
            dump = "\n".join(conn.iterdump())
        assert _secret(key) not in dump


@pytest.mark.parametrize("mangle", [
    lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),  # one character of the secret changed
    lambda k: k[:4] + ("f" if k[4] != "f" else "e") + k[5:],  # the id changed
    lambda k: k[:-1],  # truncated
    lambda k: k + "x",
    lambda k: k.replace("rlk_", "rlx_"),
    lambda k: "",
    lambda k: "rlk_",
])
def test_modified_key_fails(store: KeyStore, mangle: object) -> None:
    _, key = store.create(Role.ADMIN)
    with pytest.raises(UnauthorizedError) as info:
        store.authenticate(mangle(key))  # type: ignore[operator]
    assert str(info.value) == INVALID


def test_revoked_key_fails_with_the_same_message(store: KeyStore) -> None:
    record, key = store.create(Role.DEPLOYER)
    kept, other = store.create(Role.VIEWER)
    revoked = store.revoke(record.id, actor="bo")
    assert not revoked.active and revoked.revoked_by == "bo" and revoked.revoked_at_us is not None
    with pytest.raises(UnauthorizedError) as info:
        store.authenticate(key)
    assert str(info.value) == INVALID
    assert store.authenticate(other).key_id == kept.id
    again = store.revoke(record.id, actor="cy")  # idempotent: the first revocation stands
    assert (again.revoked_at_us, again.revoked_by) == (revoked.revoked_at_us, "bo")
    assert [r.id for r in store.list(include_revoked=False)] == [kept.id]


def test_revocation_is_seen_by_another_store(home: Home) -> None:
    with KeyStore.for_home(home) as a, KeyStore.for_home(home) as b:
        record, key = a.create(Role.DECIDER)
        assert b.authenticate(key).key_id == record.id
        a.revoke(record.id)
        with pytest.raises(UnauthorizedError):
            b.authenticate(key)


def test_unknown_ids_and_bad_input(store: KeyStore) -> None:
    with pytest.raises(NotFoundError, match="no API key with id"):
        store.revoke("0123456789ab")
    with pytest.raises(NotFoundError):
        store.get("'; drop table api_keys; --")
    with pytest.raises(ValidationError, match="role: unknown role 'root'"):
        store.create("root")
    with pytest.raises(ValidationError, match="scope: read-only leaves role 'decider' no permission"):
        store.create(Role.DECIDER, Scope.parse(["read-only"]))
    with pytest.raises(ValidationError, match="name: must be at most 200"):
        store.create(Role.VIEWER, name="x" * 201)
    assert store.list() == []  # nothing was stored by the bad requests
