"""``rlops schedule``: the scheduler process, the home folder's periodic maintenance (:mod:`rlops.maintenance`)."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Annotated

import typer

from rlops.cli.common import HomeOption, app, existing_home

#: The interval value that turns a job off.
OFF = "off"


def _interval(value: str, option: str, env: str) -> float | None:
    """An interval option's seconds (a duration such as ``10m``, ``1h`` or ``90``), or None for ``off``."""
    from rlops.rewards import parse_duration

    if value.strip().lower() == OFF:
        return None
    try:
        return parse_duration(value.strip())
    except ValueError as e:
        raise typer.BadParameter(f"{e} (or {OFF!r} to turn the job off)", param_hint=f"'{option}' (or ${env})") from e


@contextlib.contextmanager
def _json_logs() -> Iterator[None]:
    """Every ``rlops.*`` log line to stderr as JSON while the command runs (as ``rlops serve`` logs)."""
    from rlops.service.observability import JSONFormatter

    logger = logging.getLogger("rlops")
    saved = logger.handlers[:], logger.level, logger.propagate
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event, received: list[str]) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (the job running finishes first); a second one interrupts at once."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command()
def schedule(
    compact_every: Annotated[str, typer.Option(
        "--compact-every", envvar="RLOPS_COMPACT_EVERY", metavar="DURATION",
        help="Compact the event log's sealed segments into Parquet parts this often ('off': never).")] = "10m",
    audit_every: Annotated[str, typer.Option(
        "--audit-every", envvar="RLOPS_AUDIT_EVERY", metavar="DURATION",
        help="Verify the audit chain this often ('off': never).")] = "1h",
    audit_unkeyed_until: Annotated[int, typer.Option(
        "--audit-unkeyed-until", envvar="RLOPS_AUDIT_UNKEYED_UNTIL", min=0,
        help="With an audit key: entries up to this number may be plain SHA-256 (appended before the key), as "
             "'rlops audit verify --unkeyed-until'.")] = 0,
    once: Annotated[bool, typer.Option("--once", help="Run every job once and exit (for cron or a Kubernetes "
                                                      "CronJob).")] = False,
    home: HomeOption = None,
) -> None:
    """Run the home folder's periodic maintenance until SIGTERM or Ctrl-C: compact sealed event-log segments and
    verify the audit chain (the server does retention, monitoring and snapshots itself).

    One JSON line per job run on stderr; a job that fails is logged and tried again at its next turn.

    SIGTERM or Ctrl-C lets the running job finish, then exits: 1 if the latest run of some job failed, else 0.
    """
    from rlops.maintenance import AuditJob, CompactJob, Scheduled, Scheduler

    compact_s = _interval(compact_every, "--compact-every", "RLOPS_COMPACT_EVERY")
    audit_s = _interval(audit_every, "--audit-every", "RLOPS_AUDIT_EVERY")
    jobs = [] if compact_s is None else [Scheduled(CompactJob(), compact_s)]
    if audit_s is not None:
        jobs.append(Scheduled(AuditJob(audit_unkeyed_until), audit_s))
    if not jobs:
        raise typer.BadParameter("every job is off; turn one on", param_hint="'--compact-every' / '--audit-every'")
    scheduler = Scheduler(existing_home(home), jobs)
    log = logging.getLogger("rlops.maintenance")
    with _json_logs():
        if once:
            scheduler.run_once()
        else:
            stop, received = threading.Event(), list[str]()
            log.info("scheduler started", extra={"home": str(scheduler.home.root), "jobs": {
                s.job.name: s.every_s for s in jobs}})
            with _stop_on_signals(stop, received):
                scheduler.run(stop)
            log.info("scheduler stopped", extra={"signal": received[0] if received else None,
                                                 "healthy": scheduler.healthy})
    if not scheduler.healthy:
        raise typer.Exit(1)
