"""``rlops drift report`` (a deployment's live window against its reference, as HTML) and ``rlops monitor`` (a live
table of the key numbers); thin over :mod:`rlops.monitoring.report` and :mod:`rlops.monitoring.live`."""

from __future__ import annotations

import math
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rlops.cli.common import HomeOption, app, console, existing_home
from rlops.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from rlops.monitoring.drift import FeatureDrift, Severity
    from rlops.monitoring.live import MonitorSnapshot
    from rlops.monitoring.report import WindowDriftReport

drift_app = typer.Typer(help="Drift of live traffic against a policy version's reference profile.",
                        no_args_is_help=True)
app.add_typer(drift_app, name="drift")


class FailOn(StrEnum):
    """When ``rlops drift report`` exits 1."""

    NEVER = "never"  #: always 0 (the table and the report say whether there is drift)
    WARN = "warn"  #: any column at warn or alert
    ALERT = "alert"  #: any column at alert


#: Command-line option of each library field a ValidationError may name.
_OPTIONS = {"window": "--window", "reference": "--reference", "baseline_window": "--baseline-window",
            "sub_windows": "--sub-windows", "end": "--end", "deployment": "DEPLOYMENT", "drift_rows": "--window"}
_STYLE = {"none": "green", "warn": "yellow", "alert": "bold red"}


def _seconds(text: str, option: str) -> float:
    from rlops.rewards import parse_duration

    try:
        return parse_duration(text)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint=option) from e


def _usage(error: ValidationError) -> typer.BadParameter:
    """A library error about an option, as a usage error (exit 2) naming the option."""
    return typer.BadParameter(error.rule, param_hint=_OPTIONS.get(error.field, error.field))


def _severity(severity: Severity) -> str:
    return f"[{_STYLE[severity.value]}]{severity.value.upper()}[/]"


def _value(drift: FeatureDrift, metric: str) -> str:
    from rlops.monitoring.drift import Metric

    try:
        return f"{drift.value(Metric(metric)):.3g}"
    except KeyError:
        return ""


def _drift_table(report: WindowDriftReport) -> Table:
    from rlops.monitoring.drift import Metric

    table = Table("column", "kind", "severity", "PSI", "KS", "Wass./sd", "JS", "Cramér V",
                  title=f"drift of {escape(report.deployment)}: {report.batch.n_live:,} decisions vs "
                        f"{escape(report.reference.description)}")
    order = sorted(report.rows, key=lambda f: -f.value(Metric.PSI))
    for f in order:
        table.add_row(escape(f.name), f.kind.value, _severity(f.severity),
                      *(_value(f, m) for m in ("psi", "ks", "wasserstein", "jensen_shannon", "cramers_v")))
    return table


@drift_app.command("report")
def drift_report(
    deployment: Annotated[str, typer.Argument(help="Deployment whose live traffic to check.")],
    window: Annotated[str, typer.Option("--window", help="Live window ending at --end: '30m', '1h', '7d', or "
                                                         "seconds.")] = "1h",
    reference: Annotated[str | None, typer.Option(
        "--reference", help="NAME@VERSION whose registered reference profile to compare with (default: the one "
                            "registered with the policy the deployment serves, else --baseline-window).")] = None,
    baseline_window: Annotated[str | None, typer.Option(
        "--baseline-window", help="Compare with this much of the log just before the window instead (default, "
                                  "when no profile is registered: as long as --window).")] = None,
    end: Annotated[str | None, typer.Option("--end", help="End of the window: ISO 8601 (UTC) or microseconds "
                                                          "(default: now).", show_default=False)] = None,
    out: Annotated[Path, typer.Option("--out", help="The HTML report to write.")] = Path("drift-report.html"),
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write every number as JSON here.")] = None,
    sub_windows: Annotated[int, typer.Option("--sub-windows", min=1, max=200,
                                             help="Columns of the PSI heatmap over the window.")] = 12,
    fail_on: Annotated[FailOn, typer.Option("--fail-on", case_sensitive=False,
                                            help="Exit 1 when drift reaches this severity.")] = FailOn.NEVER,
    home: HomeOption = None,
) -> None:
    """Compare a deployment's live window of served decisions with its reference profile: per-feature PSI, KS,
    Wasserstein, Jensen-Shannon and Cramér's V, the domain classifier's AUC, action and reward distribution shift.
    Writes a self-contained HTML report with plots and prints a summary. Exits 0 whatever the drift unless
    --fail-on says otherwise (then 1 when drift reaches that severity); bad options exit 2."""
    import json

    from rlops.events.tables import parse_time_us
    from rlops.monitoring.drift import Severity
    from rlops.monitoring.report import window_drift, write_html
    from rlops.registry import ModelRef

    window_s = _seconds(window, "--window")
    baseline_s = None if baseline_window is None else _seconds(baseline_window, "--baseline-window")
    root = existing_home(home)
    try:
        ref = None if reference is None else ModelRef.parse(reference, "reference", require_version=True)
        end_us = None if end is None else parse_time_us(end, "end")
        with console.status("drift report") as status:
            report = window_drift(root, deployment, window_s=window_s, end_us=end_us, reference=ref,
                                  baseline_s=baseline_s, sub_windows=sub_windows,
                                  progress=lambda step: status.update(escape(step)))
    except ValidationError as e:
        raise _usage(e) from e
    except NotFoundError as e:
        # the deployment or the registry version named by --reference
        raise typer.BadParameter(str(e), param_hint="DEPLOYMENT" if str(e).startswith("deployment ") else
                                 "--reference") from e
    path = write_html(report, out)
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_dict(), indent=2, default=lambda v: None))
    console.print(_drift_table(report))
    domain = report.batch.multivariate
    if domain is not None:
        console.print(f"domain classifier AUC {domain.auc:.3f} ({domain.classifier}): {_severity(domain.severity)}")
    drifted = [f.name for f in report.rows if f.severity is not Severity.NONE]
    console.print(f"overall: {_severity(report.severity)}"
                  + (f"; drifted: {escape(', '.join(drifted))}" if drifted else "; no column drifted"))
    console.print(f"report: {escape(str(path))}", soft_wrap=True)
    rank = {Severity.NONE: 0, Severity.WARN: 1, Severity.ALERT: 2}
    threshold = {FailOn.WARN: 1, FailOn.ALERT: 2}.get(fail_on)
    if threshold is not None and rank[report.severity] >= threshold:
        raise typer.Exit(1)


