"""Acknowledged-durable appends per second: rlops' event log against SQLite (WAL, synchronous=FULL).

Both sides store the same realistic decision records (20 float context features, 8 actions with probabilities) at
the same durability: a call returns only once its records are fsynced. Each configuration (writer threads x batch
size) runs for a fixed time on a fresh folder on the same disk as the repository.

SQLite gets the most favourable fair setup: one connection per writer thread, one ``BEGIN IMMEDIATE`` transaction
per batch with ``executemany``, a rowid table without a secondary index, the scalar fields as columns and
context/actions/probabilities as JSON text, and ``busy_timeout`` so that writers wait instead of failing.

Run::

    .venv/bin/python bench/events.py            # 3 repeats x 3 s per configuration, writes docs/benchmarks.md
    .venv/bin/python bench/events.py --quick    # 1 x 1 s per configuration, does not touch the docs
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import DOC, REPO, machine, machine_line, write_section
from rlops.events import DecisionRecord, EventLog, Mode, new_id

SECTION = "## Event log appends (bench/events.py)"
THREADS = (1, 8)
BATCHES = (1, 64, 1024)

_dumps = json.JSONEncoder(separators=(",", ":")).encode


def make_records(n: int, seed: int = 0) -> list[DecisionRecord]:
    """``n`` decisions like a contextual bandit with 20 float features and 8 actions would log."""
    rng = random.Random(seed)
    actions = [f"action_{k}" for k in range(8)]
    out = []
    for _ in range(n):
        weights = [rng.random() + 0.05 for _ in actions]
        total = sum(weights)
        probabilities = [w / total for w in weights]
        index = rng.randrange(len(actions))
        out.append(DecisionRecord(
            decision_id=new_id(), ts=1_700_000_000_000_000 + rng.randrange(10**9), deployment="pricing",
            policy_version="linucb-2024-06-01", mode=Mode.SERVED, unit_id=f"user-{rng.randrange(10**6)}",
            context={f"f{k:02d}": rng.gauss(0.0, 1.0) for k in range(20)}, actions=actions, action=actions[index],
            action_index=index, propensity=probabilities[index], probabilities=probabilities,
            latency_us=rng.randrange(50, 500)))
    return out


def _run(threads: int, duration: float, make_worker: Callable[[int], Callable[[], int]]) -> float:
    """Run ``threads`` workers until ``duration`` seconds pass; return acknowledged records per second."""
    workers = [make_worker(t) for t in range(threads)]
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    deadline = 0.0

    def loop(t: int) -> None:
        step = workers[t]
        start.wait()
        n = 0
        while time.perf_counter() < deadline:
            n += step()
        counts[t] = n

    pool = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    t0 = time.perf_counter()
    deadline = t0 + duration
    start.wait()
    for th in pool:
        th.join()
    return sum(counts) / (time.perf_counter() - t0)


def bench_rlops(folder: Path, records: Sequence[DecisionRecord], threads: int, batch: int, duration: float) -> float:
    with EventLog(folder) as log:
        def make_worker(t: int) -> Callable[[], int]:
            chunks = [records[i : i + batch] for i in range(t * batch, len(records) - batch + 1, threads * batch)]
            state = {"i": 0}

            def step() -> int:
                chunk = chunks[state["i"] % len(chunks)]
                state["i"] += 1
                log.append(chunk)
                return len(chunk)
            return step
        return _run(threads, duration, make_worker)


_SQLITE_COLUMNS = ("decision_id TEXT, ts INTEGER, deployment TEXT, policy_version TEXT, mode TEXT, unit_id TEXT, "
                   "context TEXT, actions TEXT, action TEXT, action_index INTEGER, propensity REAL, "
                   "probabilities TEXT, latency_us INTEGER")
_SQLITE_INSERT = "INSERT INTO decisions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"


def _sqlite_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 60000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def bench_sqlite(folder: Path, records: Sequence[DecisionRecord], threads: int, batch: int, duration: float) -> float:
    path = folder / "events.db"
    setup = _sqlite_connect(path)
    setup.execute(f"CREATE TABLE decisions ({_SQLITE_COLUMNS})")
    conns: list[sqlite3.Connection] = []

    def make_worker(t: int) -> Callable[[], int]:
        conn = _sqlite_connect(path)
        conns.append(conn)
        chunks = [records[i : i + batch] for i in range(t * batch, len(records) - batch + 1, threads * batch)]
        state = {"i": 0}

        def step() -> int:
            chunk = chunks[state["i"] % len(chunks)]
            state["i"] += 1
            rows = [(r.decision_id, r.ts, r.deployment, r.policy_version, r.mode.value, r.unit_id, _dumps(r.context),
                     _dumps(r.actions), r.action, r.action_index, r.propensity, _dumps(r.probabilities),
                     r.latency_us) for r in chunk]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_SQLITE_INSERT, rows)
            conn.execute("COMMIT")
            return len(chunk)
        return step

    try:
        return _run(threads, duration, make_worker)
    finally:
        for conn in conns:
            conn.close()
        setup.close()


@dataclass(frozen=True)
class Result:
    """Rates of one configuration over the repeats (records per second)."""

    threads: int
    batch: int
    rlops_runs: list[float]
    sqlite_runs: list[float]

    @property
    def rlops(self) -> float:
        return statistics.median(self.rlops_runs)

    @property
    def sqlite(self) -> float:
        return statistics.median(self.sqlite_runs)

    @property
    def ratio(self) -> float:
        return self.rlops / self.sqlite

    @property
    def ratio_range(self) -> str:
        """Lowest and highest rlops/sqlite ratio of the repeats (each repeat runs both back to back)."""
        ratios = [r / s for r, s in zip(self.rlops_runs, self.sqlite_runs, strict=True)]
        return f"{min(ratios):.2f}-{max(ratios):.2f}x"


def render(results: list[Result]) -> Table:
    table = Table(title="Acknowledged-durable decision appends per second (median of the repeats)")
    for name in ("writers", "batch", "rlops rec/s", "sqlite rec/s", "rlops / sqlite", "ratio range"):
        table.add_column(name, justify="right")
    for r in results:
        table.add_row(str(r.threads), str(r.batch), f"{r.rlops:,.0f}", f"{r.sqlite:,.0f}", f"{r.ratio:.2f}x",
                      r.ratio_range)
    return table


def markdown(results: list[Result], facts: dict[str, str], duration: float, repeats: int, command: str) -> str:
    lines = [
        SECTION,
        "",
        f"Command: `{command}` ({repeats} repeats of {duration:g} s per configuration and system, interleaved; "
        f"medians; run on {facts['date']}).",
        "",
        machine_line(facts),
        "",
        "Acknowledged-durable appends of decision records (20 float context features, 8 actions with "
        "probabilities). rlops: `EventLog.append` with `fsync=True` (group commit). SQLite: WAL mode, "
        "`synchronous=FULL`, one connection per writer thread, one `BEGIN IMMEDIATE` transaction per batch, "
        "rowid table without index, JSON text for context/actions/probabilities, `busy_timeout` 60 s.",
        "",
        "| writers | batch | rlops rec/s | sqlite rec/s | rlops / sqlite | ratio range over repeats |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r.threads} | {r.batch} | {r.rlops:,.0f} | {r.sqlite:,.0f} | {r.ratio:.2f}x | "
                     f"{r.ratio_range} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s per configuration; do not write the docs")
    parser.add_argument("--duration", type=float, default=None, help="seconds per run (default 3)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per configuration and system (default 3)")
    args = parser.parse_args()
    duration = args.duration if args.duration is not None else (1.0 if args.quick else 3.0)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    console = Console()
    records = make_records(8 * 1024 * 4)
    results: list[Result] = []
    # A fresh folder per run, on the same disk as the repository (not a tmpfs /tmp).
    scratch = Path(tempfile.mkdtemp(prefix=".bench-events-", dir=REPO))
    try:
        for threads in THREADS:
            for batch in BATCHES:
                runs: dict[str, list[float]] = {"rlops": [], "sqlite": []}
                for rep in range(repeats):
                    # Interleaved, alternating who goes first: a noisy neighbour hurts both alike.
                    order = [("rlops", bench_rlops), ("sqlite", bench_sqlite)]
                    for name, bench in order if rep % 2 == 0 else order[::-1]:
                        folder = scratch / f"{name}-{threads}-{batch}-{rep}"
                        folder.mkdir()
                        runs[name].append(bench(folder, records, threads, batch, duration))
                        shutil.rmtree(folder)
                result = Result(threads, batch, runs["rlops"], runs["sqlite"])
                results.append(result)
                console.print(f"writers={threads} batch={batch}: rlops {result.rlops:,.0f}/s, "
                              f"sqlite {result.sqlite:,.0f}/s ({result.ratio_range})")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    console.print(render(results))
    if not args.quick:
        command = ".venv/bin/python bench/events.py" + (f" --duration {args.duration:g}" if args.duration else "")
        command += f" --repeats {args.repeats}" if args.repeats else ""
        write_section(SECTION, markdown(results, machine(), duration, repeats, command))
        console.print(f"wrote {DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
