"""``rlops validate``: the pre-deployment checklist on one candidate policy, with gates and a report."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rlops.cli.common import ComputeBackend, app, console
from rlops.scale.backend import Backend

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


@app.command()
def validate(
    policy: Annotated[Path, typer.Option("--policy", help="The candidate's policy folder.")],
    events: Annotated[Path | None, typer.Option("--events", help="Logged interactions for off-policy evaluation: a "
                                                                 "Parquet file or a home folder.")] = None,
    deployment: Annotated[str | None, typer.Option(help="Deployment to read when --events is a home folder.")] = None,
    scenario: Annotated[str | None, typer.Option("--scenario", help="Scenario for the stress suite (e.g. hvac).")]
    = None,
    baseline: Annotated[Path | None, typer.Option("--baseline", help="Policy folder to stress against (default: "
                                                                     "the scenario's baseline controller).")] = None,
    gates: Annotated[Path | None, typer.Option("--gates", help="Gates file (YAML); default: the built-in gates "
                                                               "(docs/validation.md).")] = None,
    variations: Annotated[Path | None, typer.Option("--variations", help="Stress-suite config (YAML); default: "
                                                                         "the standard variations.")] = None,
    budget: Annotated[Path | None, typer.Option("--budget", help="Resource budget (YAML).")] = None,
    measure: Annotated[bool, typer.Option("--measure/--no-measure", help="Measure latency and memory.")] = True,
    workers: Annotated[int | None, typer.Option(min=1, help="Processes (or Ray actors) for the stress suite "
                                                            "(default: CPUs).")]
    = None,
    backend: ComputeBackend = Backend.LOCAL,
    reward_bounds: Annotated[tuple[float, float] | None, typer.Option(
        "--reward-bounds", help="LOW HIGH: every logged reward must lie in this range (default: the deployment's "
                                "reward-spec bounds); enables a high-confidence lower bound.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for everything random.")] = 0,
    out: Annotated[Path, typer.Option("--out", help="Folder for report.json and report.html.")] = Path("validation"),
) -> None:
    """Off-policy evaluation on logged data, the scenario stress suite and a resource check, judged by gates.
    Writes report.json and a self-contained report.html; exits 1 when a gate fails."""
    from rlops.evaluation.budget import ResourceBudget
    from rlops.evaluation.gates import GatesFile
    from rlops.evaluation.report import write_report
    from rlops.evaluation.status import Status
    from rlops.evaluation.stress import StressConfig
    from rlops.evaluation.validate import DEFAULT_GATES, ValidateOptions
    from rlops.evaluation.validate import validate as run

    if events is None and scenario is None and not measure:
        raise typer.BadParameter("nothing to validate: give --events, --scenario, or leave --measure on")
    options = ValidateOptions(
        policy=policy, events=events, deployment=deployment, scenario=scenario, baseline=baseline,
        stress=StressConfig.load(variations) if variations else None,
        gates=GatesFile.load(gates) if gates else DEFAULT_GATES,
        budget=ResourceBudget.load(budget) if budget else None, measure=measure, workers=workers,
        backend=backend, seed=seed,
        reward_bounds=reward_bounds,
        command=shlex.join(["rlops", *sys.argv[1:]]) if sys.argv[0].endswith("rlops") else None)
    with console.status("validating") as status:
        result = run(options, progress=lambda text: status.update(escape(text)))
    _print(result.results)
    json_path, html_path = write_report(result.results, out)
    console.print(f"report: {escape(str(html_path))} (numbers in {escape(str(json_path))})")
    verdict = result.status
    console.print(f"[{_STYLE[verdict.value]}]{verdict.value.upper()}[/]")
    if verdict is Status.FAIL:
        raise typer.Exit(1)


def _print(results: dict[str, object]) -> None:
    ope = results.get("ope")
    if isinstance(ope, dict):
        table = Table("estimator", "value", "95% interval", "ESS", "warnings",
                      title=f"off-policy evaluation on {ope['rows']:,} logged decisions "
                            f"(logging policy: {ope['logging']['value']:.4f})")
        for name, e in ope["estimates"].items():
            table.add_row(name, f"{e['value']:.4f}", f"[{e['interval']['low']:.4f}, {e['interval']['high']:.4f}]",
                          f"{e['ess']:,.0f}" if e["ess"] == e["ess"] else "–", ", ".join(e["warnings"]) or "")
        console.print(table)
    stress = results.get("stress")
    if isinstance(stress, dict):
        table = Table("variation", "candidate", "baseline", "difference [95% CI]", "CVaR10 cand./base.",
                      title=f"stress suite on {escape(str(stress['scenario']))}")
        for name, v in stress["variations"].items():
            d = v["difference"]
            table.add_row(escape(name), f"{v['candidate']['mean_return']['estimate']:.4g}",
                          f"{v['baseline']['mean_return']['estimate']:.4g}",
                          f"{d['estimate']:+.4g} [{d['low']:.4g}, {d['high']:.4g}]",
                          f"{v['candidate']['cvar']:.4g} / {v['baseline']['cvar']:.4g}")
        console.print(table)
    budget = results.get("budget")
    if isinstance(budget, dict):
        m = budget["measurement"]
        console.print(f"act latency p50 {m['p50_ms']:.3f} ms, p99 {m['p99_ms']:.3f} ms at batch 1; "
                      f"p99 {m['batch_p99_ms']:.3f} ms at batch {m['batch_size']}; peak memory "
                      f"{m['peak_rss_mb']:.0f} MiB; artifact {m['artifact_mb']:.2f} MiB")
    table = Table("gate", "status", "the numbers", title="gates")
    for g in results.get("gates", []):  # type: ignore[attr-defined]
        table.add_row(escape(g["gate"]["name"]), f"[{_STYLE[g['status']]}]{g['status'].upper()}[/]",
                      escape(g["reason"]))
    console.print(table)
