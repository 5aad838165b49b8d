"""API keys for the demo's simulated client applications: one decider key per application, revoked when the demo
is done with them, so a demo leaves no standing credential behind (both show in the audit log)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rlops.home import Home
from rlops.security import KeyStore, Role, Scope

ACTOR = "rlops demo"


@contextmanager
def client_keys(home: Path | Home, deployment: str, count: int) -> Iterator[list[str]]:
    """``count`` decider keys scoped to ``deployment`` (each client application has its own, as it would in
    production: rate limits and outcome scopes are per key); revoked when the block ends."""
    home = home if isinstance(home, Home) else Home.resolve(home)
    with KeyStore.for_home(home) as store:
        made = [store.create(Role.DECIDER, Scope.parse([f"deployment:{deployment}"]),
                             name=f"demo client {i + 1} of {deployment}", actor=ACTOR) for i in range(count)]
        try:
            yield [secret for _, secret in made]
        finally:
            for record, _ in made:
                store.revoke(record.id, actor=ACTOR)


@contextmanager
def viewer_key(home: Path | Home) -> Iterator[str]:
    """A viewer key for watching the dashboard while the demo runs; revoked when the block ends."""
    home = home if isinstance(home, Home) else Home.resolve(home)
    with KeyStore.for_home(home) as store:
        record, secret = store.create(Role.VIEWER, name="demo dashboard viewer", actor=ACTOR)
        try:
            yield secret
        finally:
            store.revoke(record.id, actor=ACTOR)
