"""Concurrent registrations of one name get distinct, consecutive versions, each with its own verified folder."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rlops.home import Home
from rlops.registry import Registry

#: Every test runs on SQLite and on PostgreSQL (see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("home_on_backend")

PROC = Path(__file__).with_name("register_proc.py")
ROOT = Path(__file__).resolve().parents[2]


def _check(home: Home, expected: int) -> None:
    with Registry(home) as registry:
        versions = [v.version for v in registry.versions("pricing")]
        assert versions == list(range(1, expected + 1))
        for v in versions:
            registry.verify("pricing", v)
        assert sorted(p.name for p in (home.root / "registry" / "pricing").iterdir()) == sorted(
            f"v{v}" for v in versions)  # no staging or orphan folders left
        keys = {registry.get("pricing", v).public_key for v in versions}
    assert len(keys) == 1  # one key file, even though every writer raced to create it


def test_threads_registering_at_once_get_distinct_versions(home: Home, policy_dir: Path) -> None:
    got: list[int] = []
    failures: list[BaseException] = []
    barrier = threading.Barrier(4, timeout=60)

    def work() -> None:
        try:
            with Registry(home) as registry:
                barrier.wait()
                for _ in range(3):
                    got.append(registry.register("pricing", policy_dir).version)
        except BaseException as e:  # surfaced below
            failures.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures
    assert sorted(got) == list(range(1, 13))
    _check(home, 12)


def test_processes_registering_at_once_get_distinct_versions(home: Home, policy_dir: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, str(PROC), str(home.root), str(policy_dir), "4", str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for _ in range(2)]
    try:
        for p in procs:  # both have imported rlops and opened the registry
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        go.touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    got = sorted(int(line) for out, _ in outputs for line in out.split())
    assert got == list(range(1, 9))
    _check(home, 8)
