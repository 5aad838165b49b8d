"""``rlops encryption``: the data key of a home folder (status, init, rotate); thin over :mod:`rlops.encryption` and
:mod:`rlops.security.rotation`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rlops.cli.common import HomeOption, app, console, errors, existing_home

encryption_app = typer.Typer(help="Encryption at rest of the event log and policy artefacts: key status, "
                                  "creation and rotation.", no_args_is_help=True)
app.add_typer(encryption_app, name="encryption")


@encryption_app.command("status")
def status(home: HomeOption = None) -> None:
    """Show where the data key comes from, its id, and how many files each key (or no key) holds."""
    from rlops.encryption import KeySource
    from rlops.security.rotation import FileKind
    from rlops.security.rotation import status as encryption_status

    found = encryption_status(existing_home(home))
    keyring = found.keyring
    if not keyring.enabled:
        console.print("encryption at rest: [bold]off[/] (no RLOPS_DATA_KEY, no keys/data_key); "
                      "'rlops encryption init' turns it on")
    else:
        where = "RLOPS_DATA_KEY" if keyring.source is KeySource.ENVIRONMENT else escape(str(keyring.path))
        old = keyring.key_ids[1:]
        console.print(f"encryption at rest: [bold]on[/], current key [bold]{keyring.current.key_id}[/] (from {where})"
                      + (f"; old keys still configured: {', '.join(old)}" if old else ""), soft_wrap=True)
        if old and keyring.source is KeySource.FILE:
            console.print("a rotation is unfinished: run 'rlops encryption rotate' to finish it")
    counts = found.counts()
    used = {k for c in counts.values() for k in c}
    current = keyring.current.key_id if keyring.enabled else None
    columns = ([current] if current is not None and current in used else []) + \
        sorted(k for k in used if k is not None and k != current) + ([None] if None in used else [])
    table = Table("files")
    for key in columns:
        label = "plaintext" if key is None else f"key {key}"
        if key is not None and key == current:
            label += " (current)"
        elif key is not None and key not in keyring.key_ids:
            label += " (missing!)"
        table.add_column(label, justify="right")
    for kind in FileKind:
        table.add_row(kind.value, *(f"{counts[kind][k]:,}" for k in columns))
    console.print(table)
    active = [f for f in found.files if f.active]
    if active:
        console.print(f"{len(active)} active segment(s) held by a running writer: a rotation skips them; they are "
                      "compacted into encrypted Parquet once sealed")
    if found.unknown_keys():
        errors.print(f"[bold red]files need keys that are not configured[/]: {', '.join(found.unknown_keys())}")
        raise typer.Exit(1)


@encryption_app.command("init")
def init(
    print_key: Annotated[bool, typer.Option("--print", help="Print a new key for RLOPS_DATA_KEY instead of writing "
                                                            "the key file.")] = False,
    home: HomeOption = None,
) -> None:
    """Turn encryption at rest on: create HOME/keys/data_key (mode 0600) holding a new random key.

    From then on the event log and policy artefacts are written encrypted; files written before stay readable in
    plaintext until 'rlops encryption rotate' encrypts them. Back the key up: without it the data cannot be read.
    """
    from rlops.encryption import ENV_VAR, DataKey, KeySource, load_keyring
    from rlops.security.rotation import create_key

    if print_key:
        key = DataKey.generate()
        console.print(key.to_base64(), highlight=False, markup=False, soft_wrap=True)
        errors.print(f"key id {key.key_id}: set {ENV_VAR} to it (keep it secret and backed up)")
        return
    folder = existing_home(home)
    key = create_key(folder)
    console.print(f"created data key [bold]{key.key_id}[/] in {escape(str(folder.keys))} (mode 0600)")
    if load_keyring(folder.keys).source is KeySource.ENVIRONMENT:
        errors.print(f"[bold yellow]{ENV_VAR} is set and takes precedence over the key file[/]")
    errors.print("Back this key up outside the home folder: without it the encrypted data cannot be read. Files "
                 "written before stay plaintext until 'rlops encryption rotate'.")


@encryption_app.command("rotate")
def rotate(
    new_key: Annotated[bool, typer.Option("--new-key/--no-new-key", help="Make a new key (default), or only move "
                                                                         "every file under the current key.")] = True,
    home: HomeOption = None,
) -> None:
    """Make a new data key and re-encrypt every encrypted (and plaintext) file under it, then drop the old key.

    Each file is rewritten atomically; the old key stays in the key file until no file needs it, so interrupting
    is safe: run it again to finish. Segments still being written are skipped (and said so). Exits 1 when the
    rotation could not finish.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    from rlops.security.rotation import rotate as rotate_home

    folder = existing_home(home)
    with Progress(TextColumn("re-encrypting"), BarColumn(), MofNCompleteColumn(), console=console,
                  transient=True) as bar:
        task: list[TaskID] = []

        def update(done: int, total: int, _path: object) -> None:
            if not task:
                task.append(bar.add_task("files", total=total))
            bar.update(task[0], completed=done, total=total)

        result = rotate_home(folder, new_key=new_key, progress=update)
    made = "new key" if result.created else "key"
    console.print(f"{made} [bold]{result.key_id}[/]: {result.rekeyed:,} file(s) re-encrypted")
    if result.retired:
        console.print(f"old key(s) {', '.join(result.retired)} removed from the key file: no file needs them")
    if result.removable:
        console.print(f"no file needs key(s) {', '.join(result.removable)} any more: remove them from RLOPS_DATA_KEY")
    for path in result.active:
        errors.print(f"skipped {escape(str(path))}: a running process is writing it (it is compacted into encrypted "
                     "Parquet once sealed; run the rotation again then)")
    for path in result.damaged:
        errors.print(f"[bold red]damaged[/]: {escape(str(path))} fails its authentication tag; restore it from a "
                     "backup")
    if not result.complete:
        kept = f"; old key(s) {', '.join(result.kept)} kept (still needed)" if result.kept else ""
        errors.print(f"[bold yellow]rotation incomplete[/]: {len(result.remaining)} file(s) not yet under key "
                     f"{result.key_id}{kept}; run 'rlops encryption rotate' again later")
        raise typer.Exit(1)
    console.print("rotation complete: every file is under the current key")
