"""Erasure of a unit: no byte of it left anywhere in the home folder, everyone else's records untouched, live
writers handled, crash-safe, and audited without the unit id."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rlops.engine import DeploymentSpec, Engine, OutcomeStatus
from rlops.errors import NotFoundError, StorageError, ValidationError
from rlops.events import DecisionRecord, EventLog, Mode
from rlops.events import compaction as compaction_module
from rlops.events.erasure import erase_unit_records
from rlops.events.frames import encode_batch
from rlops.home import Home
from rlops.rollout.supervisor import Supervisor
from rlops.scenarios import SyntheticBandit
from rlops.security.audit import AuditAction, AuditLog
from rlops.security.privacy import erase_unit, unit_ref

TARGET = "erase-me-7f3a9c"
#: A context value only the target unit's decisions carry (an age no other unit has).
SECRET_AGE = 47.3190571
OTHERS = [f"keep-{i}" for i in range(5)]
REWARD = {"name": "click", "version": 1, "expression": "1 if clicked else 0", "fields": {"clicked": {}},
          "window": "1h", "missing": 0.0}


def context(unit: str, i: int) -> dict[str, Any]:
    age = SECRET_AGE if unit == TARGET else 20.0 + i + OTHERS.index(unit) / 10
    return {"age": age, "device": "mobile", "returning": i % 2 == 0, "activity": 0.5,
            "taste": [0.1, -0.2, 0.3, 0.0]}


def needles() -> list[bytes]:
    forms = {TARGET, json.dumps(TARGET)[1:-1], repr(SECRET_AGE), json.dumps(SECRET_AGE)}
    return [f.encode() for f in forms]


def files_with_traces(root: Path) -> list[str]:
    """Every file under ``root`` (SQLite databases, -wal files, logs, Parquet, segments...) holding a needle."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                if any(n in data for n in needles()):
                    found.append(str(path.relative_to(root)))
    return found


def snapshot_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def others(engine: Engine) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every stored decision and outcome that is not the target's, comparable across rewrites."""
    decisions = [r for r in engine.log.read_decisions().to_pylist() if r["unit_id"] != TARGET]
    theirs = {r["decision_id"] for r in decisions}
    outcomes = [r for r in engine.log.read_outcomes().to_pylist() if r["decision_id"] in theirs]
    orphans = [r for r in engine.log.read_outcomes().to_pylist() if r["decision_id"].startswith("no-such")]
    key = lambda r: (r["decision_id"], r.get("idempotency_key", ""))  # noqa: E731
    return sorted(decisions, key=key), sorted(outcomes + orphans, key=key)


