"""``rlops audit``: check, export and read the tamper-evident audit log; thin over :mod:`rlops.security.audit`."""

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

from rlops.cli.common import HomeOption, app, console, errors, existing_home, home_folder
from rlops.errors import StorageError, ValidationError

if TYPE_CHECKING:
    from rlops.security.audit import AuditLog, VerifyResult

audit_app = typer.Typer(help="The audit log: who changed what and when, hash-chained so that edits show.",
                        no_args_is_help=True)
app.add_typer(audit_app, name="audit")


def _open(home: Path | None) -> AuditLog:
    from rlops.security.audit import AuditLog

    return AuditLog.for_home(existing_home(home))


def _when(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@audit_app.command("verify")
def verify(
    anchor: Annotated[str | None, typer.Option("--anchor", help="SEQ:HASH printed by an earlier verify and kept "
                                                                "elsewhere: also catches entries removed from the "
                                                                "end.", show_default=False)] = None,
    unkeyed_until: Annotated[int, typer.Option("--unkeyed-until", min=0, help="With an audit key: entries up to "
                                                                              "this number may be plain SHA-256 "
                                                                              "(appended before the key).")] = 0,
    file: Annotated[Path | None, typer.Option("--file", help="Verify this export (JSON lines) instead of the home "
                                                             "folder's log.", show_default=False)] = None,
    partial: Annotated[bool, typer.Option("--partial", help="With --file: the export is a time range, so it need "
                                                            "not start at the first entry.")] = False,
    home: HomeOption = None,
) -> None:
    """Recompute the hash chain; exit 1 naming the first entry that was altered, removed or reordered."""
    from rlops.security.audit import load_audit_key, read_jsonl, verify_chain

    if file is not None:
        key = load_audit_key(home_folder(home).keys)  # $RLOPS_AUDIT_KEY, else the home's key file if any
        result = verify_chain(read_jsonl(file), key, anchor=anchor, unkeyed_until=unkeyed_until,
                              from_genesis=not partial)
        head = None
        where = str(file)
    else:
        with _open(home) as log:
            result = log.verify(anchor=anchor, unkeyed_until=unkeyed_until)
            head = log.anchor() if result.ok else None
            where = f"audit log ({log.alg.value} for new entries)"
    _report(result, where, head)


def _report(result: VerifyResult, where: str, head: str | None) -> None:
    if not result.ok:
        errors.print(Text.assemble(("audit: FAILED: ", "bold red"), f"{result.problem} ({result.entries} entries "
                                                                    f"before it verified) in {where}"),
                     highlight=False)
        raise typer.Exit(1)
    console.print(f"[green]audit: {result.entries} entries verified[/] in {escape(where)}")
    if head is not None:
        console.print(f"anchor: {head}  (keep it outside this machine; 'rlops audit verify --anchor {head}' then "
                      "also catches entries removed from the end)", highlight=False, soft_wrap=True)


@audit_app.command("export")
def export(
    out: Annotated[Path, typer.Argument(help="File to write (JSON lines, one entry per line).")],
    start: Annotated[str | None, typer.Option("--from", help="First time included: ISO 8601 (UTC if no zone) or "
                                                             "microseconds since the epoch.", show_default=False)]
    = None,
    end: Annotated[str | None, typer.Option("--to", help="First time excluded (same forms).", show_default=False)]
    = None,
    home: HomeOption = None,
) -> None:
    """Write the log (or a time range of it) as JSON lines for an auditor; 'rlops audit verify --file' checks it."""
    from rlops.events.tables import parse_time_us

    start_us = None if start is None else parse_time_us(start, "--from")
    end_us = None if end is None else parse_time_us(end, "--to")
    with _open(home) as log:
        count = log.export(out, start_us, end_us)
    console.print(f"wrote {count:,} audit entries to {escape(str(out))}")


@audit_app.command("tail")
def tail(
    n: Annotated[int, typer.Option("-n", "--lines", min=1, help="How many of the newest entries.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")] = False,
    home: HomeOption = None,
) -> None:
    """Show the newest entries, oldest first."""
    with _open(home) as log:
        entries = log.tail(n)
    if as_json:
        for e in entries:
            console.print(json.dumps(e.to_dict(), sort_keys=True), highlight=False, soft_wrap=True, markup=False)
        return
    table = Table("seq", "when (UTC)", "actor", "action", "target", "details", "hash")
    for e in entries:
        table.add_row(str(e.seq), _when(e.ts_us), escape(e.actor), escape(e.action), escape(e.target),
                      escape(json.dumps(e.details, sort_keys=True)), e.hash[:12])
    console.print(table)


class ReportFormat(StrEnum):
    """What ``rlops audit report`` writes."""

    MD = "md"  #: Markdown, for people
    JSON = "json"  #: every number as JSON, for tools


#: Command-line option of each library field a ValidationError from the report may name.
_REPORT_OPTIONS = {"--from": "--from", "--to": "--to", "start_us": "--from", "end_us": "--to", "anchor": "--anchor"}


@audit_app.command("report")
def report(
    start: Annotated[str, typer.Option("--from", help="First time included: a date (midnight UTC), an ISO 8601 time "
                                                      "(UTC if no zone) or microseconds since the epoch.",
                                       show_default=False)],
    end: Annotated[str, typer.Option("--to", help="First time excluded (same forms); after --from.",
                                     show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", help="File to write (default: standard output).",
                                             show_default=False)] = None,
    fmt: Annotated[ReportFormat | None, typer.Option("--format", case_sensitive=False, help="md or json (default: "
                                                                                           "json if --out ends in "
                                                                                           ".json, else md).",
                                                     show_default=False)] = None,
    anchor: Annotated[str | None, typer.Option("--anchor", help="SEQ:HASH kept from an earlier verify: the chain "
                                                                "check also catches entries removed from the end.",
                                               show_default=False)] = None,
    unkeyed_until: Annotated[int, typer.Option("--unkeyed-until", min=0, help="With an audit key: entries up to "
                                                                              "this number may be plain SHA-256 "
                                                                              "(appended before the key).")] = 0,
    home: HomeOption = None,
) -> None:
    """Write the compliance report of a period: versions in production and when, gates passed or overridden,
    rollbacks, erasures, consent rates, retention runs, key and configuration changes. It starts with whether the
    audit chain verifies and names, for every section, the command that recomputes it. Exits 1 after writing the
    report when the chain does not verify; bad options exit 2."""
    from rlops.events.tables import parse_time_us
    from rlops.files import write_atomic
    from rlops.security.audit_report import compliance_report, render_json, render_markdown

    root = existing_home(home)
    try:
        start_us = parse_time_us(start, "--from")
        end_us = parse_time_us(end, "--to")
        result = compliance_report(root, start_us, end_us, anchor=anchor, unkeyed_until=unkeyed_until)
    except ValidationError as e:
        raise typer.BadParameter(e.rule, param_hint=_REPORT_OPTIONS.get(e.field, e.field)) from e
    if fmt is None:
        fmt = ReportFormat.JSON if out is not None and out.suffix.lower() == ".json" else ReportFormat.MD
    text = render_json(result) if fmt is ReportFormat.JSON else render_markdown(result)
    if out is None:
        typer.echo(text, nl=False)
    else:
        try:
            write_atomic(out, text)
        except OSError as e:
            raise StorageError(f"--out {out}: cannot write the report: {e.strerror or e}") from e
        console.print(f"wrote the compliance report to {escape(str(out))}")
    if not result.chain.ok:
        errors.print(Text.assemble(("audit: the chain does NOT verify: ", "bold red"),
                                   f"{result.chain.result.problem}; the report says so at the top"), highlight=False)
        raise typer.Exit(1)
