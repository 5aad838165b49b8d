"""``rlops demo``: the whole loop on built-in scenarios, on a fresh home folder."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rlops.cli.common import HomeOption, app, console

if TYPE_CHECKING:
    from rlops.explain import DecisionExplanation
from rlops.cli.common import home_folder as _home

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim", "promote": "green",
          "continue": "yellow", "rollback": "bold red", "alert": "bold red", "warn_": "yellow", "none": "dim"}


@app.command()
def demo(
    home: HomeOption = None,
    fast: Annotated[bool, typer.Option("--fast", help="2,000 decisions per policy instead of 10,000.")] = False,
    decisions: Annotated[int | None, typer.Option(help="Decisions per policy (overrides --fast).", min=100)] = None,
    seed: Annotated[int, typer.Option(help="Seed for the synthetic users and their clicks.")] = 0,
    lifecycle: Annotated[bool, typer.Option("--lifecycle/--no-lifecycle",
                                            help="Run the HVAC lifecycle part too.")] = True,
    scale: Annotated[bool, typer.Option("--scale/--no-scale", help="Run the scale-out part (Ray) too.")] = True,
) -> None:
    """The whole loop, in four parts, on a fresh home folder.

    1. A contextual bandit over HTTP: the real service starts on a free loopback port, simulated applications get
    decisions from a uniform-random logging policy and report outcomes; then an online LinUCB policy serves and
    learns. A table compares both with the optimum, next to the HTTP throughput and latency; then the learned policy
    is validated against the logging policy from the logged data (off-policy evaluation) and the gate table shown.

    2. The closed loop on the bandit: retrain from the logging policy's logs, validate, register, shadow and canary
    it over HTTP until the server's guardrail promotes it; then a deliberately broken canary, rolled back by the
    server on its own.

    3. The HVAC lifecycle: train, validate with gates, register, serve with the thermostat in production and the
    policy as a sticky canary, a thermostat holdout, a weather shift, the drift alert, retraining, shadow, canary
    and promotion or rollback, with summary tables, an HTML report and the dashboard's URL.

    4. Scale-out: the HVAC stress suite on local processes and on a private Ray instance (the same numbers), and
    the bandit deployment served by two Ray Serve replicas, every answered decision in the log.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from rlops import demo as demo_module

    n = decisions or (2_000 if fast else 10_000)
    root = _home(home)
    with Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        tasks: dict[str, TaskID] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=total)
            progress.update(tasks[phase], completed=done)

        result = demo_module.run(root.root, n=n, seed=seed, progress=update)
    table = Table(title=f"rlops demo: {n:,} synthetic users per policy",
                  caption="rewards: joined rewards; observed: mean click; expected: mean click probability of the "
                          "actions chosen (known model); last 25%: the same over the last quarter")
    for column in ("deployment", "policy", "decisions", "rewards", "observed", "expected", "last 25%", "of best"):
        table.add_column(column, justify="right" if column not in ("deployment", "policy") else "left")
    for p in result.policies:
        table.add_row(p.deployment, p.policy, f"{p.decisions:,}", f"{p.joined:,}", f"{p.mean_reward:.4f}",
                      f"{p.expected_reward:.4f}", f"{p.last_quarter_expected:.4f}",
                      f"{p.last_quarter_expected / result.optimum:.1%}")
    table.add_row("optimum", "best per user", "", "", "", f"{result.optimum:.4f}",
                  f"{result.optimum:.4f}", "100.0%", style="dim")
    console.print(table)
    h = result.http
    console.print(f"Over HTTP ({escape(h.url)}, {h.clients} client threads, durable logging): {h.decisions:,} "
                  f"decisions and {h.requests:,} requests in {h.seconds:.1f} s = {h.decisions_per_second:,.0f} "
                  f"decisions/s; decide latency p50 {h.decide_p50_ms:.2f} ms, p99 {h.decide_p99_ms:.2f} ms.")
    console.print(f"Duplicate outcomes sent {result.duplicates_sent}, recognised {result.duplicates_detected}; "
                  f"dead-lettered outcomes {result.dead_letters} (unknown decisions).")
    home_text = escape(str(result.home))
    console.print(f"Bandit part done in {result.seconds:.1f} s. Home folder: [bold]{home_text}[/] "
                  f"(deployment 'demo'; try: rlops events stats --home {home_text})")
    _explanation(result.explanation)
    _bandit_gates(root.root, result.behaviour_html)
    _closed_loop(root.root, fast, seed)
    if lifecycle:
        _lifecycle(root.root, fast, seed)
    if scale:
        _scale(root.root, fast, seed)
    _audit_summary(root.root)


