"""``rlops export`` (a deployment's policy to ONNX for the edge runtime) and ``rlops events ingest`` (its log back)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rlops.cli.common import HomeOption, app, console, events_app, existing_home


@app.command("export")
def export(
    deployment: Annotated[str, typer.Argument(help="Deployment whose live revision's policy to export.")],
    onnx: Annotated[Path, typer.Option("--onnx", help="The .onnx file to write; the manifest goes next to it "
                                                      "(NAME.manifest.json).")],
    home: HomeOption = None,
) -> None:
    """Export a deployment's policy to one ONNX graph (preprocessing included) and a manifest, for rlops.edge."""
    from rlops.export import export_deployment

    result = export_deployment(existing_home(home), deployment, onnx)
    manifest = result.manifest
    console.print(f"exported [bold]{escape(manifest.policy_version)}[/] ({escape(manifest.source.kind)}, rule "
                  f"{manifest.exploration.rule.value}) to {escape(str(result.model_path))} "
                  f"({result.model_path.stat().st_size:,} bytes, sha256 {manifest.model.sha256[:12]}...)",
                  soft_wrap=True)
    console.print(f"manifest: {escape(str(result.manifest_path))}", soft_wrap=True)


@events_app.command("ingest")
def events_ingest(
    file: Annotated[Path, typer.Argument(help="Decision log written by the edge runtime (JSON lines).")],
    home: HomeOption = None,
) -> None:
    """Append an edge runtime's decision log to the event log (all lines checked first; idempotent).

    A bad line is reported with its number and nothing is stored; decisions the log already holds (an earlier
    ingest of the same file) are left out; an incomplete last line (a crash mid-write) is skipped.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    from rlops.events.ingest import ingest_into_home

    with Progress(TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(), console=console,
                  transient=True) as progress:
        tasks: dict[str, TaskID] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=total)
            progress.update(tasks[phase], completed=done)

        result = ingest_into_home(file, existing_home(home), progress=update)
    table = Table("deployment", "decisions stored", title=f"ingested {escape(str(result.path))}")
    for name, count in sorted(result.by_deployment.items()):
        table.add_row(name, f"{count:,}")
    if result.by_deployment:
        console.print(table)
    console.print(f"{result.lines:,} lines, {result.decisions:,} decisions: {result.appended:,} stored, "
                  f"{result.already_stored:,} already in the log", soft_wrap=True)
    if result.torn_tail_bytes:
        console.print(f"skipped an incomplete last line ({result.torn_tail_bytes:,} bytes: a write cut short by a "
                      f"crash; its decisions were never returned)")
