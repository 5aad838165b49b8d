"""Off-policy evaluation speed: rlops' DR and SNIPS with 95% intervals against the Open Bandit Pipeline (obp 0.5.7).

Both libraries get the same arrays from the same ``.npz`` file: 1M logged decisions, 20 context features,
10 actions, the target's action distribution and the same reward-model predictions (rlops' 5-fold cross-fitted
ridge per action, fitted once beforehand). Each side runs in its own process (OBP in its own virtual environment,
built once by ``tests/evaluation/ope/obp_env.py``) and times itself: rlops from validating the arrays
(``BanditData``) to the estimate with its interval; OBP ``estimate_policy_value`` plus ``estimate_interval`` (its
percentile bootstrap, a Python loop of ``n_bootstrap`` resamples). Repeats are interleaved between the two sides
and the medians reported, since other jobs share the CPUs. Peak memory is measured in a separate, untimed pass
with ``tracemalloc`` (it traces numpy's buffers); the process's peak RSS is reported too.

A second part times rlops alone on 10M decisions (arrays generated in the measuring process).

Run::

    .venv/bin/python bench/ope.py               # 1M + 10M events, 3 repeats, writes docs/benchmarks.md
    .venv/bin/python bench/ope.py --quick       # 100k events, 1 repeat, does not touch the docs
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.evaluation.ope.obp_env import obp_python, run_side

from report import REPO, machine, machine_line, write_section
from rlops.evaluation.ope import (
    SNIPS,
    BanditData,
    DoublyRobust,
    Estimate,
    IntervalMethod,
    IntervalSpec,
    cross_fit,
)

SECTION = "## Off-policy evaluation (bench/ope.py)"
FEATURES, ACTIONS = 20, 10


def make_arrays(n: int, seed: int = 0, *, with_x: bool = True) -> dict[str, np.ndarray]:
    """A logged bandit: softmax logging policy, logistic click model, a different softmax target policy."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, FEATURES)).astype(np.float64)
    theta = rng.normal(scale=0.3, size=(FEATURES, ACTIONS))
    logits = x @ theta
    pi_b = np.exp(logits - logits.max(axis=1, keepdims=True))
    pi_b /= pi_b.sum(axis=1, keepdims=True)
    action = np.minimum((np.cumsum(pi_b, axis=1) < rng.random(n)[:, None]).sum(axis=1), ACTIONS - 1)
    mean_reward = 1.0 / (1.0 + np.exp(-(x @ rng.normal(scale=0.2, size=(FEATURES, ACTIONS)))))
    reward = (rng.random(n) < mean_reward[np.arange(n), action]).astype(np.float64)
    target = 3.0 * mean_reward
    pi_e = np.exp(target - target.max(axis=1, keepdims=True))
    pi_e /= pi_e.sum(axis=1, keepdims=True)
    out = {"action": action.astype(np.int64), "reward": reward, "pscore": pi_b[np.arange(n), action], "pi_e": pi_e}
    if with_x:
        out["x"] = x
    else:  # no reward model fit at 10M: the true means plus noise stand in for a model's predictions
        out["q_hat"] = np.clip(mean_reward + rng.normal(scale=0.05, size=mean_reward.shape), 0.0, 1.0)
    return out


def _ours_once(arrays: dict[str, np.ndarray], make: Callable[[], Any], spec: IntervalSpec) -> tuple[float, Estimate]:
    start = time.perf_counter()
    data = BanditData(action=arrays["action"], reward=arrays["reward"], propensity=arrays["pscore"],
                      pi_e=arrays["pi_e"], q_hat=arrays["q_hat"])
    est = make().estimate(data, spec)
    return time.perf_counter() - start, est


