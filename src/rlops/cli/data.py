"""``rlops data``: look at logged data before it trains or evaluates anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from rlops.cli.common import app, console

data_app = typer.Typer(help="Logged data: profile it before training or evaluation.", no_args_is_help=True)
app.add_typer(data_app, name="data")

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


@data_app.command("check")
def check(
    events: Annotated[Path, typer.Option("--events", help="Interactions: a Parquet file (as `rlops events export` "
                                                           "writes) or a home folder.")],
    schema: Annotated[Path | None, typer.Option("--schema", help="Schema file (default: the deployment's, when "
                                                                 "--events is a home folder).")] = None,
    deployment: Annotated[str | None, typer.Option(help="Deployment to read from a home folder.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the profile and checks here.")] = None,
    show_passing: Annotated[bool, typer.Option("--all", help="List passing checks too.")] = False,
) -> None:
    """Profile logged interactions: missing, out-of-range and unknown-category rates per feature, propensity
    sanity, reward coverage, duplicates. Exits 1 when something would corrupt training or evaluation."""
    from rlops.errors import ValidationError
    from rlops.evaluation.data_check import judge, load_interactions, overall, profile
    from rlops.evaluation.status import Status
    from rlops.home import Home
    from rlops.schema import Schema

    if schema is not None:
        spec = Schema.load(schema)
    elif Home.resolve(events).exists:
        from rlops.engine import Engine

        with Engine(Home.resolve(events).require()) as engine:
            names = engine.store.names()
            name = deployment or (names[0] if len(names) == 1 else None)
            if name is None:
                raise ValidationError("deployment", f"the home folder holds {len(names)} deployments; name one")
            spec = engine.spec(name).schema_
            deployment = name
    elif events.is_file():
        raise ValidationError("schema", "required when --events is a Parquet file")
    else:
        raise ValidationError("events", f"{events} is neither a Parquet file nor an rlops home folder")
    table = load_interactions(events, deployment)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"profiling {table.num_rows:,} rows", total=len(spec.features) + 1)
        data = profile(table, spec, progress=lambda n: bar.advance(task, n))
    checks = judge(data)
    verdict = overall(checks)
    out = Table("check", "subject", "status", "value", "detail",
                title=f"{data.rows:,} interactions against schema '{escape(spec.name)}'")
    for c in checks:
        if c.status is Status.PASS and not show_passing:
            continue
        value = f"{c.value:,.0f}" if float(c.value).is_integer() else f"{c.value:.4g}"
        out.add_row(c.check, escape(c.subject), f"[{_STYLE[c.status]}]{c.status.value.upper()}[/]", value,
                    escape(c.message))
    passing = sum(c.status is Status.PASS for c in checks)
    if out.row_count:
        console.print(out)
    console.print(f"{passing} of {len(checks)} checks pass; actions logged: "
                  + ", ".join(f"{escape(a)} {n:,}" for a, n in data.action_counts.items()))
    if json_out is not None:
        json_out.write_text(json.dumps({"status": verdict.value, "profile": data.to_dict(),
                                        "checks": [c.to_dict() for c in checks]}, indent=2))
    console.print(f"[{_STYLE[verdict]}]{verdict.value.upper()}[/]"
                  + (": this data would corrupt training or evaluation" if verdict is Status.FAIL else ""))
    if verdict is Status.FAIL:
        raise typer.Exit(1)
