"""``rlops keys``: API keys (create, shown once; list; revoke); thin over :mod:`rlops.security`."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rlops.cli.common import HomeOption, app, console, errors, existing_home
from rlops.security.permissions import Role

if TYPE_CHECKING:
    from rlops.security import KeyStore, Scope

keys_app = typer.Typer(help="API keys: create (the key is shown once), list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

ActorOption = Annotated[str | None, typer.Option("--actor", help="Who does this (default: the OS user).",
                                                 show_default=False)]


def _when(us: int | None) -> str:
    return "-" if us is None else dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _open(path: HomeOption) -> KeyStore:
    from rlops.security import KeyStore

    return KeyStore.for_home(existing_home(path))


def _scope(terms: list[str] | None) -> Scope:
    from rlops.errors import ValidationError
    from rlops.security import Scope

    try:
        return Scope.parse(terms or [], "--scope")
    except ValidationError as e:
        raise typer.BadParameter(e.rule, param_hint="'--scope'") from e


@keys_app.command("create")
def create(
    role: Annotated[Role, typer.Option("--role", help="What the key may do (see docs/security.md).",
                                       case_sensitive=False)],
    scope: Annotated[list[str] | None, typer.Option(
        "--scope", help="Narrow the key (repeatable): deployment:NAME (only that deployment; repeat for several), "
                        "read-only, own-outcomes (outcomes only for decisions this key made).",
        show_default=False)] = None,
    name: Annotated[str | None, typer.Option("--name", help="A name to recognise the key by.",
                                             show_default=False)] = None,
    actor: ActorOption = None,
    home: HomeOption = None,
) -> None:
    """Create an API key and print it once: only its hash is stored, so it cannot be shown again."""
    from rlops.errors import ValidationError

    narrowed = _scope(scope)
    with _open(home) as store:
        try:
            record, key = store.create(role, narrowed, name=name, actor=actor)
        except ValidationError as e:
            if e.field != "scope":
                raise
            raise typer.BadParameter(e.rule, param_hint="'--scope'") from e
    terms = ", ".join(record.scope.terms()) or "unrestricted"
    console.print(f"created API key [bold]{record.id}[/] (role {record.role.value}, scope {escape(terms)}"
                  + (f", name {escape(record.name)!r}" if record.name else "") + ")")
    console.print(key, highlight=False, markup=False, soft_wrap=True)
    errors.print("[bold yellow]This is the only time the key is shown[/]: store it now (a secret manager, not a "
                 "repository). If it is lost, revoke it and create another.")


@keys_app.command("list")
def list_keys(
    active: Annotated[bool, typer.Option("--active", help="Only keys that are not revoked.")] = False,
    home: HomeOption = None,
) -> None:
    """List API keys: id, name, role, scope, when created, last used and revoked (never the secret)."""
    with _open(home) as store:
        records = store.list(include_revoked=not active)
    table = Table()
    table.add_column("id", no_wrap=True, min_width=12)
    for header in ("name", "role", "scope", "created (UTC)", "by", "last used", "revoked"):
        table.add_column(header, overflow="fold")  # a narrow terminal wraps a cell rather than cutting it
    for r in records:
        revoked = "-" if r.revoked_at_us is None else f"{_when(r.revoked_at_us)} by {r.revoked_by}"
        table.add_row(r.id, escape(r.name) or "-", r.role.value, escape(", ".join(r.scope.terms())) or "-",
                      _when(r.created_at_us), escape(r.created_by), _when(r.last_used_at_us), escape(revoked),
                      style="dim" if not r.active else None)
    console.print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (as 'rlops keys list' shows it).")],
    actor: ActorOption = None,
    home: HomeOption = None,
) -> None:
    """Revoke an API key for good: it fails authentication from now on."""
    with _open(home) as store:
        before = store.get(key_id)
        record = store.revoke(key_id, actor=actor)
    state = "revoked" if before.active else "was already revoked"
    console.print(f"API key [bold]{record.id}[/] {state} at {_when(record.revoked_at_us)} UTC by "
                  f"{escape(record.revoked_by or '-')}")
