"""Pre-deployment checks that run the policy itself: ``rlops stress``, ``rlops budget`` and ``rlops plan``.

Thin commands over :mod:`rlops.evaluation.stress`, :mod:`rlops.evaluation.budget` and
:mod:`rlops.evaluation.capacity`; ``rlops.cli.main`` imports this module to register them.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from rlops.cli.common import ComputeBackend, app, console, errors
from rlops.errors import ConfigError, NotFoundError
from rlops.scale.backend import Backend

BASELINE = "baseline"


def _scenario(name: str) -> Any:
    """A catalogued scenario by name, or ``package.module:NAME`` of a ``ScenarioSpec`` in the user's code."""
    from rlops.scenarios.base import ScenarioSpec

    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            spec = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise NotFoundError(f"scenario: {name!r} cannot be imported: {e}") from e
        if not isinstance(spec, ScenarioSpec):
            raise ConfigError(f"scenario: {name!r} is a {type(spec).__name__}, not a ScenarioSpec")
        return spec
    try:
        from rlops.scenarios.catalog import get_scenario
    except ImportError as e:  # pragma: no cover - the catalogue ships with rlops
        raise NotFoundError(f"scenario: the scenario catalogue is not available ({e}); pass module:NAME") from e
    return get_scenario(name)


def _controller(value: str, mode: Any) -> Any:
    """``baseline`` (the scenario's own, returned as ``None``) or a policy folder's controller."""
    from rlops.evaluation.controllers import PolicyFolderController

    if value == BASELINE:
        return None
    folder = Path(value)
    if not (folder / "manifest.json").is_file():
        raise NotFoundError(f"policy: {folder} is not a policy folder (no manifest.json); pass a folder written by "
                            f"save_policy, or '{BASELINE}'")
    return PolicyFolderController(folder, mode)


def _ci(estimate: float, low: float, high: float) -> str:
    return f"{estimate:.4g} [{low:.4g}, {high:.4g}]"