def _audit_summary(home: Path) -> None:
    """Who changed what during the demo: the audit chain, verified, counted by kind of change."""
    from collections import Counter

    from rlops.home import Home
    from rlops.security.audit import AuditLog

    with AuditLog.for_home(Home.resolve(home)) as log:
        verified = log.verify()
        counts = Counter(e.action for e in log.entries())
    table = Table("change", "entries", title="audit chain (every state change, with who and why)")
    for action, n in sorted(counts.items()):
        table.add_row(action, str(n))
    console.print(table)
    state = "[green]verifies[/]" if verified.ok else f"[bold red]BROKEN[/]: {escape(str(verified.problem))}"
    console.print(f"Audit chain of {verified.entries} entries {state}. Every HTTP request of the demo carried an API "
                  "key: one decider key per simulated client, scoped to its deployment and revoked at the end. "
                  f"Try: rlops audit tail --home {escape(str(home))}; rlops audit report --from 2020-01-01 "
                  f"--to 2100-01-01 --home {escape(str(home))}")


def _explanation(explanation: DecisionExplanation | None) -> None:
    """Why the learned LinUCB made its last decision: the top features of its score and of its lead."""
    if explanation is None or explanation.chosen is None:
        return
    chosen, lead = explanation.chosen, explanation.advantage
    table = Table("feature", "value", f"to the score of {explanation.action}",
                  *([f"to its lead over {explanation.runner_up}"] if lead is not None else []),
                  title=f"why LinUCB showed '{explanation.action}' (decision {explanation.decision_id}, "
                        f"{explanation.policy_version})",
                  caption=f"{chosen.method.value} attributions against the {explanation.baseline_source.value} "
                          f"baseline ({escape(explanation.baseline_detail)}); each column sums to the score's "
                          f"difference from the baseline (score {chosen.value:.4f}, baseline "
                          f"{chosen.baseline_value:.4f}). Try: rlops explain {explanation.decision_id}")
    for name, value in sorted(chosen.by_feature.items(), key=lambda kv: -abs(kv[1])):
        shown = explanation.context.get(name, "")
        if isinstance(shown, list):
            shown = "[" + ", ".join(f"{v:.2f}" for v in shown[:3]) + (", ...]" if len(shown) > 3 else "]")
        cells = [escape(name), escape(str(shown)), f"{value:+.4f}"]
        if lead is not None:
            cells.append(f"{lead.by_feature[name]:+.4f}")
        table.add_row(*cells)
    console.print(table)


def _bandit_gates(home: Path, behaviour_html: str = "") -> None:
    """Validate the learned LinUCB against the uniform logging policy's logs (off-policy), show the gates, and add
    the policy's global behaviour (importance, partial dependence) to the report."""
    from rlops.demo.bandit import LEARNING, LOGGING
    from rlops.evaluation.report import write_report
    from rlops.evaluation.validate import ValidateOptions, validate

    learned = home / "deployments" / LEARNING / "learned" / "r1"
    with console.status("validating the learned LinUCB on the logging policy's logs"):
        run = validate(ValidateOptions(policy=learned, events=home, deployment=LOGGING))
    ope = run.results["ope"]
    table = Table("estimator", "value", "95% interval", title=f"off-policy value of the learned LinUCB, from "
                  f"{ope['rows']:,} decisions logged by the uniform policy (its value: {ope['logging']['value']:.4f})")
    for name, e in ope["estimates"].items():
        table.add_row(name, f"{e['value']:.4f}", f"[{e['interval']['low']:.4f}, {e['interval']['high']:.4f}]")
    console.print(table)
    _gate_table(run.results["gates"], "gates for the learned LinUCB")
    _, html = write_report(run.results, home / "reports" / "bandit")
    if behaviour_html:
        text = html.read_text()
        html.write_text(text.replace("</body>", behaviour_html + "</body>", 1))
    console.print(f"validation report, with the policy's partial-dependence plots: {escape(str(html))}")


@contextmanager
def _narrator() -> Iterator[Callable[[str], None]]:
    """A part's ``say``: each line goes to the spinner's status and, time-stamped, to the log above it."""
    with console.status("starting") as status:

        def say(text: str) -> None:
            status.update(escape(text))
            console.log(escape(text))

        yield say


def _closed_loop(home: Path, fast: bool, seed: int) -> None:
    """Retrain from the logging policy's logs, shadow, canary and promote over HTTP; a broken canary rolled back."""
    from rlops.demo.bandit import LOGGING
    from rlops.demo.closed_loop import HISTORY_COLUMNS, SUMMARY_COLUMNS, history_rows, run_closed_loop, summary_rows

    console.rule("the closed loop: retrain, shadow, canary, promote; a broken canary rolled back")
    with _narrator() as say:
        result = run_closed_loop(home, seed=seed, say=say, fast=fast)
    summary = Table(*SUMMARY_COLUMNS, title=f"closed loop on {LOGGING} over HTTP ({escape(result.url)})")
    for row in summary_rows(result):
        summary.add_row(*(escape(cell) for cell in row))
    history = Table(*HISTORY_COLUMNS, title=f"rollout history of {LOGGING}")
    for change in history_rows(result):
        history.add_row(*(escape(cell) for cell in change))
    console.print(summary)
    console.print(history)
    console.print(f"Closed loop done in {result.seconds:.0f} s; try: rlops deploy history {LOGGING} "
                  f"--home {escape(str(home))}")


