"""Case studies: a trained policy against each reference scenario's standard baseline, paired by seed.

For each scenario a policy is trained once (seed 0) within a fixed step budget that fits a 2-CPU machine in under
ten minutes: Stable-Baselines3 with the scenario's recipe (``rlops.training.RECIPES``), or LinUCB learning online
for the recommendation bandit. Policy and baseline then play the same held-out seeds (20000, 20001, ...; the recipes
were chosen looking at other seeds); a seed fixes every exogenous draw (weather, failures, demand, returns, meals,
users), so the two face the same luck and each KPI's difference is paired by seed. The table gives, per KPI, the
mean difference policy - baseline with a 95% Student-t interval over seeds, the relative change (difference /
baseline mean) and the improvement industry case studies claim for that kind of system, next to a verdict read off
the interval.

Run::

    .venv/bin/python bench/case_studies.py                 # full budgets, 50 seeds; writes docs/benchmarks.md
    .venv/bin/python bench/case_studies.py --quick         # tiny budgets, 5 seeds; does not touch the docs
    .venv/bin/python bench/case_studies.py --only glucose  # one scenario; prints, does not touch the docs
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, machine_line, write_section
from rlops.evaluation.controllers import ActMode, PolicyController, observation_to_context, schema_for_env
from rlops.policies import LearningBatch, LinUCB, PolicyInput
from rlops.scenarios import SCENARIOS, Better, Controller, EpisodeResult, ScenarioSpec, evaluate_controller
from rlops.training import RECIPES, TrainConfig, train

SECTION = "## Case studies (bench/case_studies.py)"
EVAL_SEED0 = 20_000  # recipes were chosen looking at seeds 1000-1029 and 10000-10049; these are fresh
#: Relative improvements industry case studies claim, by scenario and KPI (sign: the direction claimed).
CLAIMS: dict[str, dict[str, float]] = {
    "hvac": {"energy_kwh": -0.30, "energy_cost": -0.25},
    "manufacturing": {"throughput": +0.25, "cost": -0.15},
    "portfolio": {"return": +0.20, "volatility": -0.15},
    "glucose": {"mean_glucose": -0.30},
    "recommendation": {},
}
CLAIM_SOURCES = {
    "hvac": "building: -30% energy, -25% cost",
    "manufacturing": "manufacturing: +25% productivity, -15% cost",
    "portfolio": "portfolio: +20% returns, -15% risk",
    "glucose": "diabetes: -30% blood sugar",
    "recommendation": "none given",
}
LINUCB_STEPS = 20_000
MAX_TRAIN_SECONDS = 600.0


@dataclass(frozen=True)
class Trained:
    """A trained policy and how it was trained."""

    controller: Controller
    method: str
    steps: int
    seconds: float
    stopped_by_clock: bool = False


@dataclass(frozen=True)
class Row:
    """One KPI of one comparison."""

    scenario: str
    baseline_name: str
    kpi: str
    unit: str
    better: Better
    baseline: float
    policy: float
    difference: float
    low: float
    high: float
    claim: float | None

    @property
    def relative(self) -> float:
        return self.difference / abs(self.baseline) if self.baseline else math.nan

    @property
    def verdict(self) -> str:
        """Read off the interval: better or worse only if it excludes zero."""
        if not (self.low > 0 or self.high < 0):
            return "no significant difference"
        sign = 1.0 if self.better is Better.HIGHER else -1.0
        if sign * self.difference < 0:
            return "worse than baseline"
        if self.claim is not None and not math.isnan(self.relative):
            return "meets the claim" if abs(self.relative) >= abs(self.claim) else "better, short of the claim"
        return "better"


def paired(policy: Sequence[float], baseline: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``policy - baseline`` and its Student-t interval (pairs by position)."""
    d = np.asarray(policy, dtype=float) - np.asarray(baseline, dtype=float)
    mean = float(d.mean())
    if len(d) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
    return mean, mean - half, mean + half


