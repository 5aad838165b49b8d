"""Sequential guardrails by simulation: false rollbacks of A/A canaries, power and time to detection.

Every run is one canary: decisions arrive in batches of 1,000, each randomised to the canary with probability
``share``, each with a reward drawn from its arm's distribution, and :class:`rlops.rollout.GuardrailMonitor` judges
after every batch until it says ROLLBACK or PROMOTE. Per scenario, ``runs`` A/A canaries (both arms production's
distribution) count false rollbacks, and ``runs`` degraded canaries (5% lower mean reward) count detections and
the decisions each took.

The yardstick is the fixed-horizon test with the same error rates: one look, after the sample size
:func:`rlops.rollout.fixed_horizon_samples` gives for a two-sided level-alpha z-test (alpha/2 on the rollback side)
with 95% power. The monitor is planned from it: ``tune_at`` = that sample per arm of an even split (where the
sequence is narrowest), ``max_samples`` = 3 times the canary arm's share of it.

Run::

    .venv/bin/python bench/guardrails.py           # 500 + 500 runs per scenario, writes docs/benchmarks.md
    .venv/bin/python bench/guardrails.py --quick   # 100 + 100 runs, does not touch the docs
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.stats import beta

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import DOC, REPO, machine, machine_line, write_section
from rlops.rollout import Decision, GuardrailConfig, GuardrailMonitor, fixed_horizon_samples

SECTION = "## Sequential guardrails (bench/guardrails.py)"
ALPHA = 0.05
POWER = 0.95
BATCH = 1_000
#: Goals of issue 6.
MAX_FALSE_ROLLBACK = 0.02
MIN_DETECTION = 0.95
MAX_RATIO = 2.0


@dataclass(frozen=True)
class Scenario:
    """Production's and the degraded canary's reward distribution, and the canary's share of traffic."""

    name: str
    kind: str  # "bernoulli" or "normal" (unit variance)
    production: float
    canary: float
    share: float

    def variance(self, mean: float) -> float:
        return mean * (1.0 - mean) if self.kind == "bernoulli" else 1.0

    def draw(self, rng: np.random.Generator, means: np.ndarray) -> np.ndarray:
        if self.kind == "bernoulli":
            return (rng.random(len(means)) < means).astype(np.float64)
        return rng.normal(means, 1.0)

    def fixed_horizon(self) -> int:
        return fixed_horizon_samples(self.canary - self.production, self.variance(self.canary),
                                     self.variance(self.production), alpha=ALPHA, power=POWER,
                                     canary_share=self.share)

    def config(self) -> GuardrailConfig:
        even = fixed_horizon_samples(self.canary - self.production, self.variance(self.canary),
                                     self.variance(self.production), alpha=ALPHA, power=POWER)
        canary_arm = round(min(self.share, 1.0 - self.share) * self.fixed_horizon())
        return GuardrailConfig(alpha=ALPHA, min_samples=100, tune_at=even // 2, max_samples=3 * canary_arm)


SCENARIOS = (
    Scenario("Bernoulli reward 0.20 vs 0.19, 50% canary", "bernoulli", 0.20, 0.19, 0.5),
    Scenario("unit-variance normal reward 1.00 vs 0.95, 50% canary", "normal", 1.00, 0.95, 0.5),
    Scenario("Bernoulli reward 0.20 vs 0.19, 10% canary", "bernoulli", 0.20, 0.19, 0.1),
)


def run_one(scenario: Scenario, canary_mean: float, config: GuardrailConfig,
            rng: np.random.Generator) -> tuple[Decision, int]:
    """One canary until the monitor decides; returns the decision and the decisions (both arms) it took."""
    monitor = GuardrailMonitor(config)
    means = np.array([scenario.production, canary_mean])
    seen = 0
    while True:
        arms = (rng.random(BATCH) < scenario.share).astype(np.int64)
        result = monitor.update(arms, scenario.draw(rng, means[arms]))
        seen += BATCH
        if result.decided:
            return result.decision, seen


@dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    runs: int
    false_rollbacks: int
    detections: int
    median_to_detection: float
    p90_to_detection: float
    within_fixed: int  # degraded canaries rolled back within the fixed-horizon sample
    median_aa_decisions: float
    fixed_horizon: int
    seconds: float

    @property
    def false_rate(self) -> float:
        return self.false_rollbacks / self.runs

    @property
    def false_upper(self) -> float:
        """One-sided 95% Clopper-Pearson upper bound of the false-rollback rate."""
        return 1.0 if self.false_rollbacks == self.runs else float(beta.ppf(0.95, self.false_rollbacks + 1,
                                                                            self.runs - self.false_rollbacks))

    @property
    def detection_rate(self) -> float:
        return self.detections / self.runs

    @property
    def ratio(self) -> float:
        return self.median_to_detection / self.fixed_horizon

    def met(self) -> tuple[bool, bool, bool]:
        return (self.false_rate <= MAX_FALSE_ROLLBACK, self.detection_rate >= MIN_DETECTION,
                self.ratio <= MAX_RATIO)


def simulate(scenario: Scenario, runs: int, seed: int) -> Outcome:
    start = time.perf_counter()
    config = scenario.config()
    aa_seeds, ab_seeds = np.random.SeedSequence([seed, 0]).spawn(runs), np.random.SeedSequence([seed, 1]).spawn(runs)
    aa = [run_one(scenario, scenario.production, config, np.random.default_rng(s)) for s in aa_seeds]
    ab = [run_one(scenario, scenario.canary, config, np.random.default_rng(s)) for s in ab_seeds]
    detected = [n for d, n in ab if d is Decision.ROLLBACK]
    fixed = scenario.fixed_horizon()
    return Outcome(scenario, runs, sum(d is Decision.ROLLBACK for d, _ in aa), len(detected),
                   statistics.median(detected) if detected else float("nan"),
                   float(np.percentile(detected, 90)) if detected else float("nan"), sum(n <= fixed for n in detected),
                   statistics.median(n for _, n in aa), fixed, time.perf_counter() - start)


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def markdown(outcomes: list[Outcome], facts: dict[str, str], command: str, seconds: float) -> str:
    runs = outcomes[0].runs
    lines = [
        SECTION,
        "",
        f"Command: `{command}` ({runs} A/A and {runs} degraded canaries per scenario, seeded; {seconds:.0f} s; run "
        f"on {facts['date']}).",
        "",
        machine_line(facts),
        "",
        f"Goals (issue 6): A/A false rollbacks <= {MAX_FALSE_ROLLBACK:.0%}; a canary with a 5% lower mean reward "
        f"rolled back in >= {MIN_DETECTION:.0%} of runs; median decisions to detection within {MAX_RATIO:g}x the "
        f"fixed-horizon sample for the same error rates (two-sided alpha = {ALPHA}, i.e. {ALPHA / 2:g} on the "
        f"rollback side, power {POWER:.0%}). Monitor: alpha {ALPHA}, min 100 per arm, checked every {BATCH:,} "
        "decisions, `tune_at` = the even-split fixed-horizon sample per arm, `max_samples` = 3x the canary arm's "
        "fixed-horizon sample.",
        "",
        "| scenario | A/A false rollbacks | rate (95% upper) | detected | median decisions to detection | "
        "fixed horizon | ratio | p90 to detection | detected within fixed horizon | A/A median decisions | "
        "goals met (false / power / time) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for o in outcomes:
        false_ok, power_ok, ratio_ok = o.met()
        lines.append(f"| {o.scenario.name} | {o.false_rollbacks}/{o.runs} | {o.false_rate:.1%} ({o.false_upper:.1%}) "
                     f"| {o.detection_rate:.1%} | {o.median_to_detection:,.0f} | {o.fixed_horizon:,} | "
                     f"{o.ratio:.2f}x | {o.p90_to_detection:,.0f} | {o.within_fixed / o.runs:.1%} | "
                     f"{o.median_aa_decisions:,.0f} | {_yes(false_ok)} / {_yes(power_ok)} / "
                     f"{_yes(ratio_ok)} |")
    return "\n".join(lines) + "\n"


def render(outcomes: list[Outcome]) -> Table:
    table = Table(title="Sequential guardrails: A/A false rollbacks, detection of a 5% lower reward")
    for name in ("scenario", "false rollbacks", "detected", "median to detection", "fixed horizon", "ratio", "s"):
        table.add_column(name, justify="left" if name == "scenario" else "right")
    for o in outcomes:
        table.add_row(o.scenario.name, f"{o.false_rollbacks}/{o.runs} ({o.false_rate:.1%})", f"{o.detection_rate:.1%}",
                      f"{o.median_to_detection:,.0f}", f"{o.fixed_horizon:,}", f"{o.ratio:.2f}x", f"{o.seconds:.0f}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 runs per arm of the study; do not write the docs")
    parser.add_argument("--runs", type=int, default=None, help="canaries per scenario and truth (default 500)")
    parser.add_argument("--seed", type=int, default=6, help="seed of every run's random stream (default 6)")
    args = parser.parse_args()
    runs = args.runs if args.runs is not None else (100 if args.quick else 500)
    console = Console()
    start = time.perf_counter()
    outcomes = []
    for index, scenario in enumerate(SCENARIOS):
        outcome = simulate(scenario, runs, args.seed * 100 + index)
        outcomes.append(outcome)
        console.print(f"{scenario.name}: {outcome.false_rollbacks}/{runs} false rollbacks, "
                      f"{outcome.detection_rate:.1%} detected, median {outcome.median_to_detection:,.0f} decisions vs "
                      f"{outcome.fixed_horizon:,} fixed ({outcome.seconds:.0f} s)")
    console.print(render(outcomes))
    if not args.quick:
        command = ".venv/bin/python bench/guardrails.py" + (f" --runs {args.runs}" if args.runs else "")
        command += f" --seed {args.seed}" if args.seed != 6 else ""
        write_section(SECTION, markdown(outcomes, machine(), command, time.perf_counter() - start))
        console.print(f"wrote {DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
