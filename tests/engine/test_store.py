"""Deployment revisions and rollout changes in the metadata database, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest

from rlops.engine.store import Change, DeploymentStore
from rlops.errors import ConflictError


@pytest.fixture
def store(metadata_url: str) -> DeploymentStore:
    return DeploymentStore(metadata_url)


def test_revisions_count_up_and_an_unchanged_spec_adds_none(store: DeploymentStore) -> None:
    first, created = store.add("news", "h1", {"policy": "a"})
    assert (first.revision, created) == (1, True)
    same, created = store.add("news", "h1", {"policy": "a"})
    assert (same.revision, created) == (1, False)
    second, _ = store.add("news", "h2", lambda n, prev: {"policy": "b", "n": n, "prev": prev and prev.revision})
    assert second.spec == {"policy": "b", "n": 2, "prev": 1}
    assert store.latest("news").spec == second.spec and store.names() == ["news"]
    assert [r.revision for r in store.history("news")] == [1, 2]
    with pytest.raises(ConflictError, match="changed meanwhile"):
        store.add("news", "h3", {"policy": "c"}, base_revision=1)
    store.close()


def test_changes_keep_microsecond_times(store: DeploymentStore) -> None:
    now_us = time.time_ns() // 1000  # beyond 32 bits: an INTEGER column overflows on PostgreSQL
    store.record(Change("news", now_us, 1, "apply", "news@r1", "alice", "first", {"k": [1, 2]}))
    store.record(Change("news", now_us + 1, 2, "promote", None, "loop", "better", {}))
    changes = store.changes("news")
    assert [(c.ts_us, c.action, c.version) for c in changes] == [(now_us, "apply", "news@r1"),
                                                                   (now_us + 1, "promote", None)]
    assert store.changes(limit=1)[0].action == "promote"
    store.close()


def test_concurrent_writers_get_distinct_revisions(store: DeploymentStore) -> None:
    got: list[int] = []
    failures: list[BaseException] = []
    barrier = threading.Barrier(4, timeout=30)

    def work(t: int) -> None:
        try:
            barrier.wait()
            for i in range(5):
                revision, created = store.add("news", f"t{t}-{i}", {"t": t, "i": i})
                assert created
                got.append(revision.revision)
        except BaseException as e:  # surfaced below
            failures.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures, failures
    assert sorted(got) == list(range(1, 21))
    assert [r.revision for r in store.history("news")] == list(range(1, 21))
    store.close()
