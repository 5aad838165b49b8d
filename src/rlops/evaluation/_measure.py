"""The measuring process of :func:`rlops.evaluation.budget.measure_resources` (run as ``python -m``).

Prints one JSON line with the measurement on success; on failure prints ``error: <message>`` on stderr and exits 1.
Kept free of anything but the policy: the resident set before loading holds Python, numpy and rlops only.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from rlops.errors import RlopsError
from rlops.evaluation.budget import MB, artifact_size_mb, sample_candidates, sample_contexts
from rlops.policies.base import PolicyInput
from rlops.policies.io import load_policy


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _current_rss_mb() -> float:
    """The resident set now (Linux ``/proc``); the peak where ``/proc`` is missing."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return _peak_rss_mb()
    return pages * resource.getpagesize() / MB


def _latencies(policy: Any, batch_size: int, iterations: int, warmup: int, seed: int) -> np.ndarray:
    """Milliseconds per call of validate-encode-act on fresh sampled contexts, after ``warmup`` untimed calls."""
    rng = np.random.default_rng(seed)
    schema = policy.schema
    calls = warmup + iterations
    contexts = sample_contexts(schema, calls * batch_size, rng)
    candidates = sample_candidates(schema, calls * batch_size, rng)
    act_rng = np.random.default_rng(seed + 1)
    times = np.empty(iterations, dtype=np.float64)
    for i in range(calls):
        rows = slice(i * batch_size, (i + 1) * batch_size)
        start = time.perf_counter_ns()
        batch = PolicyInput.from_contexts(schema, contexts[rows], None if candidates is None else candidates[rows])
        policy.act(batch, act_rng)
        elapsed = time.perf_counter_ns() - start
        if i >= warmup:
            times[i - warmup] = elapsed / 1e6
    return times


def measure(folder: Path, batch_size: int, iterations: int, warmup: int, seed: int) -> dict[str, Any]:
    """Load the policy and measure it in this process (see :mod:`rlops.evaluation.budget`)."""
    before = _current_rss_mb()
    policy = load_policy(folder)
    after = _current_rss_mb()
    single = _latencies(policy, 1, iterations, warmup, seed)
    batched = _latencies(policy, batch_size, iterations, warmup, seed + 2)
    return {
        "policy": str(folder),
        "kind": policy.kind,
        "batch_size": batch_size,
        "iterations": iterations,
        "warmup": warmup,
        "threads": 0,  # filled in by the caller, who set the environment
        "p50_ms": float(np.percentile(single, 50)),
        "p99_ms": float(np.percentile(single, 99)),
        "mean_ms": float(single.mean()),
        "batch_p50_ms": float(np.percentile(batched, 50)),
        "batch_p99_ms": float(np.percentile(batched, 99)),
        "batch_mean_ms": float(batched.mean()),
        "peak_rss_mb": _peak_rss_mb(),
        "baseline_rss_mb": before,
        "policy_rss_mb": max(0.0, after - before),
        "artifact_mb": artifact_size_mb(folder),
        "latency_histogram": _histogram(single),
    }


def _histogram(times: np.ndarray, bins: int = 30) -> dict[str, list[float]]:
    """A histogram of latencies whose range ends at the 99.9th percentile (slower calls land in the last bin)."""
    counts, edges = np.histogram(np.minimum(times, np.percentile(times, 99.9)), bins=bins)
    return {"edges": edges.tolist(), "counts": counts.astype(float).tolist()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlops.evaluation._measure")
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        result = measure(args.policy, args.batch_size, args.iterations, args.warmup, args.seed)
    except RlopsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
