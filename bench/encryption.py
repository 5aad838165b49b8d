"""What encryption at rest costs the event log: appends per second with and without a data key, and a full read.

Each configuration runs as pairs (plaintext and encrypted back to back, the order alternating); the ratio is the
median of the pairs' ratios, so a change in the machine's load hits both sides of a pair alike. Same records as
``bench/events.py`` (20 float context features, 8 actions with probabilities), same group-commit
log; the only difference is the keyring. With ``fsync`` the sync dominates and hides the cipher; without it
(``fsync=False``) appends are CPU-bound and show what sealing each frame costs. The read row reads back 50k
decisions from sealed or plaintext Parquet parts.

Run::

    .venv/bin/python bench/encryption.py           # 9 pairs x 1 s per configuration, writes docs/benchmarks.md
    .venv/bin/python bench/encryption.py --quick   # 1 x 0.5 s, does not touch the docs
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from events import bench_rlops, make_records
from report import REPO, machine, machine_line, write_section
from rlops.encryption import DataKey, Keyring, KeySource
from rlops.events import EventLog

SECTION = "## Encryption at rest (bench/encryption.py)"
CONFIGS = [(1, 1, True), (8, 1, True), (1, 64, True), (1, 1, False), (1, 64, False), (8, 64, False)]
READ_DECISIONS = 50_000


def _appends(keyring: Keyring, threads: int, batch: int, fsync: bool, duration: float) -> float:
    folder = Path(tempfile.mkdtemp(dir=REPO, prefix=".bench-enc-"))
    try:
        records = make_records(8 * 1024)
        import events

        original = events.EventLog
        events.EventLog = lambda root: EventLog(root, fsync=fsync, keyring=keyring)  # type: ignore[assignment,misc]
        try:
            return bench_rlops(folder / "log", records, threads, batch, duration)
        finally:
            events.EventLog = original  # type: ignore[misc]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _read(keyring: Keyring) -> float:
    """Seconds to read back READ_DECISIONS compacted decisions."""
    folder = Path(tempfile.mkdtemp(dir=REPO, prefix=".bench-enc-"))
    try:
        records = make_records(READ_DECISIONS)
        with EventLog(folder / "log", fsync=False, keyring=keyring) as log:
            for i in range(0, len(records), 1000):
                log.append(records[i : i + 1000])
            log.rotate()
            log.compact()
            start = time.perf_counter()
            assert log.read_decisions().num_rows == READ_DECISIONS
            return time.perf_counter() - start
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat of 0.5 s; do not write the docs")
    args = parser.parse_args()
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    repeats, duration = (1, 0.5) if args.quick else (9, 1.0)
    plain, sealed = Keyring(), Keyring((DataKey.generate(),), KeySource.ENVIRONMENT)
    rows = []
    for threads, batch, fsync in CONFIGS:
        pairs = []
        for i in range(repeats):
            first, second = (plain, sealed) if i % 2 == 0 else (sealed, plain)
            a = _appends(first, threads, batch, fsync, duration)
            b = _appends(second, threads, batch, fsync, duration)
            pairs.append((a, b) if first is plain else (b, a))
        p = statistics.median(x for x, _ in pairs)
        s = statistics.median(y for _, y in pairs)
        ratios = [y / x for x, y in pairs]
        rows.append((str(threads), str(batch), "on" if fsync else "off", f"{p:,.0f}", f"{s:,.0f}",
                     f"{statistics.median(ratios):.2f}x", f"{min(ratios):.2f}-{max(ratios):.2f}x"))
    reads: dict[str, list[float]] = {"plain": [], "sealed": []}
    _read(plain)  # warm-up: imports and the page cache
    for _ in range(repeats + 2):  # cheap, and noisier than the appends
        reads["plain"].append(_read(plain))
        reads["sealed"].append(_read(sealed))
    rp, rs = statistics.median(reads["plain"]), statistics.median(reads["sealed"])
    read_row = (f"reading {READ_DECISIONS:,} compacted decisions takes {rp * 1000:,.0f} ms from plaintext parts, "
                f"{rs * 1000:,.0f} ms from encrypted ones ({rs / rp:.2f}x the time)")
    headers = ("writers", "batch", "fsync", "plaintext rec/s", "encrypted rec/s", "encrypted / plaintext",
               "ratio range")
    table = Table(*headers, title="Event-log appends per second, medians")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    print(read_row)
    if args.quick:
        return
    facts = machine()
    lines = [SECTION, "", f"Command: `.venv/bin/python bench/encryption.py` ({repeats} pairs of {duration:g} s runs "
             f"per configuration, plaintext and encrypted back to back; medians; run on {facts['date']}; load "
             f"average at the start {load}).", "", machine_line(facts), "",
             "Same records and log as bench/events.py; *encrypted* has a data key (AES-256-GCM per frame, sealed "
             "Parquet parts). Ratio: median over the pairs of encrypted / plaintext; below 1 is the cost of "
             "encryption.", "",
             "| " + " | ".join(headers) + " |", "|" + "---:|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", f"Read back: {read_row}.", ""]
    write_section(SECTION, "\n".join(lines))


if __name__ == "__main__":
    main()
