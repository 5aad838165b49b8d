"""The scheduler's jobs and timing (:mod:`rlops.maintenance`): intervals on a fake clock, a failing job logged and
retried, compaction into ``$RLOPS_EVENTS_URI``, and the audit chain checked against the head the last run saw."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from rlops.errors import StorageError, ValidationError
from rlops.events import DecisionRecord, EventLog, Mode, OutcomeRecord
from rlops.home import Home
from rlops.maintenance import AuditJob, CompactJob, JobResult, JobStatus, Scheduled, Scheduler
from rlops.security.audit import AuditAction, AuditLog

T0 = 1_700_000_000_000_000


class FakeClock:
    """Fake monotonic seconds; moving it to ``end`` or past it sets ``stop``."""

    def __init__(self) -> None:
        self.t, self.end, self.stop = 0.0, float("inf"), threading.Event()

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
        if self.t >= self.end:
            self.stop.set()


class Recorder:
    """A job that notes when it ran (on the fake clock), takes ``takes`` fake seconds and raises on given runs."""

    def __init__(self, name: str, clock: FakeClock, *, takes: float = 0.0, raises: dict[int, Exception] | None = None):
        self.name, self.clock, self.takes, self.raises = name, clock, takes, raises or {}
        self.starts: list[float] = []

    def run(self, home: Home) -> JobResult:
        self.starts.append(self.clock.t)
        self.clock.advance(self.takes)
        error = self.raises.get(len(self.starts))
        if error is not None:
            raise error
        return JobResult(JobStatus.OK, f"{self.name} done", {"n": len(self.starts)})


def run_until(scheduler: Scheduler, clock: FakeClock, end: float) -> None:
    """Run the scheduler on the fake clock until ``end`` fake seconds."""
    clock.end = end
    clock.stop.clear()

    def wait(seconds: float) -> None:
        assert seconds > 0  # it never spins
        clock.advance(seconds)

    scheduler.run(clock.stop, wait=wait)


def test_each_job_runs_on_its_own_interval(tmp_path: Path) -> None:
    clock = FakeClock()
    compact, audit = Recorder("compact", clock), Recorder("audit", clock)
    scheduler = Scheduler(Home(tmp_path), [Scheduled(compact, 10.0), Scheduled(audit, 25.0)], clock=clock)
    run_until(scheduler, clock, 60.0)
    assert compact.starts == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    assert audit.starts == [0.0, 25.0, 50.0]
    assert scheduler.healthy and scheduler.latest["audit"].run == 3


def test_a_job_slower_than_its_interval_runs_again_at_once_without_a_burst(tmp_path: Path) -> None:
    clock = FakeClock()
    slow = Recorder("compact", clock, takes=15.0)
    run_until(Scheduler(Home(tmp_path), [Scheduled(slow, 10.0)], clock=clock), clock, 50.0)
    assert slow.starts == [0.0, 15.0, 30.0, 45.0]  # due 10 s after each start: right after the previous run


def test_a_failing_job_is_logged_and_retried_and_the_others_keep_running(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    flaky = Recorder("audit", clock, raises={1: RuntimeError("database went away"), 2: StorageError("disk full")})
    steady = Recorder("compact", clock)
    scheduler = Scheduler(Home(tmp_path), [Scheduled(flaky, 10.0), Scheduled(steady, 10.0)], clock=clock)
    with caplog.at_level(logging.INFO, logger="rlops.maintenance"):
        run_until(scheduler, clock, 15.0)
        assert not scheduler.healthy  # the latest audit run (the second) failed
        assert flaky.starts == [0.0, 10.0] and steady.starts == [0.0, 10.0]
        run_until(scheduler, clock, 25.0)
    assert flaky.starts == [0.0, 10.0, 20.0] and scheduler.healthy  # it came back on its own
    lines = [(r.job, r.run, r.status, r.levelname) for r in caplog.records]  # type: ignore[attr-defined]
    assert lines == [("audit", 1, "error", "ERROR"), ("compact", 1, "ok", "INFO"), ("audit", 2, "error", "ERROR"),
                     ("compact", 2, "ok", "INFO"), ("audit", 3, "ok", "INFO"), ("compact", 3, "ok", "INFO")]
    first, second = caplog.records[0], caplog.records[2]
    # an unexpected exception keeps its traceback; an rlops error is its one-line message
    assert first.getMessage() == "audit did not run: RuntimeError: database went away" and first.exc_info
    assert second.getMessage() == "audit did not run: disk full" and not second.exc_info
    assert caplog.records[4].n == 3  # type: ignore[attr-defined]  # the job's numbers are fields of its line


def test_run_once_runs_every_job_once_in_order(tmp_path: Path) -> None:
    clock = FakeClock()
    a, b = Recorder("compact", clock), Recorder("audit", clock, raises={1: ValueError("x")})
    runs = Scheduler(Home(tmp_path), [Scheduled(a, 600.0), Scheduled(b, 3600.0)], clock=clock).run_once()
    assert [(r.job, r.result.status) for r in runs] == [("compact", JobStatus.OK), ("audit", JobStatus.ERROR)]


def test_bad_schedules_are_refused_naming_the_field(tmp_path: Path) -> None:
    clock = FakeClock()
    for bad in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(ValidationError, match=r"compact\.every_s: must be a positive number of seconds"):
            Scheduled(Recorder("compact", clock), bad)
    with pytest.raises(ValidationError, match="jobs: job names must be unique"):
        Scheduler(Home(tmp_path), [Scheduled(Recorder("a", clock), 1.0), Scheduled(Recorder("a", clock), 2.0)])
    with pytest.raises(ValidationError, match="jobs: give at least one job"):
        Scheduler(Home(tmp_path), [])
    with pytest.raises(ValidationError, match="unkeyed_until"):
        AuditJob(-1)


def decision(i: int) -> DecisionRecord:
    return DecisionRecord(f"d-{i:05d}", T0 + i, "news", "news@r1", Mode.SERVED, f"u{i}", {"i": i}, ["a", "b"], "a", 0,
                          0.5, [0.5, 0.5])


def outcome(i: int) -> OutcomeRecord:
    return OutcomeRecord(f"d-{i:05d}", T0 + 1000 + i, {"clicked": True}, f"k-{i}")


def test_compact_moves_sealed_segments_to_the_events_uri_and_leaves_live_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = tmp_path / "bucket" / "parts"
    monkeypatch.setenv("RLOPS_EVENTS_URI", parts.as_uri())
    home = Home(tmp_path / "home")
    with EventLog(home.events) as sealed:
        sealed.append([decision(i) for i in range(3)])
        sealed.append([outcome(0), outcome(1)])
    live = EventLog(home.events)
    try:
        live.append([decision(9)])  # a writer that is still running holds its segment
        result = CompactJob().run(home)
        assert result.status is JobStatus.OK
        assert (result.fields["segments"], result.fields["decisions"], result.fields["outcomes"],
                result.fields["skipped"]) == (1, 3, 2, 1)
        assert result.summary == "compacted 1 sealed segment (3 decisions, 2 outcomes); 1 held by live writers"
        assert sorted(p.parent.name for p in parts.rglob("*.parquet")) == ["decisions", "outcomes"]
        assert not list(home.events.rglob("*.parquet"))  # nothing lands in the home's own folder
        assert CompactJob().run(home).fields["segments"] == 0  # nothing twice
    finally:
        live.close()
    assert CompactJob().run(home).fields["decisions"] == 1  # the closed writer's segment is sealed now


@pytest.fixture
def audited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    monkeypatch.delenv("RLOPS_AUDIT_KEY", raising=False)
    home = Home(tmp_path / "home").ensure()
    with AuditLog.for_home(home) as log:
        for i in range(5):
            log.append("alice", AuditAction.STAGE_CHANGE, f"news@{i}", {"to": "shadow"})
    return home


def test_audit_names_an_altered_entry(audited: Home) -> None:
    job = AuditJob()
    ok = job.run(audited)
    assert ok.status is JobStatus.OK and ok.fields["entries"] == 5 and str(ok.fields["anchor"]).startswith("5:")
    with sqlite3.connect(audited.meta_db) as db:
        db.execute("UPDATE audit_log SET target = 'news@9' WHERE seq = 3")
    broken = job.run(audited)
    assert broken.status is JobStatus.FAILED and broken.fields["first_bad_seq"] == 3
    assert broken.summary.startswith("audit chain broken: entry 3") and "altered" in broken.summary


def test_audit_catches_entries_removed_from_the_end_since_its_last_run(audited: Home) -> None:
    job = AuditJob()
    assert job.run(audited).status is JobStatus.OK
    with sqlite3.connect(audited.meta_db) as db:
        db.execute("DELETE FROM audit_log WHERE seq = 5")
    assert AuditJob().run(audited).status is JobStatus.OK  # the shortened chain is whole on its own ...
    broken = job.run(audited)  # ... but this job saw entry 5 last time
    assert broken.status is JobStatus.FAILED and "removed from the end" in broken.summary
    assert broken.fields["first_bad_seq"] == 5