@app.command()
def stress(
    scenario: Annotated[str, typer.Option(help="Scenario name (e.g. hvac) or package.module:SPEC.")],
    policy: Annotated[str, typer.Option(help="Candidate: a policy folder, or 'baseline'.")],
    against: Annotated[str, typer.Option(help="Comparison: a policy folder, or 'baseline' (the scenario's).")]
    = BASELINE,
    variations: Annotated[Path | None, typer.Option(help="Variations file (YAML/JSON); default: the standard "
                                                         "suite.")] = None,
    episodes: Annotated[int | None, typer.Option(min=2, help="Episodes per variation (overrides the file).")] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed (overrides the file).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes, or Ray actors (default: CPU count).")]
    = None,
    backend: ComputeBackend = Backend.LOCAL,
    mode: Annotated[str, typer.Option(help="How policies act: sample (as served) or greedy.")] = "sample",
    out: Annotated[Path | None, typer.Option(help="Write the full report as JSON here.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Run a candidate and a baseline over stressed versions of a scenario and compare them, paired by seed."""
    from rlops.evaluation.controllers import ActMode
    from rlops.evaluation.stress import StressConfig, run_stress

    try:
        act_mode = ActMode(mode)
    except ValueError:
        raise ConfigError(f"mode: must be one of {[m.value for m in ActMode]}, got {mode!r}") from None
    spec = _scenario(scenario)
    candidate = _controller(policy, act_mode)
    baseline = _controller(against, act_mode)
    config = StressConfig.load(variations) if variations is not None else StressConfig.standard()
    overrides = {k: v for k, v in (("episodes", episodes), ("seed", seed)) if v is not None}
    if overrides:
        config = StressConfig.model_validate({**config.model_dump(), **overrides})
    if candidate is None:
        candidate = spec.baseline
    report = run_stress(spec, candidate, baseline, config, workers=workers, progress=progress,
                        candidate_label=policy, baseline_label=against, backend=backend)
    table = Table("variation", "candidate return (95% CI)", "baseline return", "difference (95% CI)",
                  "CVaR cand / base", "violations cand / base",
                  title=f"stress: {escape(policy)} against {escape(against)} on {escape(spec.id)} "
                        f"({config.episodes} episodes each, seed {config.seed})")
    for v in report.variations:
        c, b, d = v.candidate, v.baseline, v.difference
        style = "green" if d.low > 0 else "red" if d.high < 0 else ""
        table.add_row(escape(v.name), _ci(c.mean_return.estimate, c.mean_return.low, c.mean_return.high),
                      f"{b.mean_return.estimate:.4g}", _ci(d.estimate, d.low, d.high),
                      f"{c.cvar:.4g} / {b.cvar:.4g}", f"{c.violation_rate:.2%} / {b.violation_rate:.2%}",
                      style=style)
    console.print(table)
    if spec.kpis:
        kpis = Table("variation", *(f"{k.name} ({k.better.value} is better)" for k in spec.kpis),
                     title="KPIs: candidate / baseline (mean per episode)")
        for v in report.variations:
            kpis.add_row(escape(v.name), *(f"{v.candidate.kpis[k.name]:.4g} / {v.baseline.kpis[k.name]:.4g}"
                                           for k in spec.kpis))
        console.print(kpis)
    if out is not None:
        out.write_text(json.dumps(report.to_dict(), indent=2))
        console.print(f"report written to {escape(str(out))}")


@app.command()
def budget(
    policy: Annotated[Path, typer.Option(help="Policy folder.")],
    limits: Annotated[Path, typer.Option("--budget", help="Budget file (YAML/JSON): p99_ms, batch_p99_ms, "
                                                          "memory_mb, artifact_mb, batch_size.")],
    iterations: Annotated[int, typer.Option(min=10, help="Timed calls per latency.")] = 500,
    out: Annotated[Path | None, typer.Option(help="Write the report as JSON here.")] = None,
) -> None:
    """Measure a policy's latency, memory and size in a clean process and judge them against a budget.

    Exits 1 when any item fails.
    """
    from rlops.evaluation.budget import ResourceBudget, check_budget, measure_resources
    from rlops.evaluation.status import Status

    declared = ResourceBudget.load(limits)
    with console.status(f"measuring {escape(str(policy))} in a separate process"):
        measurement = measure_resources(policy, batch_size=declared.batch_size, iterations=iterations)
    report = check_budget(measurement, declared)
    table = Table("item", "measured", "limit", "status", title=f"resource budget of {escape(str(policy))}")
    colours = {Status.PASS: "green", Status.FAIL: "red", Status.SKIP: "dim"}
    for item in report.items:
        limit = "-" if item.limit is None else f"{item.limit:.4g} {item.unit}"
        table.add_row(item.name.value, f"{item.measured:.4g} {item.unit}", limit,
                      f"[{colours[item.status]}]{item.status.value}[/]")
    console.print(table)
    console.print(f"p50 {measurement.p50_ms:.3g} ms; batch of {measurement.batch_size}: p50 "
                  f"{measurement.batch_p50_ms:.3g} ms; loading the policy added {measurement.policy_rss_mb:,.0f} MiB")
    if out is not None:
        out.write_text(json.dumps(report.to_dict(), indent=2))
    if not report.passed:
        failed = [i.name.value for i in report.items if i.status is Status.FAIL]
        errors.print(f"budget: FAIL ({', '.join(failed)})", highlight=False)
        raise typer.Exit(1)


@app.command()
def plan(
    policy: Annotated[Path, typer.Option(help="Policy folder.")],
    qps: Annotated[float, typer.Option(help="Target load, decisions per second (> 0).")],
    p99_ms: Annotated[float, typer.Option("--p99-ms", help="Target p99 latency, milliseconds (> 0).")],
    batch: Annotated[int | None, typer.Option(min=2, help="Also plan micro-batches of this size.")] = None,
    cores: Annotated[int | None, typer.Option(min=1, help="Cores per machine (to count machines).")] = None,
    memory_mb: Annotated[float | None, typer.Option(help="Memory per machine, MiB.")] = None,
    utilisation: Annotated[float, typer.Option(help="Utilisation ceiling of a process, in (0, 1).")] = 0.7,
    iterations: Annotated[int, typer.Option(min=10, help="Timed calls per latency.")] = 500,
    out: Annotated[Path | None, typer.Option(help="Write the plan(s) and the measurement as JSON here.")] = None,
) -> None:
    """Measure a policy and size a deployment for a target load: processes, cores, memory, and what binds.

    The model (M/M/c queueing at batch 1, a simple bound for micro-batches) is documented in
    rlops.evaluation.capacity and docs/validation.md.
    """
    from rlops.evaluation.budget import measure_resources
    from rlops.evaluation.capacity import CapacityPlan, check_target, plan_capacity

    check_target(qps, p99_ms, utilisation, cores, memory_mb)  # before spending time measuring
    with console.status(f"measuring {escape(str(policy))} in a separate process"):
        measurement = measure_resources(policy, batch_size=batch or 32, iterations=iterations)
    plans = [plan_capacity(measurement, qps, p99_ms, utilisation=utilisation, cores=cores, memory_mb=memory_mb)]
    if batch is not None:
        plans.append(plan_capacity(measurement, qps, p99_ms, utilisation=utilisation, batch=batch, cores=cores,
                                   memory_mb=memory_mb))
    table = Table("", *("one at a time" if p.batch_size == 1 else f"batches of {p.batch_size}" for p in plans),
                  title=f"capacity plan: {qps:,.0f} decisions/s at p99 <= {p99_ms:g} ms")
    rows: list[tuple[str, Callable[[CapacityPlan], str]]] = [
        ("processes", lambda p: f"{p.processes:,}"),
        ("cores", lambda p: f"{p.cores:,}"),
        ("memory", lambda p: f"{p.memory_mb:,.0f} MiB"),
        ("machines", lambda p: "-" if p.machines is None else f"{p.machines:,}"),
        ("decisions/s per process", lambda p: f"{p.process_qps:,.0f}"),
        ("utilisation", lambda p: f"{p.utilisation:.0%}"),
        ("estimated p99", lambda p: f"{p.estimated_p99_ms:.3g} ms"),
        ("binds", lambda p: p.binding.value),
        ("feasible", lambda p: "[green]yes[/]" if p.feasible else "[red]no[/]"),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(p) for p in plans))
    console.print(table)
    console.print(f"measured: mean {measurement.mean_ms:.3g} ms, p99 {measurement.p99_ms:.3g} ms per decision; "
                  f"peak memory {measurement.peak_rss_mb:,.0f} MiB per process", highlight=False)
    for p in plans:
        for note in p.notes:
            console.print(f"- {escape(note)}", highlight=False)
    if out is not None:
        out.write_text(json.dumps({"measurement": measurement.to_dict(), "plans": [p.to_dict() for p in plans]},
                                  indent=2))
