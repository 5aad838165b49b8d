"""What every ``rlops`` command shares: the app, the consoles, and the home-folder option.

Commands live in one module per topic (``rlops.cli.<topic>``), each decorating ``app`` (or a sub-app of its own
registered on it); ``rlops.cli.main`` imports them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from rlops.home import Home
from rlops.scale.backend import Backend

app = typer.Typer(help="rlops: take reinforcement-learning policies to production and keep them healthy there.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)

# Sub-apps that several topic modules add commands to.
deploy_app = typer.Typer(help="Create and inspect deployments.", no_args_is_help=True)
reward_app = typer.Typer(help="Reward specs: see what a reward definition does before using it.", no_args_is_help=True)
events_app = typer.Typer(help="The event log: statistics, export, compaction, ingestion of edge logs.",
                         no_args_is_help=True)
app.add_typer(deploy_app, name="deploy")
app.add_typer(reward_app, name="reward")
app.add_typer(events_app, name="events")

console = Console()
errors = Console(stderr=True, soft_wrap=True)  # an error is one line, however long

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Home folder (default: $RLOPS_HOME, else ./.rlops).", show_default=False),
]


def home_folder(path: Path | None) -> Home:
    """The home folder of a command that may create it."""
    return Home.resolve(path)


def existing_home(path: Path | None) -> Home:
    """The home folder of a read-only command: it must exist (a typo must not create an empty one)."""
    return Home.resolve(path).require()

ComputeBackend = Annotated[Backend, typer.Option(
    "--backend", help="Where the parallel work runs: local (this machine) or ray (a private Ray instance on this "
                      "machine, or the cluster $RLOPS_RAY_ADDRESS names; docs/deploy.md). Same numbers either way.")]