def _ci(low: float, high: float) -> str:
    return "" if math.isnan(low) else f" [{low:.3g}, {high:.3g}]"


def monitor_table(snap: MonitorSnapshot) -> Table:
    """The table ``rlops monitor`` shows for one snapshot."""
    table = Table("deployment", "version", "decisions", f"last {snap.window_s:g}s", "joined", "pending", "dead",
                  "reward [95% CI]", "min p", "ESS", "top actions", "drift (top PSI)",
                  title=f"rlops monitor · {time.strftime('%H:%M:%S', time.gmtime(snap.as_of_us / 1e6))} UTC")
    for r in snap.rows:
        reward = "" if r.reward is None else f"{r.reward.mean:.4g}{_ci(r.reward.low, r.reward.high)}"
        ess = "" if r.ess is None or r.ess_fraction is None else f"{r.ess:,.0f} ({r.ess_fraction:.0%})"
        drift = "" if r.drift is None else (f"{escape(r.drift.feature)} {r.drift.psi:.3f} "
                                            f"{_severity(r.drift.severity)}")
        table.add_row(escape(r.deployment), escape(r.policy_version) + (" [bold]*[/]" if r.live else ""),
                      f"{r.decisions:,}", f"{r.recent:,} ({r.rate_per_s:.3g}/s)", f"{r.joined:,}", f"{r.pending:,}",
                      f"{r.dead_letters:,}", reward,
                      "" if r.min_propensity is None else f"{r.min_propensity:.3g}", ess,
                      ", ".join(f"{escape(a)} {s:.0%}" for a, s in r.top_actions), drift)
    return table


@app.command("monitor")
def monitor(
    deployment: Annotated[str | None, typer.Argument(help="Only this deployment (default: all).")] = None,
    interval: Annotated[float, typer.Option("--interval", min=0.2, help="Seconds between refreshes.")] = 2.0,
    window: Annotated[str, typer.Option("--window", help="Recent window for decision counts and drift: '60s', "
                                                         "'5m', ...")] = "60s",
    once: Annotated[bool, typer.Option("--once", help="Print one table and exit (for scripts and tests).")] = False,
    home: HomeOption = None,
) -> None:
    """A live table of every deployment and policy version (live version starred): decisions in all and in the
    recent window, outcomes joined / pending / dead-lettered, mean reward with its 95% interval, smallest
    propensity and effective sample size, top actions, and the top drift PSI against the registered reference."""
    from rich.live import Live

    from rlops.engine import Engine
    from rlops.monitoring.live import ReferenceCache, snapshot
    from rlops.registry import Registry

    window_s = _seconds(window, "--window")
    root = existing_home(home)
    names = None if deployment is None else [deployment]
    with Engine(root) as engine, Registry(root) as registry:
        references = ReferenceCache(registry)

        def take() -> MonitorSnapshot:
            try:
                return snapshot(engine, names, window_s=window_s, references=references)
            except NotFoundError as e:
                raise typer.BadParameter(str(e), param_hint="DEPLOYMENT") from e

        if once:
            console.print(monitor_table(take()))
            return
        try:
            with Live(monitor_table(take()), console=console, refresh_per_second=4) as live:
                while True:
                    time.sleep(interval)
                    live.update(monitor_table(take()))
        except KeyboardInterrupt:
            console.print("stopped")