def train_linucb(spec: ScenarioSpec, steps: int, seed: int = 0, progress: Progress | None = None) -> Trained:
    """LinUCB (alpha 1) learning online from the environment's reward, one user at a time, for ``steps`` users."""
    env = spec.make()
    schema = schema_for_env(env, "recommendation")
    policy = LinUCB(schema, alpha=1.0)
    rng = np.random.default_rng(seed)
    task = progress.add_task("training recommendation (LinUCB)", total=steps) if progress else None
    start = time.perf_counter()
    done, episode = 0, 0
    while done < steps:
        obs, _ = env.reset(seed=seed * 1_000_003 + episode)
        episode += 1
        finished = False
        while not finished and done < steps:
            batch = PolicyInput.from_contexts(schema, [observation_to_context(schema, obs)])
            result = policy.act(batch, rng)
            obs, reward, terminated, truncated, _ = env.step(int(result.action[0]))
            policy.update(LearningBatch(batch, result.action, np.array([float(reward)]), result.propensity))
            finished = terminated or truncated
            done += 1
        if progress is not None and task is not None:
            progress.update(task, completed=done)
    seconds = time.perf_counter() - start
    policy.alpha = 0.0  # evaluate the learned model, not its exploration
    return Trained(PolicyController(policy, ActMode.GREEDY), "LinUCB (online, alpha=1; greedy at test)", done,
                   seconds)


def train_policy(name: str, quick: bool, console: Console) -> Trained:
    spec = SCENARIOS[name]
    if name == "recommendation":
        with Progress(console=console, transient=True) as progress:
            return train_linucb(spec, 1_000 if quick else LINUCB_STEPS, progress=progress)
    config: TrainConfig = replace(RECIPES[name], seed=0, max_seconds=MAX_TRAIN_SECONDS, torch_threads=1)
    if quick:
        small = {"n_steps": 256, "batch_size": 64} if config.algo.value in ("PPO", "A2C") else {"learning_starts": 64}
        config = replace(config, steps=512, hyperparams={**config.hyperparams, **small})
    agent = train(name, config, console=console)
    if agent.stats is None:
        raise RuntimeError("train() returned an agent without stats")
    stats_ = agent.stats
    settings = {k: v for k, v in config.hyperparams.items() if k != "policy_kwargs"}
    settings.update(config.hyperparams.get("policy_kwargs", {}))
    settings.update({f"env {k}": v for k, v in config.env_options.items()})
    method = config.algo.value + " (" + ", ".join(f"{k}={v}" for k, v in settings.items())
    method += ", rewards normalised)" if config.normalize_reward else ")"
    return Trained(agent, method, stats_.steps, stats_.seconds, stats_.stopped_by_clock)


def compare(name: str, trained: Trained, seeds: Sequence[int]) -> list[Row]:
    spec = SCENARIOS[name]
    policy = evaluate_controller(spec, trained.controller, seeds)
    baselines: dict[str, Callable[..., Controller]] = {"standard": spec.baseline, **spec.extra.get("baselines", {})}
    rows = []
    for label, factory in baselines.items():
        base = evaluate_controller(spec, factory, seeds)
        rows.extend(_rows(name, label, spec, policy, base))
    return rows


def _rows(name: str, label: str, spec: ScenarioSpec, policy: list[EpisodeResult], base: list[EpisodeResult]
          ) -> list[Row]:
    out = []
    for kpi in spec.kpis:
        p = [r.kpis[kpi.name] for r in policy]
        b = [r.kpis[kpi.name] for r in base]
        diff, low, high = paired(p, b)
        out.append(Row(name, label, kpi.name, kpi.unit, kpi.better, float(np.mean(b)), float(np.mean(p)), diff, low,
                       high, CLAIMS[name].get(kpi.name) if label == "standard" else None))
    return out


