"""``rlops``: thin commands over the library. Errors print one clear line and exit non-zero."""

from __future__ import annotations

import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from rlops import __version__
from rlops.cli.common import HomeOption, app, console, deploy_app, errors, events_app, reward_app
from rlops.cli.common import existing_home as _existing_home
from rlops.cli.common import home_folder as _home
from rlops.errors import RlopsError
from rlops.scale.backend import Backend

# Topic modules add their commands to ``app`` when imported.
from rlops.cli import data as _data  # noqa: F401  isort: skip
from rlops.cli import plan as _plan  # noqa: F401  isort: skip
from rlops.cli import validate as _validate  # noqa: F401  isort: skip
from rlops.cli import export as _export  # noqa: F401  isort: skip
from rlops.cli import models as _models  # noqa: F401  isort: skip
from rlops.cli import demo as _demo  # noqa: F401  isort: skip
from rlops.cli import rollout as _rollout  # noqa: F401  isort: skip
from rlops.cli import alerts as _alerts  # noqa: F401  isort: skip
from rlops.cli import monitor as _monitor  # noqa: F401  isort: skip
from rlops.cli import loop as _loop  # noqa: F401  isort: skip
from rlops.cli import keys as _keys  # noqa: F401  isort: skip
from rlops.cli import audit as _audit  # noqa: F401  isort: skip
from rlops.cli import privacy as _privacy  # noqa: F401  isort: skip
from rlops.cli import encryption as _encryption  # noqa: F401  isort: skip
from rlops.cli import explain as _explain  # noqa: F401  isort: skip
from rlops.cli import schedule as _schedule  # noqa: F401  isort: skip

if TYPE_CHECKING:
    from rlops.service import ServiceSettings



class ExportFormat(StrEnum):
    PARQUET = "parquet"


@app.command()
def version() -> None:
    """Print the rlops version."""
    console.print(__version__)


@app.command()
def init(
    home: HomeOption = None,
    key_file: Annotated[Path | None, typer.Option("--key-file", help="Write the first admin key to this new file "
                                                  "(mode 0600) instead of printing it.")] = None,
) -> None:
    """Create the home folder layout (metadata database, event log, deployments) and, in a home without any API
    key, the first admin key: shown once, stored only as a hash. Running it again changes nothing."""
    import os

    from rlops.engine import Engine
    from rlops.security import KeyStore

    with Engine(_home(home)) as engine, KeyStore.for_home(engine.home) as keys:
        made = keys.bootstrap()
        console.print(f"rlops home ready at [bold]{escape(str(engine.home.root))}[/]")
    if made is None:
        console.print("API keys exist already: none created (see 'rlops keys list').")
        return
    record, secret = made
    if key_file is not None:
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as e:
            console.print(f"[red]--key-file: cannot create {escape(str(key_file))}: {escape(e.strerror or str(e))}"
                          f"; revoke key {record.id} with 'rlops keys revoke {record.id}' and create another[/]")
            raise typer.Exit(1) from e
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
        console.print(f"first admin key {record.id} written to {escape(str(key_file))} (mode 0600)")
        return
    console.print(f"first admin key (id {record.id}), shown only this once; keep it in a secret store:")
    console.print(secret, markup=False, highlight=False, soft_wrap=True)
    console.print("Use it to create narrower keys: rlops keys create --role decider --scope deployment:NAME")