def decide_round(engine: Engine, start: int, units: list[str], outcomes: bool = True) -> list[str]:
    ids = []
    for i, unit in enumerate(units):
        d = engine.decide("news", context(unit, start + i), unit)
        ids.append(d.decision_id)
        if outcomes:
            engine.report(d.decision_id, {"clicked": i % 2 == 0})
    return ids


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A home with Parquet parts, a sealed segment, a quarantined tail, monitoring signals and an audit chain,
    all holding the target unit next to others (the target's active segment is added by each test)."""
    root = tmp_path / "home"
    with Engine(root) as engine:
        engine.apply(DeploymentSpec.from_dict({
            "name": "news", "schema": SyntheticBandit().schema.to_dict(), "reward": REWARD,
            "policy": {"kind": "uniform"}}))
        decide_round(engine, 0, [*OTHERS, TARGET, TARGET])
        engine.report_batch([{"decision_id": "no-such-decision", "fields": {"clicked": True}}])  # a dead letter
        engine.log.rotate()
        engine.log.compact()  # -> Parquet parts
        decide_round(engine, 10, [TARGET, *OTHERS])
        engine.log.rotate()  # -> a sealed segment, not compacted
        stem = sorted((root / "events" / "segments").glob("*.seg"))[-1]
        # A write that crashed half-way: the torn frame (the target's decision) is quarantined at compaction.
        torn = encode_batch([DecisionRecord("torn-1", 1_700_000_000_000_000, "news", "news@r1", Mode.SERVED,
                                            TARGET, context(TARGET, 0), ["a"], "a", 0, 1.0)]).frame
        with stem.open("ab") as f:
            f.write(torn[: len(torn) - 7])
        from rlops.monitoring.watch import Watcher

        Watcher(interval=0)(engine)  # HOME/monitoring/signals.json
    assert files_with_traces(root), "the fixture must hold the target before the erasure"
    yield root


def test_erasure_leaves_no_trace_in_any_file_and_keeps_everyone_else(home: Path) -> None:
    server = Engine(home)  # a running server: another writer, with the target in the segment it holds
    supervisor = Supervisor(server, interval=0.05)
    try:
        decide_round(server, 20, [TARGET, OTHERS[0], TARGET])
        with Engine(home) as reader:
            before = others(reader)
            assert reader.log.stats().segments >= 2  # the sealed one and the server's active one
        stop = threading.Event()

        def serve() -> None:  # what `rlops serve` does between requests: the supervisor's ticks
            while not stop.wait(0.05):
                supervisor.tick_learning()

        ticker = threading.Thread(target=serve)
        ticker.start()
        try:
            result = erase_unit(Home(home), TARGET, "dpo", wait_s=20)
        finally:
            stop.set()
            ticker.join()
        assert result.complete, result.problems()
        assert (result.decisions, result.outcomes) == (5, 5)  # parts 2, sealed segment 1, server's segment 2
        assert result.tails_deleted == 1 and result.scanned and result.traces == ()
        # the server keeps serving afterwards, into a new segment
        decide_round(server, 30, [OTHERS[1]])
    finally:
        server.close()
    assert files_with_traces(home) == []
    with Engine(home) as reader:
        after_decisions, after_outcomes = others(reader)
        kept = {r["decision_id"]: r for r in after_decisions}
        assert len(kept) == len(before[0]) + 1  # and the one decided afterwards
        assert all(kept[r["decision_id"]] == r for r in before[0])  # every other decision, equal
        assert [r for r in after_outcomes if r["decision_id"] in {d["decision_id"] for d in before[0]}
                or r["decision_id"].startswith("no-such")] == before[1]  # every other outcome, the dead letter too
    # the audit entry names the unit by its keyed hash only, with counts
    with AuditLog.for_home(Home(home)) as audit:
        entry = [e for e in audit.entries() if e.action == AuditAction.ERASURE][-1]
        assert audit.verify().ok
    assert entry.target == unit_ref(Home(home), TARGET) == result.unit_ref and TARGET not in entry.target
    assert entry.actor == "dpo" and entry.details["decisions"] == 5 and entry.details["complete"] is True


def test_the_calling_engine_is_rotated_and_forgets_the_unit(home: Path) -> None:
    with Engine(home) as engine:
        ids = decide_round(engine, 40, [TARGET, OTHERS[2]])
        assert engine.log.stats().segments >= 2
        result = erase_unit(engine, TARGET, "admin", wait_s=5)  # what POST /v1/admin/erase calls
        assert result.complete, result.problems()
        with pytest.raises(NotFoundError):
            engine.decision(ids[0])
        # the engine's index forgot the decision: a late outcome for it is a dead letter, and does not name the unit
        assert engine.report(ids[0], {"clicked": True}).status is OutcomeStatus.DEAD_LETTER
        assert engine.report(ids[1], {"clicked": True}).status is OutcomeStatus.ACCEPTED
    assert files_with_traces(home) == []


def test_a_writer_that_does_not_rotate_is_reported_and_a_second_run_finishes(home: Path) -> None:
    idle = EventLog(home / "events")  # a process with the target in its segment and no supervisor
    with Engine(home) as engine:
        mine = engine.decision(decide_round(engine, 50, [OTHERS[3]], outcomes=False)[0])
    idle.append([DecisionRecord("idle-1", 1_700_000_000_000_000, "news", "news@r1", Mode.SERVED, TARGET,
                                context(TARGET, 0), ["news"], "news", 0, 1.0)])
    try:
        result = erase_unit(Home(home), TARGET, "dpo", wait_s=0.3)
        assert not result.complete and result.remaining_decisions == 1
        assert [(h.pid, h.decisions) for h in result.held] == [(os.getpid(), 1)]
        assert "did not rotate in time" in result.problems()[0] and str(os.getpid()) in result.problems()[0]
        assert [f for f in files_with_traces(home) if "segments" not in f] == []  # only the held segment has it
        assert idle.rotate_if_requested()  # the process gets round to it (a supervisor tick, an append)
    finally:
        idle.close()
    again = erase_unit(Home(home), TARGET, "dpo", wait_s=5)
    assert again.complete and again.decisions == 1
    assert files_with_traces(home) == []
    with AuditLog.for_home(Home(home)) as audit:
        erasures = [e for e in audit.entries() if e.action == AuditAction.ERASURE]
    assert [e.details["complete"] for e in erasures] == [False, True]
    with Engine(home) as engine:
        assert engine.decision(mine["decision_id"]) == mine


def test_a_file_outside_the_log_that_names_the_unit_keeps_the_erasure_incomplete(home: Path) -> None:
    notes = home / "reports" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text(f"called {TARGET} about the bill\n")
    result = erase_unit(Home(home), TARGET, "dpo", wait_s=5)
    assert result.remaining_decisions == 0 and not result.complete
    assert result.traces == ("reports/notes.txt",) and "reports/notes.txt" in result.problems()[0]
    notes.unlink()
    assert erase_unit(Home(home), TARGET, "dpo", wait_s=5).complete
    assert files_with_traces(home) == []


@pytest.mark.parametrize("interrupt", [OSError(28, "No space left on device"), KeyboardInterrupt()],
                         ids=["disk-full", "interrupt"])
@pytest.mark.parametrize("fail_at", [1, 2, 3, 4, 5, 6])
def test_a_crash_between_any_two_file_replacements_loses_nothing_and_a_rerun_finishes(
        home: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int, interrupt: BaseException) -> None:
    with Engine(home) as engine:
        before = others(engine)
        target_ids = {r["decision_id"] for r in engine.log.read_decisions().to_pylist() if r["unit_id"] == TARGET}
    real = os.replace
    calls = 0

    def replace(src: Any, dst: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == fail_at:
            raise interrupt
        real(src, dst)

    monkeypatch.setattr(compaction_module.os, "replace", replace)
    with pytest.raises((StorageError, KeyboardInterrupt)):
        erase_unit(Home(home), TARGET, "dpo", wait_s=5)
    monkeypatch.setattr(compaction_module.os, "replace", real)
    with Engine(home) as engine:  # nothing anyone else stored is lost or changed, whatever step failed
        assert others(engine) == before
    result = erase_unit(Home(home), TARGET, "dpo", wait_s=5)
    assert result.complete, result.problems()
    with Engine(home) as engine:
        assert others(engine) == before
        # the target's outcomes went too, although the crash may have come after some of its decisions were gone
        assert not set(engine.log.read_outcomes()["decision_id"].to_pylist()) & target_ids
    assert files_with_traces(home) == []


def test_bad_input_is_refused_and_changes_nothing(home: Path, tmp_path: Path) -> None:
    before = snapshot_bytes(home)
    for unit in ["", "   ", "x" * 257, None]:
        with pytest.raises(ValidationError, match="unit_id"):
            erase_unit(Home(home), unit, "dpo")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="actor"):
        erase_unit(Home(home), TARGET, "")
    with pytest.raises(NotFoundError):
        erase_unit(Home(tmp_path / "nowhere"), TARGET, "dpo")
    assert snapshot_bytes(home) == before
    assert not (tmp_path / "nowhere").exists()


def test_an_unknown_unit_is_recorded_as_an_erasure_of_nothing(home: Path) -> None:
    with Engine(home) as engine:
        before = engine.log.read_decisions()
    result = erase_unit(Home(home), "never-seen-unit", "dpo", wait_s=1)
    assert result.complete and (result.decisions, result.outcomes, result.files_rewritten) == (0, 0, 0)
    with Engine(home) as engine:
        assert engine.log.read_decisions().equals(before)


def test_events_level_erasure_of_a_bare_log(tmp_path: Path) -> None:
    """The event log alone (no home folder around it): records in a segment, none left afterwards."""
    with EventLog(tmp_path / "events") as log:
        log.append([DecisionRecord(f"d{i}", 1_700_000_000_000_000 + i, "news", "v", Mode.SERVED,
                                   TARGET if i % 2 else "other", {"i": i}, ["a"], "a", 0, 1.0) for i in range(6)])
        erased = erase_unit_records(log, TARGET, wait_s=1)
        assert erased.complete and erased.removal.decisions == 3 and erased.decision_ids == {"d1", "d3", "d5"}
        assert log.read_decisions()["decision_id"].to_pylist() == ["d0", "d2", "d4"]


def test_an_encrypted_log_is_erased_and_stays_encrypted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rlops.encryption import FILE_MAGIC, DataKey

    monkeypatch.setenv("RLOPS_DATA_KEY", DataKey.generate().to_base64())
    root = tmp_path / "home"
    with Engine(root) as engine:
        engine.apply(DeploymentSpec.from_dict({
            "name": "news", "schema": SyntheticBandit().schema.to_dict(), "reward": REWARD,
            "policy": {"kind": "uniform"}}))
        decide_round(engine, 0, [*OTHERS, TARGET])
        engine.log.rotate()
        engine.log.compact()
        decide_round(engine, 10, [TARGET, OTHERS[0]])
        before = others(engine)
        result = erase_unit(engine, TARGET, "dpo", wait_s=5)
        assert result.complete and (result.decisions, result.outcomes) == (2, 2)
        assert TARGET not in engine.log.read_decisions()["unit_id"].to_pylist()
        assert others(engine) == before
    parts = list((root / "events" / "parquet").rglob("*.parquet"))
    assert parts and all(p.read_bytes().startswith(FILE_MAGIC) for p in parts)  # rewritten sealed
    assert files_with_traces(root) == []
