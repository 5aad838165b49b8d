"""``rlops alerts``: list stored alerts, check a rules file; thin over :mod:`rlops.monitoring.alerts`.

``alerts`` is a group whose callback lists alerts when no subcommand follows (``invoke_without_command``), so
``rlops alerts --state firing`` and ``rlops alerts list --state firing`` are the same command, next to
``rlops alerts check RULES.yaml``.
"""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from rlops.cli.common import HomeOption, app, console, errors, existing_home

if TYPE_CHECKING:
    from rlops.monitoring.alerts import AlertRecord

alerts_app = typer.Typer(help="Alerts: list what fired (and resolved), check an alert rules file.")
app.add_typer(alerts_app, name="alerts")


class StateFilter(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"
    ALL = "all"


_SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "critical": "bold red"}
_STATE_STYLE = {"firing": "bold red", "resolved": "green"}
_DELIVERY_STYLE = {"none": "dim", "pending": "yellow", "delivered": "green", "failed": "bold red"}

StateOption = Annotated[StateFilter, typer.Option("--state", help="Which alerts: firing, resolved or all.")]
LimitOption = Annotated[int, typer.Option("--limit", min=1, help="Show at most this many, newest first.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the alerts as a JSON list (every field).")]
SinceOption = Annotated[str | None, typer.Option(
    "--since", help="Only alerts active since then: a duration back from now (30m, 24h, 7d) or an ISO time (UTC "
                    "unless it says otherwise).", show_default=False)]
DeploymentOption = Annotated[str | None, typer.Option("--deployment", help="Only alerts labelled with this "
                                                                           "deployment.", show_default=False)]


def _since_us(text: str) -> int:
    from rlops.errors import ValidationError
    from rlops.monitoring.alerts import parse_span
    from rlops.monitoring.alerts.store import now_us

    try:
        return now_us() - int(parse_span(text) * 1e6)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as e:
        raise ValidationError("since", f"expected a duration like '30m', '24h', '7d' or an ISO time like "
                                       f"'2024-05-01T12:00', got {text!r}") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1_000_000)


def _when(us: int | None) -> str:
    return "" if us is None else dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _styled(value: str, styles: dict[str, str]) -> str:
    return f"[{styles.get(value, '')}]{value}[/]" if styles.get(value) else value


def _table(records: list[AlertRecord], title: str) -> Table:
    table = Table(title=title)
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True, min_width=8)
    table.add_column("severity", no_wrap=True, min_width=8)
    table.add_column("rule", overflow="fold")
    table.add_column("labels", overflow="fold")
    table.add_column("value")
    table.add_column("fired -> resolved (UTC)")
    table.add_column("action")
    table.add_column("webhook", no_wrap=True, min_width=9)
    for r in records:
        labels = "\n".join(f"{k}={v}" for k, v in sorted(r.labels.items()))
        when = _when(r.fired_at_us) + (f"\n-> {_when(r.resolved_at_us)}" if r.resolved_at_us is not None else "")
        action = r.action.value + (f": {r.action_result}" if r.action_result else "")
        table.add_row(str(r.id), _styled(r.state.value, _STATE_STYLE), _styled(r.severity.value, _SEVERITY_STYLE),
                      escape(r.rule), escape(labels), f"{r.value:.4g} {r.op.value} {r.threshold:g}", when,
                      escape(action), _styled(r.webhook_status.value, _DELIVERY_STYLE))
    return table


def _list(state: StateFilter, limit: int, as_json: bool, since: str | None, deployment: str | None,
          home: Path | None) -> None:
    from rlops.monitoring.alerts import AlertState, AlertStore

    root = existing_home(home)
    since_us = None if since is None else _since_us(since)
    with AlertStore.for_home(root) as store:
        records = store.list_alerts(state=None if state is StateFilter.ALL else AlertState(state.value),
                                    since_us=since_us, deployment=deployment, limit=limit)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in records], indent=2))
        return
    which = "" if state is StateFilter.ALL else f"{state.value} "
    if not records:
        console.print(f"no {which}alerts in {escape(str(root.root))}")
        return
    console.print(_table(records, f"{which}alerts in {escape(str(root.root))} (newest first)"))


@alerts_app.callback(invoke_without_command=True)
def alerts(
    ctx: typer.Context,
    state: StateOption = StateFilter.ALL,
    limit: LimitOption = 50,
    as_json: JsonOption = False,
    since: SinceOption = None,
    deployment: DeploymentOption = None,
    home: HomeOption = None,
) -> None:
    """List stored alerts, newest first (the same as 'rlops alerts list')."""
    if ctx.invoked_subcommand is None:
        _list(state, limit, as_json, since, deployment, home)


@alerts_app.command("list")
def list_alerts(
    state: StateOption = StateFilter.ALL,
    limit: LimitOption = 50,
    as_json: JsonOption = False,
    since: SinceOption = None,
    deployment: DeploymentOption = None,
    home: HomeOption = None,
) -> None:
    """List stored alerts, newest first: state, severity, rule, labels, value, times, action result, webhook."""
    _list(state, limit, as_json, since, deployment, home)


@alerts_app.command("check")
def check(rules: Annotated[Path, typer.Argument(help="Alert rules YAML (or JSON) file.")]) -> None:
    """Validate an alert rules file and print its rules; exits 2 naming the field when the file is wrong."""
    from rlops.errors import ConfigError
    from rlops.monitoring.alerts import AlertRules, format_span

    try:
        loaded = AlertRules.load(rules)
    except ConfigError as e:
        errors.print(Text.assemble(("error: ", "bold red"), str(e)), highlight=False)
        raise typer.Exit(2) from e
    console.print(f"[bold]{escape(str(rules))}[/]: {len(loaded.rules)} rule{'s' if len(loaded.rules) != 1 else ''} OK")
    for rule in loaded.rules:
        webhook = loaded.webhook_for(rule)
        console.print(f"  [bold]{escape(rule.name)}[/]: {escape(rule.condition())} -> "
                      f"{_styled(rule.severity.value, _SEVERITY_STYLE)}, {rule.action.value}, resolves after "
                      f"{format_span(loaded.resolve_after_for(rule))} false, "
                      + (f"webhook {escape(webhook)}" if webhook else "no webhook")
                      + (f" ({escape(rule.description)})" if rule.description else ""), highlight=False)
