"""The periodic maintenance of a home folder that no server does: what ``rlops schedule`` runs.

A running service already does some background work itself, in its supervisor's leader process
(:mod:`rlops.rollout.supervisor`): online learning, snapshots, guardrail checks, the monitor and its alerts, and
retention (:class:`rlops.security.privacy.RetentionHook`, hourly). What is left, and is done here:

* **compact** (:class:`CompactJob`): turn the event log's sealed segments into Parquet parts (at
  ``$RLOPS_EVENTS_URI`` when set), the same as ``rlops events compact``. Segments a live writer holds are left
  alone (they are compacted once sealed: at 64 MiB, when their server stops, or when an erasure or retention run
  asks for it).
* **audit** (:class:`AuditJob`): recompute the audit chain, the same as ``rlops audit verify``. It keeps the head it
  verified last (``SEQ:HASH``) and checks it again on the next run, so entries removed from the end between two runs
  are caught too, which a chain alone cannot show.

:class:`Scheduler` runs jobs on their intervals until it is asked to stop. A job that raises is logged and run
again at its next turn; it never stops the scheduler. Every run is one log line on the ``rlops.maintenance`` logger
with its job, status, duration and numbers as ``extra`` fields (``rlops schedule`` writes them as JSON lines).

Example:
    >>> scheduler = Scheduler(Home.resolve(), [Scheduled(CompactJob(), 600.0), Scheduled(AuditJob(), 3600.0)])
    >>> runs = scheduler.run_once()                     # doctest: +SKIP
    >>> [(r.job, r.result.status.value) for r in runs]  # doctest: +SKIP
    [('compact', 'ok'), ('audit', 'ok')]
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Protocol

from rlops.errors import RlopsError, ValidationError
from rlops.home import Home

log = logging.getLogger("rlops.maintenance")

#: What a job's log line may carry besides its status: counts, sizes, anchors.
Fields = Mapping[str, int | float | str | None]


class JobStatus(StrEnum):
    """How a run of a job ended."""

    OK = "ok"  # done, and nothing wrong was found
    FAILED = "failed"  # done, and it found something wrong (a broken audit chain)
    ERROR = "error"  # it could not be done (it raised); the next turn tries again


@dataclass(frozen=True)
class JobResult:
    """What one run of a job found.

    Attributes:
        status: the verdict.
        summary: one sentence for people (the log line's ``message``).
        fields: the numbers behind it, each becomes a field of the log line.
    """

    status: JobStatus
    summary: str
    fields: Fields = field(default_factory=dict)


class Job(Protocol):
    """One kind of maintenance: a name and a run over a home folder that returns what it found.

    A job may raise (a database that is down, a file that cannot be read): the scheduler logs it as an
    :attr:`JobStatus.ERROR` and runs it again at its next turn.
    """

    name: str

    def run(self, home: Home) -> JobResult: ...


class CompactJob:
    """Compact the event log's sealed segments into Parquet parts (:meth:`rlops.events.EventLog.compact`)."""

    name = "compact"

    def run(self, home: Home) -> JobResult:
        from rlops.events import EventLog

        events = EventLog(home.events)  # parts at $RLOPS_EVENTS_URI, data key from the environment or HOME/keys
        try:
            result = events.compact()
        finally:
            events.close()
        plural = "" if result.segments == 1 else "s"
        summary = (f"compacted {result.segments} sealed segment{plural} ({result.decisions:,} decisions, "
                   f"{result.outcomes:,} outcomes)" + (f"; {result.skipped} held by live writers" if result.skipped
                                                      else ""))
        return JobResult(JobStatus.OK, summary, asdict(result))


class AuditJob:
    """Verify the audit chain (:meth:`rlops.security.audit.AuditLog.verify`) against the head the last run saw.

    Args:
        unkeyed_until: with an audit key, entries up to this seq may be plain SHA-256 (appended before the key was
            configured); default 0: none may. As ``rlops audit verify --unkeyed-until``.
    """

    name = "audit"

    def __init__(self, unkeyed_until: int = 0) -> None:
        if isinstance(unkeyed_until, bool) or not isinstance(unkeyed_until, int) or unkeyed_until < 0:
            raise ValidationError("unkeyed_until", f"must be a whole number >= 0, not {unkeyed_until!r}")
        self.unkeyed_until = unkeyed_until
        #: ``SEQ:HASH`` of the newest entry when the chain last verified (None before the first good run).
        self.anchor: str | None = None

    def run(self, home: Home) -> JobResult:
        from rlops.security.audit import AuditLog

        with AuditLog.for_home(home) as audit:
            result = audit.verify(anchor=self.anchor, unkeyed_until=self.unkeyed_until)
            if not result.ok:
                return JobResult(JobStatus.FAILED, f"audit chain broken: {result.problem}",
                                 {"entries": result.entries, "first_bad_seq": result.first_bad_seq,
                                  "problem": None if result.kind is None else result.kind.value,
                                  "anchor": self.anchor})
            self.anchor = audit.anchor()
        return JobResult(JobStatus.OK, f"audit chain verified: {result.entries} entries",
                         {"entries": result.entries, "anchor": self.anchor})


@dataclass(frozen=True)
class Scheduled:
    """A job and how often it runs.

    Attributes:
        job: what to run.
        every_s: seconds from the start of one run to the start of the next (> 0).
    """

    job: Job
    every_s: float

    def __post_init__(self) -> None:
        if isinstance(self.every_s, bool) or not isinstance(self.every_s, int | float) \
                or not (math.isfinite(self.every_s) and self.every_s > 0):
            raise ValidationError(f"{self.job.name}.every_s", f"must be a positive number of seconds, not "
                                                              f"{self.every_s!r}")


@dataclass(frozen=True)
class JobRun:
    """One run of one job.

    Attributes:
        job: the job's name.
        run: which run of this job it was in this scheduler (from 1).
        started: when it started, seconds since the epoch.
        duration_s: how long it took, seconds.
        result: what it found.
    """

    job: str
    run: int
    started: float
    duration_s: float
    result: JobResult

    @property
    def ok(self) -> bool:
        return self.result.status is JobStatus.OK


class Scheduler:
    """Run maintenance jobs over one home folder, each on its own interval, one at a time.

    Every job is due at the start; after a run it is due again ``every_s`` after that run started (a run that took
    longer than its interval is followed by the next one at once, not by a burst of catch-up runs).

    Args:
        home: the home folder.
        jobs: the jobs and their intervals; job names must be unique.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(self, home: Home, jobs: Sequence[Scheduled], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        names = [s.job.name for s in jobs]
        if not names:
            raise ValidationError("jobs", "give at least one job to schedule")
        if len(set(names)) != len(names):
            raise ValidationError("jobs", f"job names must be unique, got {names}")
        self.home, self.jobs, self.clock = home, list(jobs), clock
        self._runs: dict[str, int] = dict.fromkeys(names, 0)
        #: The latest run of each job that has run.
        self.latest: dict[str, JobRun] = {}

    @property
    def healthy(self) -> bool:
        """Whether the latest run of every job that has run ended :attr:`JobStatus.OK`."""
        return all(run.ok for run in self.latest.values())

    def run_job(self, job: Job) -> JobRun:
        """Run ``job`` once, log the run (one line) and return it; never raises an ``Exception``."""
        self._runs[job.name] += 1
        started, began = time.time(), self.clock()
        traceback = False
        try:
            result = job.run(self.home)
        except RlopsError as e:  # an error rlops raised on purpose: its message says it all
            result = JobResult(JobStatus.ERROR, f"{job.name} did not run: {e}", {"error": type(e).__name__})
        except Exception as e:  # anything else is a bug or an outage: keep the traceback for whoever looks
            result = JobResult(JobStatus.ERROR, f"{job.name} did not run: {type(e).__name__}: {e}",
                               {"error": type(e).__name__})
            traceback = True
        run = JobRun(job.name, self._runs[job.name], started, self.clock() - began, result)
        self.latest[job.name] = run
        _log_run(run, traceback=traceback)
        return run

    def run_once(self) -> list[JobRun]:
        """Run every job once, in order, and return the runs."""
        return [self.run_job(s.job) for s in self.jobs]

    def run(self, stop: threading.Event, *, wait: Callable[[float], object] | None = None) -> None:
        """Run jobs whenever they are due until ``stop`` is set.

        ``stop`` is looked at between jobs: a job that has started runs to its end (set it from a signal handler
        for a graceful stop). See :attr:`latest` and :attr:`healthy` for what the runs found.

        Args:
            stop: set it to stop.
            wait: sleeps up to the given seconds, returning early once ``stop`` is set (default ``stop.wait``;
                tests pass one that moves a fake clock).
        """
        sleep = stop.wait if wait is None else wait
        due = dict.fromkeys(range(len(self.jobs)), self.clock())
        while not stop.is_set():
            for i, scheduled in enumerate(self.jobs):
                if stop.is_set():
                    return
                if due[i] <= self.clock():
                    began = self.clock()
                    self.run_job(scheduled.job)
                    due[i] = began + scheduled.every_s
            pause = min(due.values()) - self.clock()
            if pause > 0 and not stop.is_set():
                sleep(pause)


#: Names a job's fields may not take in a log line (the record's own, and the run's): they get a ``_`` appended.
_RESERVED = {*logging.LogRecord("", 0, "", 0, "", (), None).__dict__, "message", "asctime", "job", "run", "status",
             "duration_ms"}


def _log_run(run: JobRun, *, traceback: bool = False) -> None:
    """One line per run: INFO when it went well, ERROR otherwise (with the traceback of an unexpected error)."""
    fields = {f"{k}_" if k in _RESERVED else k: v for k, v in run.result.fields.items()}
    log.log(logging.INFO if run.ok else logging.ERROR, run.result.summary, exc_info=traceback,
            extra={"job": run.job, "run": run.run, "status": run.result.status.value,
                   "duration_ms": round(run.duration_s * 1000, 3), **fields})
