"""Global explanations: partial dependence + ICE for every feature, permutation importance, the HTML section.

A linear scorer (5 actions) over 10 features (8 floats, a 6-way categorical, an int: 15 encoded columns), 1,000
rows, 20 grid values, 100 ICE rows, 5 shuffles per feature. Best of the repeats, wall time.

Run::

    .venv/bin/python bench/explain_global.py            # prints the timings, writes docs/benchmarks.md
    .venv/bin/python bench/explain_global.py --rows 10000 --quick   # prints only
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, machine_line, write_section
from rlops.explain.dependence import partial_dependence
from rlops.explain.global_explanation import explain_policy_globally
from rlops.explain.importance import feature_importance
from rlops.explain.plots import pdp_svg
from rlops.schema import Schema


def best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--grid", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="print only; do not touch docs/benchmarks.md")
    args = parser.parse_args()

    features = [{"name": f"f{i}", "type": "float"} for i in range(8)]
    features += [{"name": "cat", "type": "categorical", "vocabulary": [f"v{i}" for i in range(6)]},
                 {"name": "k", "type": "int"}]
    actions = [f"a{i}" for i in range(5)]
    schema = Schema.model_validate({"features": features, "actions": {"type": "discrete", "names": actions}})
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.rows, schema.width))
    x[:, 8:14] = np.eye(6)[rng.integers(0, 6, args.rows)]
    x[:, 14] = rng.integers(0, 100, args.rows)
    w, c = rng.normal(size=(len(actions), schema.width)), rng.normal(size=len(actions))

    def score(m: np.ndarray) -> np.ndarray:
        return m @ w.T + c

    names = [f.name for f in schema.features]
    pds = [partial_dependence(score, actions, schema, x, n, n_grid=args.grid) for n in names]
    timings = {
        f"partial_dependence, all {len(names)} features": best(
            lambda: [partial_dependence(score, actions, schema, x, n, n_grid=args.grid) for n in names], args.repeats),
        "feature_importance (5 shuffles)": best(
            lambda: feature_importance(score, actions, schema, x, n_repeats=5), args.repeats),
        f"pdp_svg, all {len(names)} features": best(lambda: [pdp_svg(p) for p in pds], args.repeats),
        "explain_policy_globally(top_k=4).to_html()": best(
            lambda: explain_policy_globally(score, actions, schema, x, top_k=4, n_grid=args.grid,
                                            sample=None).to_html(), args.repeats),
    }
    print(f"{args.rows:,} rows x {args.grid} grid values x {len(names)} features, {len(actions)} actions; "
          f"{platform.processor() or platform.machine()}, numpy {np.__version__}")
    for name, seconds in timings.items():
        print(f"  {name:<45} {seconds * 1000:8.1f} ms")
    if args.quick:
        return
    section = "## Global explanations (bench/explain_global.py)"
    write_section(section, "\n".join([
        section, "",
        f"Command: `.venv/bin/python bench/explain_global.py --rows {args.rows} --grid {args.grid} --repeats "
        f"{args.repeats}`. {machine_line(machine())}", "",
        f"A linear scorer, {len(actions)} actions, {len(names)} features ({schema.width} encoded columns), "
        f"{args.rows:,} rows, {args.grid} grid values; best of {args.repeats}, wall time. No peer is installed "
        "here (no SHAP, no plotting library), so there is no ratio.", "",
        "| step | ms |", "|---|---:|",
        *[f"| {name} | {seconds * 1000:.1f} |" for name, seconds in timings.items()],
    ]))


if __name__ == "__main__":
    main()
