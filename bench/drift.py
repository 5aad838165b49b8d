"""Drift detection: rlops' streaming detectors side by side with river's on the same streams, and batch drift speed.

Streams (seeded, 20,000 observations, change at 10,000, 20 seeds each): a mean shift N(0, 1) -> N(1, 1), a
variance shift N(0, 1) -> N(0, 2^2), a gradual drift whose mean ramps from 0 to 1 over 2,000 observations, and no
drift. Per detector and stream: the detection delay (first detection at or after the change, minus the change;
mean over the seeds that detected), the share of seeds that detected, and false alarms per 10,000 observations
(detections before the change, or anywhere in the no-drift stream). Throughput: observations per second on a
1,000,000-observation stream (river: per-observation ``update`` plus the ``drift_detected`` check, which is how
it is used; rlops: one ``update_many`` call), best of repeats, by the process's CPU time (the machine is shared,
so wall time also counts other jobs) and by wall time.

Matched parameters, river's defaults on both sides: Page-Hinkley ``delta=0.005, threshold=50, alpha=1-1e-4,
min_instances=30``; ADWIN ``delta=0.002, clock=32, max_buckets=5, min_window_length=5, grace_period=10``. river
has no CUSUM (its Page-Hinkley documents itself as the CUSUM chart), so rlops' CUSUM (``k=0.5, h=8``, baseline
from a 100-observation burn-in) is shown alone.

river runs in its own process on the same arrays (saved to .npy): with the project's interpreter when river is
installed there, else in ``.bench-venv-river``, made here on first use.

Batch drift: a reference profile of 200,000 rows x 50 numeric features, then ``batch_drift`` on a live window of
1,000,000 rows x 50 features (half of them shifted), domain classifier included.

Run::

    .venv/bin/python bench/drift.py            # writes its section of docs/benchmarks.md
    .venv/bin/python bench/drift.py --quick    # 5 seeds, smaller throughput and batch runs; prints only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
LENGTH = 20_000
CHANGE = 10_000
STREAMS = ("mean shift", "variance shift", "gradual drift", "no drift")
PH = {"delta": 0.005, "threshold": 50.0, "alpha": 1 - 0.0001, "min_instances": 30}
ADWIN = {"delta": 0.002, "clock": 32, "max_buckets": 5, "min_window_length": 5, "grace_period": 10}
CUSUM = {"k": 0.5, "h": 8.0, "burn_in": 100}
#: Page-Hinkley with a higher threshold, for throughput only: rlops restarts its vectorised test after every alarm,
#: so its speed depends on the alarm rate (about 6.6 per 10,000 at river's default threshold on unit-variance noise).
PH_QUIET = {**PH, "threshold": 200.0}
SECTION = "## Drift detection (bench/drift.py)"


def make_stream(kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=LENGTH)
    if kind == "mean shift":
        x[CHANGE:] += 1.0
    elif kind == "variance shift":
        x[CHANGE:] *= 2.0
    elif kind == "gradual drift":
        x[CHANGE:] += np.minimum(np.arange(LENGTH - CHANGE) / 2000.0, 1.0)
    return x


# ---- river's side: runs in river's interpreter, imports nothing from rlops ---------------------------------------


def river_side(inputs: Path, output: Path) -> None:
    from river import drift

    streams = np.load(inputs / "streams.npy")
    throughput_stream = np.load(inputs / "throughput.npy").tolist()
    makers = {"page_hinkley": lambda: drift.PageHinkley(**PH), "adwin": lambda: drift.ADWIN(**ADWIN),
              "page_hinkley_quiet": lambda: drift.PageHinkley(**PH_QUIET)}
    result: dict[str, Any] = {"detections": {}, "throughput": {}}
    for name in ("page_hinkley", "adwin"):
        found = []
        for row in streams:
            detector = makers[name]()
            hits = []
            for i, value in enumerate(row.tolist()):
                detector.update(value)
                if detector.drift_detected:
                    hits.append(i)
            found.append(hits)
        result["detections"][name] = found
    for name, make in makers.items():
        best = (0.0, 0.0)
        for _ in range(2):
            detector = make()
            wall, cpu = time.perf_counter(), time.process_time()
            for value in throughput_stream:
                detector.update(value)
                if detector.drift_detected:
                    pass
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best = max(best, (len(throughput_stream) / cpu, len(throughput_stream) / wall))
        result["throughput"][name] = best
    import river

    result["version"] = river.__version__
    output.write_text(json.dumps(result))


def river_python() -> str:
    """An interpreter with river: this one if it has river, else ``.bench-venv-river`` (created on first use)."""
    try:
        import river  # noqa: F401

        return sys.executable
    except ImportError:
        pass
    venv = HERE.parent / ".bench-venv-river"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with river (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "river"], check=True)
    return str(python)


# ---- rlops' side ---------------------------------------------------------------------------------------------------


def rlops_detectors() -> dict[str, Any]:
    from rlops.monitoring.drift import ADWIN as Adwin
    from rlops.monitoring.drift import CUSUM as Cusum
    from rlops.monitoring.drift import PageHinkley

    return {"page_hinkley": lambda: PageHinkley(**PH), "adwin": lambda: Adwin(**ADWIN),
            "cusum": lambda: Cusum(**CUSUM), "page_hinkley_quiet": lambda: PageHinkley(**PH_QUIET)}


def summarise(detections: list[list[int]], kinds: list[str]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for kind in STREAMS:
        rows = [d for d, k in zip(detections, kinds, strict=True) if k == kind]
        delays, false_alarms, observed = [], 0, 0
        for hits in rows:
            if kind == "no drift":
                false_alarms += len(hits)
                observed += LENGTH
                continue
            false_alarms += sum(1 for h in hits if h < CHANGE)
            observed += CHANGE
            after = [h for h in hits if h >= CHANGE]
            if after:
                delays.append(after[0] - CHANGE)
        out[kind] = {"delay": float(np.mean(delays)) if delays else float("nan"),
                     "detected": len(delays) / len(rows) if kind != "no drift" else float("nan"),
                     "false_per_10k": false_alarms / observed * 10_000}
    return out


def throughput(make: Any, stream: np.ndarray, repeats: int = 3) -> tuple[float, float]:
    """Best observations per second over ``repeats``, by CPU time and by wall time."""
    best = (0.0, 0.0)
    for _ in range(repeats):
        detector = make()
        wall, cpu = time.perf_counter(), time.process_time()
        detector.update_many(stream)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        best = max(best, (stream.size / cpu, stream.size / wall))
    return best


def batch_timing(live_rows: int, reference_rows: int) -> dict[str, float]:
    from rlops.monitoring.drift import ReferenceProfile, batch_drift
    from rlops.schema import Schema

    width = 50
    schema = Schema.model_validate({"features": [{"name": f"x{i:02d}", "type": "float"} for i in range(width)],
                                    "actions": {"type": "discrete", "names": ["a", "b"]}})
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(reference_rows, width))
    build = time.perf_counter()
    profile = ReferenceProfile.build(schema, reference)
    built = time.perf_counter() - build
    live = rng.normal(size=(live_rows, width))
    live[:, ::2] += 0.2  # half the features shifted by 0.2 standard deviations
    wall, cpu = time.perf_counter(), time.process_time()
    report = batch_drift(profile, live)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall": wall, "cpu": cpu, "build": built, "drifted": len(report.drifted), "live": live_rows,
            "reference": reference_rows,
            "auc": report.multivariate.auc if report.multivariate else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer seeds and rows; print only")
    parser.add_argument("--river-side", nargs=2, metavar=("INPUTS", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.river_side:
        river_side(Path(args.river_side[0]), Path(args.river_side[1]))
        return

    sys.path.insert(0, str(HERE))
    from report import machine, machine_line, write_section

    seeds = 5 if args.quick else 20
    n_throughput = 200_000 if args.quick else 1_000_000
    kinds = [kind for kind in STREAMS for _ in range(seeds)]
    streams = np.stack([make_stream(kind, seed) for kind in STREAMS for seed in range(seeds)])
    throughput_stream = np.random.default_rng(123).normal(size=n_throughput)

    with tempfile.TemporaryDirectory(prefix="rlops-bench-drift-") as tmp:
        folder = Path(tmp)
        np.save(folder / "streams.npy", streams)
        np.save(folder / "throughput.npy", throughput_stream)
        print("river's side...", flush=True)
        subprocess.run([river_python(), __file__, "--river-side", str(folder), str(folder / "river.json")],
                       check=True)
        theirs = json.loads((folder / "river.json").read_text())

    print("rlops' side...", flush=True)
    ours: dict[str, Any] = {"detections": {}, "throughput": {}}
    for name, make in rlops_detectors().items():
        if not name.endswith("_quiet"):
            ours["detections"][name] = [make().update_many(row).tolist() for row in streams]
        ours["throughput"][name] = throughput(make, throughput_stream)
    print("batch drift...", flush=True)
    batch = batch_timing(200_000 if args.quick else 1_000_000, 50_000 if args.quick else 200_000)

    lines = [*quality_table(ours, theirs, kinds), "", *speed_table(ours, theirs), "", *batch_lines(batch)]
    text = "\n".join(lines)
    print(text)
    if args.quick:
        return
    facts = machine()
    header = [SECTION, "", f"Command: `.venv/bin/python bench/drift.py` ({seeds} seeds per stream; river "
              f"{theirs['version']} in its own process on the same arrays; run on {facts['date']}).", "",
              machine_line(facts), "", *[p.replace("``", "`") + "\n" for p in __doc__.split("\n\n")[1:4]]]
    write_section(SECTION, "\n".join(header) + "\n" + text + "\n")
    print(f"wrote {SECTION!r} in docs/benchmarks.md")


def _fmt(value: float, pattern: str) -> str:
    return "-" if value != value else format(value, pattern)  # NaN: not applicable


def quality_table(ours: dict[str, Any], theirs: dict[str, Any], kinds: list[str]) -> list[str]:
    lines = ["| stream | detector | delay rlops | delay river | detected rlops | detected river | "
             "false alarms / 10k rlops | false alarms / 10k river |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    labels = {"page_hinkley": "Page-Hinkley", "adwin": "ADWIN", "cusum": "CUSUM"}
    for name, label in labels.items():
        mine = summarise(ours["detections"][name], kinds)
        other = summarise(theirs["detections"][name], kinds) if name in theirs["detections"] else None
        for kind in STREAMS:
            a = mine[kind]
            b = other[kind] if other else {"delay": float("nan"), "detected": float("nan"),
                                           "false_per_10k": float("nan")}
            lines.append(f"| {kind} | {label} | {_fmt(a['delay'], '.0f')} | {_fmt(b['delay'], '.0f')} | "
                         f"{_fmt(a['detected'], '.0%')} | {_fmt(b['detected'], '.0%')} | "
                         f"{_fmt(a['false_per_10k'], '.2f')} | {_fmt(b['false_per_10k'], '.2f')} |")
    return lines


def speed_table(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    lines = ["| detector | rlops obs/s (CPU) | river obs/s (CPU) | rlops / river | rlops obs/s (wall) | "
             "river obs/s (wall) |", "|---|---:|---:|---:|---:|---:|"]
    labels = (("page_hinkley", "Page-Hinkley"), ("page_hinkley_quiet", "Page-Hinkley, threshold 200"),
              ("adwin", "ADWIN"), ("cusum", "CUSUM"))
    for name, label in labels:
        cpu, wall = ours["throughput"][name]
        if name in theirs["throughput"]:
            other_cpu, other_wall = theirs["throughput"][name]
            lines.append(f"| {label} | {cpu:,.0f} | {other_cpu:,.0f} | {cpu / other_cpu:.1f}x | {wall:,.0f} | "
                         f"{other_wall:,.0f} |")
        else:
            lines.append(f"| {label} | {cpu:,.0f} | - | - | {wall:,.0f} | - |")
    return lines


def batch_lines(batch: dict[str, float]) -> list[str]:
    return [f"Batch drift, {batch['live']:,.0f} live rows x 50 features against a {batch['reference']:,.0f}-row "
            f"profile (PSI, KS, Wasserstein, "
            f"Jensen-Shannon per feature, plus the logistic domain classifier on 2,000 + 2,000 rows): "
            f"**{batch['wall']:.2f} s** wall, {batch['cpu']:.2f} s CPU (goal < 5 s); building the profile took "
            f"{batch['build']:.2f} s. Features flagged: {batch['drifted']:.0f} of 50 (25 shifted by 0.2 sd); "
            f"domain AUC {batch['auc']:.3f}."]


if __name__ == "__main__":
    main()