@app.command()
def serve(
    home: HomeOption = None,
    host: Annotated[str, typer.Option(envvar="RLOPS_HOST", help="Interface to bind (loopback by default).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, envvar="RLOPS_PORT", help="TCP port (0 picks a free one; "
                                                                                 "not with --backend ray).")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, envvar="RLOPS_WORKERS",
                                         help="Server processes sharing the port and the home folder's event "
                                              "log (local backend).")] = 1,
    backend: Annotated[Backend, typer.Option(envvar="RLOPS_SERVE_BACKEND",
                                             help="local (uvicorn processes on this machine) or ray (Ray Serve "
                                                  "replicas; docs/deploy.md).")] = Backend.LOCAL,
    replicas: Annotated[int, typer.Option(min=1, max=1024, envvar="RLOPS_REPLICAS",
                                          help="Ray Serve replicas (--backend ray).")] = 1,
    ray_address: Annotated[str | None, typer.Option("--ray-address", envvar="RLOPS_RAY_ADDRESS",
                                                    help="Ray cluster to join (auto, HOST:PORT or "
                                                         "ray://HOST:10001); default: a private Ray instance on "
                                                         "this machine.", show_default=False)] = None,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="Serve HTTPS with this PEM certificate "
                                                  "(chain); needs --tls-key. Also $RLOPS_TLS_CERT.")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="The certificate's PEM private key. Also "
                                                 "$RLOPS_TLS_KEY.")] = None,
) -> None:
    """Serve every deployment in the home folder over HTTP or HTTPS (decide, outcomes, decisions; OpenAPI at /docs).

    Every route but /healthz, /readyz and the dashboard's page needs an API key (`rlops init` makes the first one,
    `rlops keys create` more); see docs/security.md. Every option can also be set by its environment variable
    (RLOPS_HOST, RLOPS_PORT, RLOPS_WORKERS, RLOPS_SERVE_BACKEND, RLOPS_REPLICAS, RLOPS_RAY_ADDRESS; the rest in
    docs/deploy.md)."""
    import signal

    import pydantic
    import uvicorn

    from rlops.service import ServiceSettings, configure_logging, create_app

    if backend is Backend.RAY and workers > 1:
        raise typer.BadParameter("--workers is for the local backend; with --backend ray use --replicas",
                                 param_hint="'--workers'")
    if backend is Backend.RAY and port == 0:
        raise typer.BadParameter("Ray Serve's proxy needs a fixed port", param_hint="'--port'")
    if backend is Backend.LOCAL and replicas > 1:
        raise typer.BadParameter("--replicas is for --backend ray; the local backend has --workers",
                                 param_hint="'--replicas'")
    try:
        settings = ServiceSettings.from_env(_existing_home(home).root, host=host, port=port, workers=workers,
                                            tls_cert=tls_cert, tls_key=tls_key)
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise typer.BadParameter(str(first["msg"]).removeprefix("Value error, "),
                                 param_hint=f"'{where.replace('_', '-')}'") from e
    configure_logging()
    if backend is Backend.RAY:
        from rlops.scale.ray_serve import serve_on_ray

        serve_on_ray(settings, replicas, address=ray_address, say=lambda line: console.print(escape(line)))
        return
    if settings.workers == 1:
        console.print(f"serving {escape(str(settings.home))} on {settings.scheme}://{settings.host}:{settings.port} "
                      "(docs at /docs)")
        # uvicorn stops gracefully on SIGTERM and then raises the signal again with the handler it found: make that
        # one a no-op, so that a clean stop exits 0 (what supervisors and container engines read as success).
        signal.signal(signal.SIGTERM, lambda *_: None)
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning",
                    **settings.uvicorn_tls())
        return
    _serve_workers(settings)


def _serve_workers(settings: ServiceSettings) -> None:
    """Bind the port here, then run ``settings.workers`` processes on it (uvicorn's supervisor restarts any that
    die). Each rebuilds its settings from ``RLOPS_*`` variables; their metrics meet in a shared folder."""
    import os
    import shutil
    import socket

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    shared = settings.home / "run" / f"metrics-{os.getpid()}"
    shutil.rmtree(shared, ignore_errors=True)
    shared.mkdir(parents=True)
    config = uvicorn.Config("rlops.service.app:app_from_env", factory=True, host=settings.host, port=settings.port,
                            workers=settings.workers, log_level="warning", **settings.uvicorn_tls())
    sock = config.bind_socket()
    # uvicorn hands this socket to the workers as it is; without TCP_NODELAY every answer waits for the client's
    # delayed ACK (about 40 ms on Linux), which capped one keep-alive connection at ~20 requests/s.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bound = settings.model_copy(update={"port": sock.getsockname()[1]})
    os.environ.update({**bound.to_env(), "PROMETHEUS_MULTIPROC_DIR": str(shared)})
    console.print(f"serving {escape(str(settings.home))} on {settings.scheme}://{bound.host}:{bound.port} with "
                  f"{settings.workers} worker processes (docs at /docs)")
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
        shutil.rmtree(shared, ignore_errors=True)


@deploy_app.command("apply")
def deploy_apply(file: Annotated[Path, typer.Argument(help="Deployment YAML file.")], home: HomeOption = None) -> None:
    """Create or update a deployment from a YAML file (idempotent: an unchanged file makes no new revision)."""
    from rlops.engine import Engine

    with Engine(_home(home)) as engine:
        result = engine.apply(file)
    state = "created revision" if result.created else "unchanged at revision"
    console.print(f"deployment [bold]{result.name}[/]: {state} {result.revision} "
                  f"(policy version {result.policy_version})")


@deploy_app.command("list")
def deploy_list(home: HomeOption = None) -> None:
    """List deployments with their live revision."""
    from rlops.engine import Engine

    with Engine(_existing_home(home)) as engine:
        table = Table("deployment", "revision", "policy", "reward spec", "applied")
        for rev in engine.deployments():
            spec = rev.deployment_spec()  # from the stored revision: listing never loads a policy
            applied = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(rev.created_at))
            table.add_row(rev.name, str(rev.revision), str(spec.policy.kind or spec.policy.path), spec.reward.ref,
                          applied)
    console.print(table)


