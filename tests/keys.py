"""API keys for tests that talk to a real server: made in the home folder the way ``rlops keys create`` makes them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rlops.home import Home
from rlops.security import KeyStore, Role, Scope


def make_key(home: Path, role: Role | str = Role.ADMIN, scope: Sequence[str] = ()) -> str:
    """A new key of ``role`` narrowed by ``scope`` terms, in ``home``'s key store; returns the plaintext key."""
    with KeyStore.for_home(Home.resolve(home)) as keys:
        return keys.create(role, Scope.parse(scope), name=f"test {role}", actor="tests")[1]


def bearer(key: str) -> dict[str, str]:
    """The ``Authorization`` header for ``key``."""
    return {"Authorization": f"Bearer {key}"}