def ours_side(inp: str | None, out: str, n_bootstrap: int, big: int) -> None:
    """Our side, in its own process: one timed run per case, then an untimed tracemalloc pass."""
    arrays = dict(np.load(inp)) if inp else make_arrays(big, seed=1, with_x=False)
    cases = {"dr": DoublyRobust, "snips": SNIPS}
    specs = {"normal": IntervalSpec()}
    if n_bootstrap:
        specs["bootstrap"] = IntervalSpec(method=IntervalMethod.BOOTSTRAP, n_bootstrap=n_bootstrap)
    result: dict[str, Any] = {}
    for name, make in cases.items():
        for kind, spec in specs.items():
            seconds, est = _ours_once(arrays, make, spec)
            tracemalloc.start()
            _ours_once(arrays, make, spec)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            result[f"{name}/{kind}"] = {"seconds": seconds, "value": est.value, "low": est.interval.low,
                                        "high": est.interval.high, "peak": peak}
    result["maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    Path(out).write_text(json.dumps(result))


def _run_ours(inp: Path | None, out: Path, n_bootstrap: int, big: int = 0) -> dict[str, Any]:
    args = [sys.executable, __file__, "--side", "ours", "--out", str(out), "--n-bootstrap", str(n_bootstrap),
            "--big", str(big)]
    if inp is not None:
        args += ["--inp", str(inp)]
    subprocess.run(args, check=True, cwd=REPO)
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def _run_obp(inp: Path, out: Path, n_bootstrap: int) -> dict[str, Any]:
    run_side("bench", str(inp), str(out), "1", str(n_bootstrap))
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


def _mb(value: float) -> str:
    return f"{value / 1e6:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k events, 1 repeat, no 10M run, no docs")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--big", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--side", choices=["ours"], help=argparse.SUPPRESS)
    parser.add_argument("--inp", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "ours":
        ours_side(args.inp, args.out, args.n_bootstrap, args.big)
        return
    n, repeats, big = (100_000, 1, 0) if args.quick else (args.n, args.repeats, args.big)
    obp_python()  # build the OBP environment first (once), outside any timing

    with tempfile.TemporaryDirectory(prefix="rlops-bench-ope-") as tmp:
        folder = Path(tmp)
        arrays = make_arrays(n)
        start = time.perf_counter()
        fitted = cross_fit(BanditData(action=arrays["action"], reward=arrays["reward"], propensity=arrays["pscore"],
                                      pi_e=arrays["pi_e"], x=arrays.pop("x")))
        fit_seconds = time.perf_counter() - start
        assert fitted.q_hat is not None
        arrays["q_hat"] = fitted.q_hat
        inp = folder / "arrays.npz"
        np.savez(inp, **arrays)  # type: ignore[arg-type]
        ours_runs, obp_runs = [], []
        for r in range(repeats):  # interleaved: other jobs share the CPUs
            print(f"repeat {r + 1}/{repeats}: rlops ...", flush=True)
            ours_runs.append(_run_ours(inp, folder / f"ours-{r}.json", args.n_bootstrap))
            print(f"repeat {r + 1}/{repeats}: obp ...", flush=True)
            obp_runs.append(_run_obp(inp, folder / f"obp-{r}.npz", args.n_bootstrap))
        big_runs = []
        for r in range(repeats if big else 0):
            print(f"10M repeat {r + 1}/{repeats}: rlops ...", flush=True)
            big_runs.append(_run_ours(None, folder / f"big-{r}.json", 0, big))

    rows = []
    for name, label in (("dr", "DR"), ("snips", "SNIPS")):
        obp_t = statistics.median(float(run[f"{name}_times"][0]) for run in obp_runs)
        obp_value = float(obp_runs[0][f"{name}_value"])
        obp_peak = float(obp_runs[0][f"{name}_peak"])
        for kind in ("normal", "bootstrap"):
            key = f"{name}/{kind}"
            ours_t = statistics.median(run[key]["seconds"] for run in ours_runs)
            diff = max(abs(run[key]["value"] - obp_value) for run in ours_runs)
            interval = (f"normal [{ours_runs[0][key]['low']:.5f}, {ours_runs[0][key]['high']:.5f}]" if kind == "normal"
                        else f"bootstrap [{ours_runs[0][key]['low']:.5f}, {ours_runs[0][key]['high']:.5f}]")
            rows.append((label, interval, ours_t, obp_t, obp_t / ours_t, diff, ours_runs[0][key]["peak"], obp_peak))
    obp_interval = {name: obp_runs[0][f"{name}_interval"] for name in ("dr", "snips")}

    print(f"\n{n:,} events, {FEATURES} features, {ACTIONS} actions; reward model cross-fit {fit_seconds:.1f} s")
    header = f"{'estimator':<8} {'rlops interval':<36} {'rlops s':>8} {'obp s':>8} {'ratio':>7} {'|diff|':>8}"
    print(header + f" {'rlops peak':>11} {'obp peak':>10}")
    for label, interval, ours_t, obp_t, ratio, diff, peak, obp_peak in rows:
        print(f"{label:<8} {interval:<36} {ours_t:8.3f} {obp_t:8.2f} {ratio:6.3g}x {diff:8.1e} {_mb(peak):>11} "
              f"{_mb(obp_peak):>10}")
    big_lines = []
    if big_runs:
        for name, label in (("dr", "DR"), ("snips", "SNIPS")):
            seconds = statistics.median(run[f"{name}/normal"]["seconds"] for run in big_runs)
            peak = big_runs[0][f"{name}/normal"]["peak"]
            big_lines.append((label, seconds, peak, [run[f"{name}/normal"]["seconds"] for run in big_runs]))
            print(f"{big:,} events: rlops {label} with its normal 95% interval {seconds:.2f} s (median), traced peak "
                  f"{_mb(peak)}, process peak RSS {_mb(big_runs[0]['maxrss'])}")
    if args.quick:
        return

    facts = machine()
    lines = [
        SECTION,
        "",
        f"Command: `.venv/bin/python bench/ope.py` ({repeats} repeats per side, interleaved, each side in its own "
        f"process timing itself; medians; run on {facts['date']}).",
        "",
        machine_line(facts),
        "",
        f"{n:,} logged decisions, {FEATURES} context features, {ACTIONS} actions; both libraries read the same arrays "
        f"(including the same reward-model predictions: rlops' 5-fold cross-fitted ridge per action, which took "
        f"{fit_seconds:.1f} s once, outside the timings). rlops time: `BanditData` validation plus the estimate with "
        f"its interval. OBP (0.5.7, numpy 1.26) time: `estimate_policy_value` plus `estimate_interval` (its "
        f"percentile bootstrap, {args.n_bootstrap:,} resamples, `random_state=0`). Peak: `tracemalloc` peak during "
        f"one untimed run (numpy buffers included).",
        "",
        "| estimator | rlops interval | rlops s | OBP s (bootstrap) | OBP / rlops | point estimate diff | rlops peak | "
        "OBP peak |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, interval, ours_t, obp_t, ratio, diff, peak, obp_peak in rows:
        lines.append(f"| {label} | {interval} | {ours_t:.3f} | {obp_t:.2f} | {ratio:.3g}x | {diff:.1e} | {_mb(peak)} | "
                     f"{_mb(obp_peak)} |")
    lines += ["", "OBP's own intervals on the same data: " + "; ".join(
        f"{name.upper()} [{iv[0]:.5f}, {iv[1]:.5f}]" for name, iv in obp_interval.items()) + "."]
    if big_lines:
        lines += ["", f"rlops alone on {big:,} decisions (same generator, {ACTIONS} actions; arrays made in the "
                      f"measuring process), normal 95% interval:", "",
                  "| estimator | median s | all repeats s | traced peak | process peak RSS |",
                  "|---|---:|---|---:|---:|"]
        for label, seconds, peak, all_s in big_lines:
            lines.append(f"| {label} | {seconds:.2f} | {', '.join(f'{s:.2f}' for s in all_s)} | {_mb(peak)} | "
                         f"{_mb(big_runs[0]['maxrss'])} |")
    write_section(SECTION, "\n".join(lines) + "\n")
    print(f"\nwrote {SECTION!r} in docs/benchmarks.md")


if __name__ == "__main__":
    main()
