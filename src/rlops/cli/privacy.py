"""``rlops erase`` (a unit's decisions and outcomes, everywhere) and ``rlops retention apply``; thin over
:mod:`rlops.security.privacy` (see docs/privacy.md)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from rlops.cli.common import HomeOption, app, console, errors, existing_home
from rlops.errors import ValidationError

if TYPE_CHECKING:
    from rlops.events.rewrite import Removal

retention_app = typer.Typer(help="Retention: delete decisions older than their deployment's retention period.",
                            no_args_is_help=True)
app.add_typer(retention_app, name="retention")

ActorOption = Annotated[str | None, typer.Option("--actor", help="Who does this, for the audit log (default: the OS "
                                                                 "user).", show_default=False)]
WaitOption = Annotated[float, typer.Option("--wait", min=0.0, help="Seconds to wait for running servers to hand "
                                                                   "over the log segments they are writing.")]
#: Command-line option of each library field a ValidationError may name.
_OPTIONS = {"unit_id": "--unit", "actor": "--actor"}


def _usage(error: ValidationError) -> typer.BadParameter:
    return typer.BadParameter(error.rule, param_hint=_OPTIONS.get(error.field, error.field))


def _actor(actor: str | None) -> str:
    from rlops.registry import default_actor

    return actor or default_actor()


@contextmanager
def _bars() -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback ``(phase, done, total)`` drawing one rich bar per phase (removed when done)."""
    from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        tasks: dict[str, TaskID] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=total)
            progress.update(tasks[phase], completed=done, total=total)

        yield update


def _fail(problems: list[str]) -> None:
    for problem in problems:
        errors.print(Text.assemble(("not complete: ", "bold red"), problem), highlight=False)
    raise typer.Exit(1)


@app.command("erase")
def erase(
    unit: Annotated[str, typer.Option("--unit", help="The unit whose decisions and outcomes to erase (the unit_id "
                                                     "its decisions were made for).", show_default=False)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    scan: Annotated[bool, typer.Option("--scan/--no-scan", help="Afterwards, search every other file of the home "
                                                                "folder for the unit id.")] = True,
    wait: WaitOption = 30.0,
    actor: ActorOption = None,
    home: HomeOption = None,
) -> None:
    """Erase a unit: its decisions and their outcomes from the event log (segments, Parquet parts, quarantined
    bytes) for good, recorded in the audit log under a keyed hash of the unit id.

    Safe while servers are running; exits 1, saying what remains and what to do, unless nothing of the unit is
    left.
    """
    from rlops.events.erasure import check_unit_id
    from rlops.security.privacy import erase_unit

    try:
        check_unit_id(unit)
    except ValidationError as e:
        raise _usage(e) from e
    folder = existing_home(home)
    if not yes and not typer.confirm(f"Erase every decision and outcome of unit {unit!r} from {folder.root}? "
                                     "This cannot be undone", default=False):
        errors.print("nothing erased")
        raise typer.Exit(1)
    with _bars() as progress:
        try:
            result = erase_unit(folder, unit, _actor(actor), wait_s=wait, scan=scan, progress=progress)
        except ValidationError as e:
            if e.field not in _OPTIONS:
                raise
            raise _usage(e) from e
    console.print(f"erased {result.decisions:,} decisions and {result.outcomes:,} outcomes "
                  f"({result.files_rewritten:,} Parquet parts rewritten, {result.tails_deleted:,} quarantined tails "
                  f"deleted); audit target {result.unit_ref}", soft_wrap=True, highlight=False)
    if not result.scanned:
        errors.print("the home folder was not searched for the unit id" + (
            " (ids shorter than 4 bytes match unrelated bytes)" if scan else " (--no-scan)"))
    if not result.complete:
        _fail(result.problems())


def _when(us: int | None) -> str:
    return "-" if us is None else dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _counts(removal: Removal | None, dry_run: bool) -> tuple[str, str]:
    if removal is None:
        return "-", "-"
    if dry_run:
        return f"{removal.selected_decisions:,}", f"{removal.selected_outcomes:,}"
    return f"{removal.decisions:,}", f"{removal.outcomes:,}"


@retention_app.command("apply")
def retention_apply(
    deployment: Annotated[str | None, typer.Option("--deployment", help="Only this deployment (default: every "
                                                                        "deployment with a retention).",
                                                   show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be deleted.")] = False,
    wait: WaitOption = 30.0,
    actor: ActorOption = None,
    home: HomeOption = None,
) -> None:
    """Delete decisions older than their deployment's retention (its `retention:` setting), with their outcomes.

    Safe while servers are running (a server with a retention hook does this on its own). Exits 1, saying what
    remains, if records past retention are still stored afterwards.
    """
    from rlops.security.privacy import apply_retention

    with _bars() as progress:
        try:
            result = apply_retention(existing_home(home), deployment=deployment, actor=_actor(actor),
                                     dry_run=dry_run, wait_s=wait, progress=progress)
        except ValidationError as e:
            if e.field not in _OPTIONS:
                raise
            raise _usage(e) from e
    verb = "would delete" if dry_run else "deleted"
    table = Table("deployment", "retention", "cutoff (UTC)", f"decisions {verb}", f"outcomes {verb}",
                  title="retention" + (" (dry run: nothing changed)" if dry_run else ""))
    for d in result.deployments:
        table.add_row(escape(d.deployment), "forever" if d.retention is None else str(d.retention),
                      _when(d.cutoff_us), *_counts(d.removal, dry_run))
    if result.orphans is not None:
        table.add_row("(outcomes of unknown decisions)", "longest", _when(result.orphan_cutoff_us),
                      "-", _counts(result.orphans, dry_run)[1])
    console.print(table)
    if not result.complete and not dry_run:
        _fail(result.problems())