def _gate_table(gates: list[dict[str, object]] | list[tuple[str, str, str]], title: str) -> None:
    table = Table("gate", "status", "the numbers", title=title)
    for g in gates:
        if isinstance(g, dict):
            name, status, reason = g["gate"]["name"], g["status"], g["reason"]  # type: ignore[index]
        else:
            name, status, reason = g
        style = _STYLE.get(str(status), "")
        table.add_row(escape(str(name)), f"[{style}]{str(status).upper()}[/]", escape(str(reason)))
    console.print(table)


def _scale(home: Path, fast: bool, seed: int) -> None:
    import importlib.util

    from rlops.demo.scale import run

    console.rule("scale-out on Ray")
    if importlib.util.find_spec("ray") is None:
        console.print("Ray is not installed, so this part is skipped: pip install 'rlops[ray]' (make demo installs "
                      "it).", markup=False)
        return
    with _narrator() as say:
        r = run(home, fast=fast, seed=seed, say=say)
    table = Table("stress suite", "episodes", "wall time", "same report", title=f"HVAC stress suite of "
                  f"{escape(r.candidate)} against the thermostat")
    table.add_row("2 local processes", str(r.tasks), f"{r.local_seconds:.1f} s", "")
    table.add_row("Ray, 2 actors", str(r.tasks), f"{r.ray_seconds:.1f} s (+{r.ray_start_seconds:.1f} s to start "
                  "Ray)", "[green]yes[/]" if r.identical else "[bold red]NO[/]")
    console.print(table)
    console.print(f"Ray Serve, {r.replicas} replicas: {r.decisions:,} decisions from 8 client threads in "
                  f"{r.serve_seconds:.1f} s; {r.logged:,} of them found in the event log, written by {r.writers} "
                  f"replica processes. Serving on one machine is faster with `rlops serve --workers` (see "
                  f"docs/benchmarks.md); Ray pays off across machines (docs/deploy.md).")


def _lifecycle(home: Path, fast: bool, seed: int) -> None:
    from rlops.demo.lifecycle import LifecycleConfig, run, write_summary

    config = LifecycleConfig.fast() if fast else LifecycleConfig()
    config = dataclasses.replace(config, seed=seed)
    console.rule("the HVAC lifecycle")
    with _narrator() as say:
        result = run(home, config, say=say)
    table = Table("phase", "arm", "policy", "cost $/day", "kWh/day", "comfort K·h/day", "reward/decision",
                  title=f"HVAC: {config.buildings} simulated buildings over HTTP ({escape(result.url)})")
    for a in result.arms:
        table.add_row(a.phase, a.arm, a.policy, f"{a.cost_per_day:.3f}", f"{a.energy_kwh_per_day:.2f}",
                      f"{a.comfort_degree_hours_per_day:.3f}", f"{a.reward_per_decision:.4f}")
    console.print(table)
    for version, gates in result.gates.items():
        _gate_table(list(gates), f"gates for {version} (stress suite vs the thermostat, latency)")
    guard = Table("canary", "guardrail", "why", title="canaries, judged by the server's supervisor "
                                                     "(anytime-valid sequential test)")
    for phase, decision, reason in result.guardrails:
        guard.add_row(phase, f"[{_STYLE.get(decision, '')}]{decision.upper()}[/]", escape(reason))
    console.print(guard)
    for alert in result.alerts:
        console.print(f"[bold red]ALERT[/] {escape(alert)}")
    if result.lift is not None:
        lift, low, high = result.lift
        console.print(f"Lift of production over the thermostat holdout (reward/decision, last 30 s): {lift:+.4f} "
                      f"[{low:+.4f}, {high:+.4f}]")
    changes = Table("action", "version", "by", "why", title="deployment hvac: rollout history")
    for action, version, actor, why in result.changes:
        changes.add_row(action, escape(version), escape(actor), escape(why))
    console.print(changes)
    stages = Table("version", "stage", "why", title="registry: hvac-ppo")
    for version, stage, why in result.stages:
        stages.add_row(version, stage, escape(why))
    console.print(stages)
    summary = write_summary(result, home / "reports" / "lifecycle.html")
    console.print(f"Lifecycle done in {result.seconds:.0f} s; {result.decisions_over_http:,} decisions over HTTP. "
                  f"Report: {escape(str(summary))}.")
    console.print(f"Dashboard: it was live at {escape(result.url)}/ during the demo; to see it again, run "
                  f"`rlops serve --home {escape(str(home))}`, make a key with `rlops keys create --role viewer "
                  f"--home {escape(str(home))}` and open [bold]http://127.0.0.1:8000/#key=<the key>[/].")
