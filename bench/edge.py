"""Edge runtime throughput: ``EdgePolicy.decide_batch`` on 1,024 contexts, and single-decision latency.

Each policy is exported with ``rlops.export.export_policy`` and served by ``rlops.edge.EdgePolicy`` (onnxruntime,
one intra-op thread). A batch is 1,024 contexts of the synthetic-users schema (a float, a categorical, a boolean,
a float and a 4-vector; 5 actions), given either as columns (``{feature: numpy array}``) or as a list of dicts.
Each configuration decides batches back to back for a fixed time, in rounds that interleave the configurations;
the table shows the median and best run in decisions per wall-clock second, and the median per CPU second of the
process (which leaves out time spent waiting for a core when the machine is shared). Reference: the same policy
in process (``PolicyInput.from_contexts`` then ``policy.act``, torch with one thread, or numpy), on the list of
dicts.

Run::

    .venv/bin/python bench/edge.py            # 9 x 0.5 s per configuration, writes docs/benchmarks.md
    .venv/bin/python bench/edge.py --quick    # 3 x 0.2 s, prints only
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import REPO, machine, machine_line, write_section
from rlops.edge import EdgePolicy
from rlops.export import export_policy
from rlops.policies import (
    BasePolicy,
    EpsilonGreedy,
    LearningBatch,
    LinearScorer,
    LinUCB,
    PolicyInput,
    RidgeScorer,
    SB3Policy,
    Softmax,
    UniformRandom,
)
from rlops.scenarios import SyntheticBandit

SECTION = "## Edge runtime throughput (bench/edge.py)"
BATCH = 1024
TARGET = 500_000
WORLD = SyntheticBandit(seed=0)
SCHEMA = WORLD.schema


def _trained(policy: BasePolicy) -> BasePolicy:
    rng = np.random.default_rng(1)
    batch = PolicyInput.from_contexts(SCHEMA, WORLD.sample_contexts(2000, rng))
    act = UniformRandom(SCHEMA).act(batch, rng)
    policy.update(LearningBatch(batch, act.action, rng.normal(size=2000), act.propensity))  # type: ignore[attr-defined]
    return policy


def _ppo() -> BasePolicy:
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)  # as onnxruntime here: one thread each

    class Spaces(gym.Env[np.ndarray, int]):
        observation_space = gym.spaces.Box(-100.0, 100.0, (SCHEMA.width,), np.float32)
        action_space = gym.spaces.Discrete(SCHEMA.n_actions or 0)

    model = PPO("MlpPolicy", Spaces(), seed=0, device="cpu", n_steps=64, batch_size=32)  # net_arch 64 x 64
    return SB3Policy(SCHEMA, model)


POLICIES: dict[str, Callable[[], BasePolicy]] = {
    "LinUCB (UCB bonus in the graph)": lambda: _trained(LinUCB(SCHEMA, alpha=1.0)),
    "epsilon-greedy, linear scorer": lambda: EpsilonGreedy(
        SCHEMA, LinearScorer(np.random.default_rng(0).normal(size=(SCHEMA.n_actions or 0, SCHEMA.width))), 0.1),
    "softmax, ridge scorer": lambda: _trained(Softmax(SCHEMA, RidgeScorer.for_schema(SCHEMA, {}, {}), 0.5)),
    "SB3 PPO, MLP 64x64": _ppo,
}


def _columns(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    return {f.name: np.asarray([r[f.name] for r in rows]) for f in SCHEMA.features}


def rate(step: Callable[[], object], seconds: float) -> tuple[float, float]:
    """Decisions per second of ``step`` (one batch) over ``seconds``: per wall-clock second and per CPU second.

    With one onnxruntime thread everything runs on the calling thread, so on an idle machine the two agree; on a
    shared one, CPU time leaves out the time the process waited for a core.
    """
    calls, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        step()
        calls += 1
    return calls * BATCH / (time.perf_counter() - wall), calls * BATCH / (time.process_time() - cpu)


def latency(step: Callable[[int], object], n: int) -> tuple[float, float]:
    for i in range(200):
        step(i)
    out = np.empty(n)
    for i in range(n):
        start = time.perf_counter_ns()
        step(i)
        out[i] = (time.perf_counter_ns() - start) / 1000
    return float(np.percentile(out, 50)), float(np.percentile(out, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 x 0.2 s per configuration; do not write the docs")
    args = parser.parse_args()
    seconds, repeats = (0.2, 3) if args.quick else (0.5, 9)
    load = os.getloadavg()[0]  # other work on the machine shows in the numbers: the section records it
    rows = WORLD.sample_contexts(BATCH, np.random.default_rng(2))
    columns = _columns(rows)
    singles = WORLD.sample_contexts(2000, np.random.default_rng(3))
    scratch = Path(tempfile.mkdtemp(prefix=".bench-edge-", dir=REPO))
    latencies: list[tuple[str, float, float]] = []
    steps: list[tuple[str, str, Callable[[], object]]] = []
    edges: list[EdgePolicy] = []
    try:
        for label, make in POLICIES.items():
            policy = make()
            model = export_policy(policy, scratch / f"{len(edges)}.onnx", policy_version="bench@r1",
                                  deployment="bench").model_path
            edge = EdgePolicy.load(model, seed=0)
            logged = EdgePolicy.load(model, seed=0, log=scratch / f"{len(edges)}.jsonl")
            edges += [edge, logged]
            rng = np.random.default_rng(0)
            steps += [(label, "edge, columns", lambda e=edge: e.decide_batch(columns)),
                      (label, "edge, list of dicts", lambda e=edge: e.decide_batch(rows)),
                      (label, "edge, columns + decision log", lambda e=logged: e.decide_batch(columns)),
                      (label, "reference: PolicyInput + policy.act",
                       lambda p=policy, r=rng: p.act(PolicyInput.from_contexts(SCHEMA, rows), r))]
            p50, p99 = latency(lambda i, e=edge: e.decide(singles[i % len(singles)]), 2_000 if args.quick else 10_000)
            latencies.append((label, p50, p99))
        for _, _, step in steps:  # warm up every path before any is timed
            for _ in range(10):
                step()
        runs: list[list[tuple[float, float]]] = [[] for _ in steps]
        for _ in range(repeats):  # interleaved: a busy spell on the machine spreads over every configuration
            for i, (_, _, step) in enumerate(steps):
                runs[i].append(rate(step, seconds))
        results = [(label, path, measured) for (label, path, _), measured in zip(steps, runs, strict=True)]
    finally:
        for edge in edges:
            edge.close()
        shutil.rmtree(scratch, ignore_errors=True)

    table = Table(title=f"decide_batch, {BATCH:,} contexts per call: decisions per second ({repeats} runs)")
    for column in ("policy", "path", "median /s", "best /s", "median per CPU s"):
        table.add_column(column, justify="left" if column in ("policy", "path") else "right")
    lines_table = ["| policy | path | decisions/s (median) | best run | per CPU second (median) |",
                   "|---|---|---:|---:|---:|"]
    for label, path, measured in results:
        wall = statistics.median(w for w, _ in measured)
        best = max(w for w, _ in measured)
        cpu = statistics.median(c for _, c in measured)
        table.add_row(label, path, f"{wall:,.0f}", f"{best:,.0f}", f"{cpu:,.0f}")
        lines_table.append(f"| {label} | {path} | {wall:,.0f} | {best:,.0f} | {cpu:,.0f} |")
    console = Console()
    console.print(table)
    single = Table(title="EdgePolicy.decide, one context per call, microseconds")
    for column in ("policy", "p50 us", "p99 us"):
        single.add_column(column, justify="left" if column == "policy" else "right")
    lines_single = ["| policy | p50 us | p99 us |", "|---|---:|---:|"]
    for label, p50, p99 in latencies:
        single.add_row(label, f"{p50:.1f}", f"{p99:.1f}")
        lines_single.append(f"| {label} | {p50:.1f} | {p99:.1f} |")
    console.print(single)
    if args.quick:
        return
    facts = machine()
    lines = [SECTION, "", f"Command: `.venv/bin/python bench/edge.py` ({repeats} interleaved runs of {seconds} s per "
             f"configuration; run on {facts['date']}).", "",
             machine_line(facts) + f" Load average when it started: {load:.1f}.", "",
             f"Target (issue 4): `decide_batch` on {BATCH:,} contexts at least {TARGET:,} decisions/s in process. "
             "Schema: synthetic users (float, categorical, boolean, float, 4-vector; 5 actions); onnxruntime with "
             "one intra-op thread. *Columns* is `decide_batch({feature: numpy array})`, *list of dicts* is "
             "`decide_batch([{...}, ...])`; both validate every value against the schema. The decision log "
             "(JSON lines, no fsync) adds one line per call. The reference is the policy itself in process on the "
             "list of dicts.", "", *lines_table, "", "Single decisions (`EdgePolicy.decide`, validation with the "
             "schema, one graph run, a new id; no log):", "", *lines_single]
    write_section(SECTION, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
