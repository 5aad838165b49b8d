"""The shared metadata database: processes opening a fresh one at the same moment all succeed."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from rlops.engine.store import DeploymentStore
from rlops.registry.store import RegistryStore


def _open(url: str, barrier: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    DeploymentStore(url).engine.dispose()
    RegistryStore(url).close()


def test_concurrent_first_opens_all_succeed(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    for attempt in range(3):
        url = f"sqlite:///{tmp_path / f'meta-{attempt}.db'}"
        barrier = ctx.Barrier(4)
        procs = [ctx.Process(target=_open, args=(url, barrier)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0]
