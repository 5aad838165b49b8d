"""In-process decide latency: rlops Engine.decide with LinUCB (20 features, 8 actions) vs Vowpal Wabbit predict.

Usage:
    .venv/bin/python bench/decide.py            # 20,000 calls per configuration, writes docs/benchmarks.md
    .venv/bin/python bench/decide.py --quick    # 3,000 calls, prints only

Measured per call, one thread, after a warm-up:
- ``policy.act``: LinUCB on an already validated and encoded context (the policy alone);
- ``decide (no fsync)``: Engine.decide: validate, encode, act, log the decision (survives a crash of the process);
- ``decide (fsync)``: the same, acknowledged only after fsync (survives a power cut);
- the peer, Vowpal Wabbit ``--cb_explore_adf`` ``predict`` on the same context and actions, as a user of VW would
  call it (text example parsed per call), with no logging at all.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import REPO, machine, machine_line, write_section
from rlops.engine import DeploymentSpec, Engine
from rlops.policies import LinUCB, PolicyInput
from rlops.schema import Schema

SECTION = "## In-process decide latency (bench/decide.py)"
ACTIONS = [f"a{i}" for i in range(8)]
SCHEMA = Schema.model_validate({
    "features": [{"name": f"f{i}", "type": "float", "min": -10, "max": 10} for i in range(20)],
    "actions": {"type": "discrete", "names": ACTIONS},
})


def timed(fn: Callable[[int], object], n: int, warmup: int = 200) -> np.ndarray:
    for i in range(warmup):
        fn(i)
    out = np.empty(n)
    for i in range(n):
        start = time.perf_counter_ns()
        fn(i)
        out[i] = (time.perf_counter_ns() - start) / 1000
    return out


def contexts(n: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(0)
    values = rng.uniform(-1, 1, (n, 20)).round(4)
    return [{f"f{j}": float(values[i, j]) for j in range(20)} for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,000 calls; do not write the docs")
    args = parser.parse_args()
    n = 3_000 if args.quick else 20_000
    ctx = contexts(n + 500)
    results: dict[str, np.ndarray] = {}

    policy = LinUCB(SCHEMA, alpha=0.5, epsilon=0.05)
    encoded = [PolicyInput.from_contexts(SCHEMA, [c]) for c in ctx[:2000]]
    rng = np.random.default_rng(0)
    results["policy.act (LinUCB)"] = timed(lambda i: policy.act(encoded[i % 2000], rng), n)

    scratch = Path(tempfile.mkdtemp(prefix=".bench-decide-", dir=REPO))
    try:
        spec = DeploymentSpec.from_dict({
            "name": "bench", "schema": SCHEMA.to_dict(),
            "reward": {"name": "r", "version": 1, "expression": "y", "fields": {"y": {}}},
            "policy": {"kind": "linucb", "params": {"alpha": 0.5, "epsilon": 0.05}},
        })
        for label, fsync, calls in (("Engine.decide (no fsync)", False, n), ("Engine.decide (fsync)", True, n // 4)):
            home = scratch / label.replace(" ", "_")
            with Engine(home, fsync=fsync) as engine:
                engine.apply(spec)
                results[label] = timed(lambda i, e=engine: e.decide("bench", ctx[i], f"u{i}"), calls)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    from vowpalwabbit import Workspace

    vw = Workspace("--cb_explore_adf --epsilon 0.05 --quiet")
    shared = [" ".join(f"f{j}:{c[f'f{j}']}" for j in range(20)) for c in ctx]
    results["peer: VW cb_explore_adf predict"] = timed(
        lambda i: vw.predict([f"shared |c {shared[i % len(shared)]}", *(f"|a {a}" for a in ACTIONS)]), n)
    vw.finish()

    peer = np.percentile(results["peer: VW cb_explore_adf predict"], 50)
    table = Table(title="In-process decide latency, microseconds (LinUCB, 20 features, 8 actions)")
    for column in ("path", "calls", "p50 us", "p99 us", "p50 / VW p50"):
        table.add_column(column, justify="left" if column == "path" else "right")
    rows = []
    for label, values in results.items():
        p50, p99 = np.percentile(values, [50, 99])
        rows.append((label, len(values), p50, p99, p50 / peer))
        table.add_row(label, f"{len(values):,}", f"{p50:.1f}", f"{p99:.1f}", f"{p50 / peer:.2f}x")
    Console().print(table)
    if args.quick:
        return
    facts = machine()
    lines = [SECTION, "", f"Command: `.venv/bin/python bench/decide.py` (run on {facts['date']}).", "",
             machine_line(facts), "",
             "Target (issue 2): `Engine.decide` p50 <= 50 us for LinUCB with 20 features. The peer is Vowpal "
             "Wabbit's `predict` on the same context and 8 actions, which neither validates nor logs.", "",
             "| path | calls | p50 us | p99 us | p50 / VW p50 |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {label} | {calls:,} | {p50:.1f} | {p99:.1f} | {ratio:.2f}x |"
              for label, calls, p50, p99, ratio in rows]
    write_section(SECTION, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