@reward_app.command("preview")
def reward_preview(
    spec: Annotated[Path, typer.Argument(help="Reward spec YAML file.")],
    events: Annotated[Path, typer.Option("--events", "--home", help="Home folder whose event log to compute over.")],
    deployment: Annotated[str | None, typer.Option(help="Only this deployment's decisions.")] = None,
    bins: Annotated[int, typer.Option(min=2, max=100, help="Histogram bins.")] = 20,
) -> None:
    """Show the distribution of rewards a spec computes over logged outcomes (count, mean, quantiles, histogram)."""
    from rlops.engine.reports import preview_rewards
    from rlops.rewards import RewardSpec, text_histogram

    reward = RewardSpec.load(spec)
    result = preview_rewards(_existing_home(events), reward, deployment=deployment, bins=bins)
    s = result.summary
    table = Table("count", "mean", "std", "min", "p5", "p25", "median", "p75", "p95", "max",
                  title=f"rewards of {reward.ref} over {escape(str(result.home))}")
    table.add_row(f"{s.count:,}", *(f"{v:.4g}" for v in (s.mean, s.std, s.min, s.quantiles[0.05],
                                                          s.quantiles[0.25], s.quantiles[0.5], s.quantiles[0.75],
                                                          s.quantiles[0.95], s.max)))
    console.print(table)
    for line in text_histogram(s):
        console.print(line, highlight=False)
    console.print(f"from outcomes: {result.from_outcomes:,}; default reward (no outcome in window): "
                  f"{result.defaulted:,}; dead-lettered under this spec: {result.dead_letters:,}"
                  + (f" (most common: {escape(result.top_reason)})" if result.top_reason else ""))


@events_app.command("stats")
def events_stats(home: HomeOption = None) -> None:
    """Decisions, outcomes, joined rewards and dead letters per deployment, and the log's storage."""
    from rlops.engine import Engine
    from rlops.engine.reports import deployment_stats

    with Engine(_existing_home(home)) as engine:
        rows, storage = deployment_stats(engine)
    table = Table("deployment", "decisions", "outcomes", "duplicates", "joined", "defaulted", "pending",
                  "dead letters", "mean reward", title=f"event log at {escape(str(_existing_home(home).events))}")
    for r in rows:
        table.add_row(r.deployment, f"{r.decisions:,}", f"{r.outcomes:,}", f"{r.duplicates:,}", f"{r.joined:,}",
                      f"{r.defaulted:,}", f"{r.pending:,}", f"{r.dead_letters:,}",
                      "" if r.mean_reward is None else f"{r.mean_reward:.4f}")
    console.print(table)
    console.print(storage)


@events_app.command("export")
def events_export(
    out: Annotated[Path, typer.Option("--out", help="Folder to write Parquet files into.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="Output format.")] = ExportFormat.PARQUET,
    deployment: Annotated[str | None, typer.Option(help="Only this deployment.")] = None,
    home: HomeOption = None,
) -> None:
    """Write decisions, outcomes, joined interactions (per deployment) and dead letters as Parquet files."""
    from rlops.engine import Engine
    from rlops.engine.reports import export_parquet

    with Engine(_existing_home(home)) as engine:
        written = export_parquet(engine, out, deployment=deployment)
    for path, rows in written:
        console.print(f"{rows:>10,} rows  {escape(str(path))}")


@events_app.command("compact")
def events_compact(home: HomeOption = None) -> None:
    """Move sealed log segments into Parquet parts (safe while servers keep appending)."""
    from rlops.events import EventLog

    log = EventLog(_existing_home(home).events)
    try:
        log.rotate()
        result = log.compact()
    finally:
        log.close()
    console.print(f"compacted {result.segments} segments: {result.decisions:,} decisions, "
                  f"{result.outcomes:,} outcomes")


def main(argv: list[str] | None = None) -> int:
    """Entry point: usage errors exit 2 with typer's message; rlops errors print one line and exit 1."""
    try:
        app(args=argv, prog_name="rlops")  # standalone: typer reports usage errors itself and raises SystemExit
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except RlopsError as e:
        errors.print(Text.assemble(("error: ", "bold red"), str(e)), highlight=False)  # no markup in messages
        return 1
    except KeyboardInterrupt:
        errors.print("interrupted; everything acknowledged so far is stored")
        return 130
    return 0


def run() -> None:
    sys.exit(main())