def _fmt(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    return f"{x:,.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:+.1%}"


def markdown(rows: list[Row], trained: dict[str, Trained], seeds: Sequence[int], facts: dict[str, str],
             command: str) -> str:
    lines = [
        SECTION, "",
        f"Command: `{command}` (run on {facts['date']}).", "",
        machine_line(facts), "",
        f"Each policy is trained once (seed 0) and then plays the same {len(seeds)} held-out seeds "
        f"({seeds[0]}-{seeds[-1]}) as the baseline. A seed fixes every exogenous draw (weather, failures, demand, "
        "returns, meals, users, clicks), so each KPI's difference is paired by seed: the mean of policy - baseline "
        "with a 95% Student-t interval over seeds; relative = difference / baseline mean. The verdict reads the "
        "interval: an improvement only if it excludes zero on the better side. Claims are what industry case "
        "studies report for such systems, not measurements of ours.", "",
        "| scenario | training | steps | wall time |", "|---|---|---:|---:|",
    ]
    for name, t in trained.items():
        clock = " (stopped by the 10-minute clock)" if t.stopped_by_clock else ""
        lines.append(f"| {name} | {t.method} | {t.steps:,} | {t.seconds:.0f} s{clock} |")
    lines += ["", "| scenario | against | KPI | better | baseline | policy | difference [95% CI] | relative | "
              "claimed | verdict |", "|---|---|---|---|---:|---:|---|---:|---:|---|"]
    for r in rows:
        unit = f" {r.unit}" if r.unit else ""
        claim = f"{r.claim:+.0%}" if r.claim is not None else "—"
        lines.append(f"| {r.scenario} | {r.baseline_name} | {r.kpi} | {r.better.value} | {_fmt(r.baseline)}{unit} | "
                     f"{_fmt(r.policy)}{unit} | {_fmt(r.difference)} [{_fmt(r.low)}, {_fmt(r.high)}] | "
                     f"{_pct(r.relative)} | {claim} | {r.verdict} |")
    lines += ["", "Claimed improvements: " + "; ".join(CLAIM_SOURCES[n] for n in trained if n in CLAIM_SOURCES)
              + ".", ""]
    return "\n".join(lines)


def console_table(rows: list[Row]) -> Table:
    table = Table(title="policy vs baseline (paired by seed)")
    for col in ("scenario", "against", "KPI", "baseline", "policy", "difference [95% CI]", "relative", "claimed",
                "verdict"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.scenario, r.baseline_name, r.kpi, _fmt(r.baseline), _fmt(r.policy),
                      f"{_fmt(r.difference)} [{_fmt(r.low)}, {_fmt(r.high)}]", _pct(r.relative),
                      f"{r.claim:+.0%}" if r.claim is not None else "—", r.verdict)
    return table


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets and 5 seeds; do not write the docs")
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append",
                        help="run only this scenario (repeatable); does not write the docs")
    parser.add_argument("--seeds", type=int, default=None, help="held-out seeds per scenario (default 50, quick 5)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    console = Console(stderr=True)
    names = args.only or list(SCENARIOS)
    n_seeds = args.seeds or (5 if args.quick else 50)
    if not args.quick and n_seeds < 30:
        parser.error("--seeds: a full run needs at least 30 held-out seeds")
    seeds = list(range(EVAL_SEED0, EVAL_SEED0 + n_seeds))
    rows: list[Row] = []
    trained: dict[str, Trained] = {}
    for name in names:
        console.rule(name)
        trained[name] = train_policy(name, args.quick, console)
        console.print(f"{name}: trained {trained[name].steps:,} steps in {trained[name].seconds:.0f} s; "
                      f"evaluating on {n_seeds} seeds")
        rows.extend(compare(name, trained[name], seeds))
    Console(width=180).print(console_table(rows))
    if args.quick or args.only:
        console.print("quick or partial run: docs/benchmarks.md not touched")
        return
    extra = f" --seeds {n_seeds}" if args.seeds else ""
    write_section(SECTION, markdown(rows, trained, seeds, machine(), f".venv/bin/python bench/case_studies.py{extra}"))
    console.print(f"wrote {SECTION!r} to docs/benchmarks.md")


if __name__ == "__main__":
    main()
