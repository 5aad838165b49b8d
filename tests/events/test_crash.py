"""Crash safety: writers (and a compactor) killed with SIGKILL mid-run lose nothing they acknowledged.

The writers (``writer_proc.py``) print an id only after ``append`` returned. After the kill, every printed id must be
in the log exactly once, and every record in the log must equal what the writer builds for its id (the writer is
deterministic, so the test recomputes each record from its id).
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rlops.events import DecisionRecord, EventLog, OutcomeRecord

from .writer_proc import expected_decision, expected_outcome

WRITER = Path(__file__).with_name("writer_proc.py")


class Proc:
    """A helper process whose complete stdout lines are collected by a thread (a full pipe would stall it)."""

    def __init__(self, root: Path, *args: str) -> None:
        self.popen = subprocess.Popen([sys.executable, str(WRITER), str(root), *args], stdout=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            if line.endswith("\n"):  # a line cut by the kill was never fully acknowledged
                self.lines.append(line.rstrip("\n"))

    def wait_for(self, prefix: str, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while sum(1 for line in self.lines if line.startswith(prefix)) < count:
            if self.popen.poll() is not None:
                raise AssertionError(f"helper exited early with {self.popen.returncode}")
            if time.monotonic() > deadline:
                raise AssertionError(f"helper printed only {len(self.lines)} lines")
            time.sleep(0.01)

    def kill(self) -> None:
        self.popen.kill()  # SIGKILL: no cleanup, no flush, no close
        self.popen.wait()
        self._reader.join(timeout=10)

    def acked(self, kind: str) -> list[str]:
        return [line.split()[1] for line in self.lines if line.startswith(kind + " ")]


def check(root: Path, acked_decisions: list[str], acked_outcomes: list[str]) -> None:
    """Everything acknowledged is stored exactly once; everything stored decodes to what the writer built."""
    log = EventLog(root)
    decisions = log.read_decisions()
    ids = decisions.column("decision_id").to_pylist()
    assert log.stats().decisions == len(ids) == len(set(ids))  # stored once, not merely deduplicated on read
    missing = set(acked_decisions) - set(ids)
    assert not missing, f"{len(missing)} acknowledged decisions lost, e.g. {sorted(missing)[:3]}"
    keys = log.read_outcomes().column("idempotency_key").to_pylist()
    assert len(keys) == len(set(keys))
    missing = set(acked_outcomes) - set(keys)
    assert not missing, f"{len(missing)} acknowledged outcomes lost, e.g. {sorted(missing)[:3]}"
    seen = 0
    for record in log.iter_records():
        if isinstance(record, DecisionRecord):
            assert record == expected_decision(record.decision_id)
        else:
            assert isinstance(record, OutcomeRecord)
            assert record == expected_outcome(record.idempotency_key)
        seen += 1
    assert seen == len(ids) + len(keys)
    assert len(acked_decisions) == len(set(acked_decisions))  # the writer never acknowledged an id twice


def test_kill_a_single_writer(tmp_path: Path) -> None:
    root = tmp_path / "ev"
    proc = Proc(root, "write", "--writer", "1")
    try:
        proc.wait_for("D", 300)
    finally:
        proc.kill()
    assert len(proc.acked("D")) >= 300
    check(root, proc.acked("D"), proc.acked("O"))


def test_kill_threads_and_processes_writing_to_one_folder(tmp_path: Path) -> None:
    root = tmp_path / "ev"
    procs = [
        Proc(root, "write", "--writer", "1", "--threads", "4", "--segment-bytes", "65536"),
        Proc(root, "write", "--writer", "2", "--batch", "8", "--segment-bytes", "65536"),
        Proc(root, "write", "--writer", "3", "--batch", "3"),
        Proc(root, "write", "--writer", "4", "--threads", "2"),
    ]
    try:
        for proc in procs:
            proc.wait_for("D", 200)
    finally:
        for proc in procs:
            proc.kill()
    decisions = [i for p in procs for i in p.acked("D")]
    outcomes = [k for p in procs for k in p.acked("O")]
    assert {i.split("-")[1] for i in procs[0].acked("D")} == {"t0", "t1", "t2", "t3"}  # all four threads wrote
    assert len(list((root / "segments").glob("*.seg"))) > 4  # and the small segments rotated
    check(root, decisions, outcomes)


@pytest.mark.slow
def test_kill_the_compactor_again_and_again(tmp_path: Path) -> None:
    root = tmp_path / "ev"
    rng = random.Random(7)
    writers = [Proc(root, "write", "--writer", str(w), "--threads", "2", "--batch", str(b), "--segment-bytes",
                    "16384") for w, b in ((1, 1), (2, 5))]
    try:
        for proc in writers:
            proc.wait_for("D", 1000)
        for attempt in range(6):
            compactor = Proc(root, "compact")
            try:
                # The first one finishes a pass (so parts certainly exist). The others die wherever they are in
                # theirs: a fresh compactor commits its first segment ~0.3 s after it starts, then one every ~10 ms.
                compactor.wait_for("C" if attempt == 0 else "S", 1)
                time.sleep(rng.uniform(0.35, 1.0))
            finally:
                compactor.kill()
    finally:
        for proc in writers:
            proc.kill()
    assert list((root / "parquet" / "outcomes").glob("*.parquet"))  # compaction did move segments
    decisions = [i for p in writers for i in p.acked("D")]
    outcomes = [k for p in writers for k in p.acked("O")]
    check(root, decisions, outcomes)  # as the crashes left it
    result = EventLog(root).compact()  # recovers whatever the kills interrupted
    assert result.skipped == 0  # the killed writers' locks died with them
    assert not list((root / "segments").glob("*.seg"))
    check(root, decisions, outcomes)
