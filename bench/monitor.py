"""What one monitoring pass costs on a large log: the service monitor's signals and the dashboard's data.

A home folder gets ``--decisions`` logged decisions with outcomes (one online LinUCB deployment, filled as
``bench/freshness.py`` fills it); then :func:`rlops.monitoring.watch.collect_signals` (what the leader's monitor
computes every few seconds, for ``/metrics`` and the alert rules) and
:func:`rlops.monitoring.overview.build_overview` (what ``/v1/dashboard`` answers) are timed, median of
``--rounds``, first with the log in segments as the server wrote it, then after ``rlops events compact``.

There is no peer to compare with here: no tool we could install computes these numbers from this log. The figure
says how often a monitor pass can run and how long a guardrail verdict (which shares the leader's thread) can lag.

Run::

    .venv/bin/python bench/monitor.py                    # 100k decisions, writes docs/benchmarks.md
    .venv/bin/python bench/monitor.py --quick            # 20k decisions, does not touch the docs
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from freshness import prepare
from report import machine, machine_line, write_section
from rlops.engine import Engine
from rlops.monitoring.overview import build_overview
from rlops.monitoring.watch import collect_signals
from rlops.registry import Registry

SECTION = "## Monitoring passes (bench/monitor.py)"


def median_seconds(work: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20,000 decisions; do not write the docs")
    args = parser.parse_args()
    n = 20_000 if args.quick else args.decisions
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        prepare(home, n, 2.0)
        with Engine(home) as engine, Registry(engine.home) as registry:
            for layout in ("segments", "compacted"):
                if layout == "compacted":
                    engine.log.compact()
                signals = median_seconds(lambda: collect_signals(engine, window_s=300, registry=registry),
                                         args.rounds)
                overview = median_seconds(lambda: build_overview(engine, registry=registry), args.rounds)
                rows.append((layout, signals, overview))
    title = f"one pass over {n:,} decisions with outcomes, median of {args.rounds}"
    table = Table("log", "monitor signals s", "dashboard data s", title=title)
    lines = ["| log | monitor signals (`collect_signals`) s | dashboard data (`build_overview`) s |", "|---|---|---|"]
    for layout, signals, overview in rows:
        table.add_row(layout, f"{signals:.2f}", f"{overview:.2f}")
        lines.append(f"| {layout} | {signals:.2f} | {overview:.2f} |")
    Console().print(table)
    if args.quick:
        return
    write_section(SECTION, "\n".join([
        SECTION, "",
        f"Command: `.venv/bin/python bench/monitor.py --decisions {n} --rounds {args.rounds}`. "
        f"{machine_line(machine())}", "",
        f"Time of one pass over {n:,} logged decisions with outcomes (one online LinUCB deployment), with the log in "
        "segments as the server wrote it and after `rlops events compact`. No peer computes these numbers, so "
        "there is no ratio.", "",
        *lines, "",
        "Each pass reads the whole log once and joins it per deployment. The monitor runs in the leader's own "
        "thread (decisions and online learning never wait for it), but guardrail verdicts share that thread and "
        "can lag by a pass. An incremental monitor, reading only what the log gained as online learning does, is "
        "the next step.",
    ]))


if __name__ == "__main__":
    main()
