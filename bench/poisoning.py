"""How far a flood of forged rewards moves a learning policy, with the poisoning guard and without it.

The scenario is the one ``tests/security/test_poisoning.py`` asserts on (``_run`` there): LinUCB learns online from
honest clients (four keys) reporting true clicks of the synthetic bandit world; from step 5 a forger (its own key)
makes decisions too and reports a click for every one that chose the world's worst action. Three runs, same seeds:
no flood (*clean*), the flood with the default guard (*guarded*), the flood with the guard off (*unguarded*). Per
run: the share of 500 test contexts on which the learned policy's greedy choice is the forged action, and the true
click rate of those greedy choices, with how many forged outcomes were quarantined and how many were learned.

There is no peer: no library we could install screens reported rewards per key. The unguarded run is the baseline.

Run::

    .venv/bin/python bench/poisoning.py          # writes its section of docs/benchmarks.md
    .venv/bin/python bench/poisoning.py --quick  # prints only
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the scenario is the test's
from tests.security.test_poisoning import _run

from report import machine, machine_line, write_section
from rlops.scenarios.synthetic_bandit import ACTIONS

SECTION = "## Poisoning guard (bench/poisoning.py)"
RUNS = (("clean", None, False), ("guarded", None, True), ("unguarded", {"enabled": False}, True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="print only; do not touch docs/benchmarks.md")
    args = parser.parse_args()
    worst = ACTIONS.index("news")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rlops-bench-poisoning-") as tmp:
        for name, guard, flood in RUNS:
            started = time.perf_counter()
            greedy, value, quarantined, learned = _run(Path(tmp) / name, guard, flood)
            rows.append((name, float(np.mean(greedy == worst)), value, quarantined, learned,
                         time.perf_counter() - started))
    table = Table("run", "forged action chosen", "click rate", "forged quarantined", "forged learned", "seconds",
                  title="LinUCB learning online while a forger claims clicks for the worst action")
    lines = ["| run | test contexts where the policy picks the forged action | click rate of the learned policy "
             "| forged outcomes quarantined | forged outcomes learned |", "|---|---:|---:|---:|---:|"]
    for name, share, value, quarantined, learned, seconds in rows:
        table.add_row(name, f"{share:.1%}", f"{value:.4f}", str(quarantined), str(learned), f"{seconds:.1f}")
        lines.append(f"| {name} | {share:.1%} | {value:.4f} | {quarantined} | {learned} |")
    Console().print(table)
    if args.quick:
        return
    write_section(SECTION, "\n".join([
        SECTION, "",
        f"Command: `.venv/bin/python bench/poisoning.py`. {machine_line(machine())}", "",
        "The scenario of `tests/security/test_poisoning.py` (which asserts on it): LinUCB learns online from four "
        "honest client keys; a forger's key reports a click for every decision of the world's worst action. Same "
        "seeds in every run; no peer screens rewards per key, so the unguarded run is the baseline.", "",
        *lines,
    ]))


if __name__ == "__main__":
    main()
