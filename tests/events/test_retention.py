"""Retention: decisions older than their deployment's retention go with their outcomes, at fixed times; the rest
stays exactly as it was; dry runs, bad input, the server's hook and a crash change nothing they should not."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rlops.engine import DeploymentSpec, Engine
from rlops.errors import ConfigError, NotFoundError, StorageError
from rlops.events import DecisionRecord, Mode, OutcomeRecord
from rlops.events import compaction as compaction_module
from rlops.events.retention import expire_records
from rlops.home import Home
from rlops.scenarios import SyntheticBandit
from rlops.security.audit import AuditAction, AuditLog
from rlops.security.privacy import RetentionHook, apply_retention

DAY_US = 86_400_000_000
NOW = 1_750_000_000_000_000  # the fixed "now" of every run
REWARD = {"name": "click", "version": 1, "expression": "1 if clicked else 0", "fields": {"clicked": {}},
          "window": "1h", "missing": 0.0}
CONTEXT = {"age": 30.0, "device": "mobile", "returning": False, "activity": 0.5, "taste": [0.0, 0.0, 0.0, 0.0]}


def spec(name: str, retention: str | None) -> DeploymentSpec:
    data: dict[str, Any] = {"name": name, "schema": SyntheticBandit().schema.to_dict(), "reward": REWARD,
                            "policy": {"kind": "uniform"}}
    if retention is not None:
        data["retention"] = retention
    return DeploymentSpec.from_dict(data)


def decision(deployment: str, age_days: float, n: int) -> DecisionRecord:
    return DecisionRecord(f"{deployment}-{age_days:g}d-{n}", NOW - round(age_days * DAY_US), deployment,
                          f"{deployment}@r1", Mode.SERVED, f"unit-{n}", CONTEXT, ["news"], "news", 0, 1.0)


def outcome(d: DecisionRecord, delay_days: float = 0.01) -> OutcomeRecord:
    return OutcomeRecord(d.decision_id, d.ts + round(delay_days * DAY_US), {"clicked": True}, f"k-{d.decision_id}")


def ids(engine: Engine) -> tuple[list[str], list[str]]:
    return (sorted(engine.log.read_decisions()["decision_id"].to_pylist()),
            sorted(engine.log.read_outcomes()["decision_id"].to_pylist()))


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """``news`` keeps 30 days, ``shop`` keeps everything; records 100, 40, 29 and 1 days old, some compacted."""
    root = tmp_path / "home"
    with Engine(root) as engine:
        engine.apply(spec("news", "30d"))
        engine.apply(spec("shop", None))
        batches = [[decision(name, age, n) for name in ("news", "shop") for n in range(2)] for age in (100, 40)]
        for batch in batches:
            engine.log.append(batch)
            engine.log.append([outcome(d) for d in batch])
        engine.log.append([OutcomeRecord("gone-long-ago", NOW - 200 * DAY_US, {"clicked": True}, "orphan-old"),
                           OutcomeRecord("gone-lately", NOW - 2 * DAY_US, {"clicked": True}, "orphan-new")])
        engine.log.rotate()
        engine.log.compact()  # the old ones are in Parquet parts
        recent = [decision(name, age, n) for name in ("news", "shop") for age in (29, 1) for n in range(2)]
        engine.log.append(recent)
        engine.log.append([outcome(d) for d in recent])
        # an outcome that arrived 35 days after its 40-day-old decision: it goes with its decision, not by its age
        engine.log.append([outcome(decision("news", 40, 0), delay_days=35)])
    yield root


def test_old_decisions_and_their_outcomes_go_everything_else_stays(home: Path) -> None:
    with Engine(home) as engine:
        decisions_before, outcomes_before = ids(engine)
        kept_rows = [r for r in engine.log.read_decisions().to_pylist() if not r["decision_id"].startswith(
            ("news-100d", "news-40d"))]
    result = apply_retention(Home(home), now_us=NOW, actor="ops", wait_s=5)
    assert result.complete and (result.decisions, result.outcomes) == (4, 5)
    news = next(d for d in result.deployments if d.deployment == "news")
    assert news.cutoff_us == NOW - 30 * DAY_US and news.retention == "30d"
    assert next(d for d in result.deployments if d.deployment == "shop").removal is None  # keeps everything
    assert result.orphans is None  # shop keeps everything, so outcomes of unknown decisions stay
    with Engine(home) as engine:
        decisions_after, outcomes_after = ids(engine)
        assert engine.log.read_decisions().to_pylist() == kept_rows  # equal, in order
    gone = {f"news-{age}d-{n}" for age in (100, 40) for n in range(2)}
    assert decisions_after == [d for d in decisions_before if d not in gone]
    assert outcomes_after == [o for o in outcomes_before if o not in gone]
    assert {"gone-long-ago", "gone-lately"} <= set(outcomes_after)
    with AuditLog.for_home(Home(home)) as audit:
        entries = [e for e in audit.entries() if e.action == AuditAction.RETENTION]
    assert [(e.actor, e.target) for e in entries] == [("ops", "deployment:news")]
    # both parts of the compacted segment, and the outcomes part of the one holding the late outcome
    assert entries[0].details == {"deployment": "news", "retention": "30d", "cutoff_us": NOW - 30 * DAY_US,
                                       "decisions": 4, "outcomes": 5, "files_rewritten": 3, "complete": True}
    again = apply_retention(Home(home), now_us=NOW, wait_s=5)  # nothing left to do: no new audit entry
    assert (again.decisions, again.outcomes) == (0, 0)
    with AuditLog.for_home(Home(home)) as audit:
        assert sum(e.action == AuditAction.RETENTION for e in audit.entries()) == 1


def test_with_every_deployment_retained_old_orphan_outcomes_go_under_the_longest(home: Path) -> None:
    with Engine(home) as engine:
        engine.apply(spec("shop", "60d"))
    result = apply_retention(Home(home), now_us=NOW, wait_s=5)
    assert result.orphan_cutoff_us == NOW - 60 * DAY_US and result.orphans is not None
    assert result.orphans.outcomes == 1
    with Engine(home) as engine:
        decisions, outcomes = ids(engine)
    assert "gone-long-ago" not in outcomes and "gone-lately" in outcomes
    assert not [d for d in decisions if d.startswith(("news-100d", "news-40d", "shop-100d"))]
    assert [d for d in decisions if d.startswith("shop-40d")] == ["shop-40d-0", "shop-40d-1"]


def test_a_dry_run_counts_and_changes_nothing(home: Path) -> None:
    before = {p: p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file() and p.name != "meta.db-shm"}
    result = apply_retention(Home(home), now_us=NOW, dry_run=True)
    assert result.dry_run and (result.decisions, result.outcomes) == (4, 5) and result.problems() == []
    after = {p: p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file() and p.name != "meta.db-shm"}
    assert {p: b for p, b in after.items() if "meta.db" not in p.name} == {
        p: b for p, b in before.items() if "meta.db" not in p.name}
    with AuditLog.for_home(Home(home)) as audit:
        assert not [e for e in audit.entries() if e.action == AuditAction.RETENTION]


def test_one_deployment_and_bad_input(home: Path) -> None:
    files = sorted(p for p in (home / "events").rglob("*") if p.is_file())
    before = [p.read_bytes() for p in files]
    with pytest.raises(NotFoundError, match="'nope' does not exist"):
        apply_retention(Home(home), deployment="nope", now_us=NOW)
    with pytest.raises(ConfigError, match="shorter than the attribution window"):
        spec("news", "10m")
    assert [p.read_bytes() for p in files] == before
    result = apply_retention(Home(home), deployment="shop", now_us=NOW)  # keeps everything: nothing to do
    assert [d.deployment for d in result.deployments] == ["shop"] and result.decisions == 0
    assert [p.read_bytes() for p in files] == before
    result = apply_retention(Home(home), deployment="news", now_us=NOW, wait_s=5)
    assert result.decisions == 4 and result.orphans is None


def test_the_hook_runs_at_most_once_per_interval(home: Path) -> None:
    hook = RetentionHook(interval_s=3600)
    with Engine(home) as engine:
        engine.log.append([decision("news", 400, 9)])  # in its own segment: rotated for the run
        decisions = engine.log.read_decisions().to_pylist()
        cutoff = time.time_ns() // 1000 - 30 * DAY_US  # the hook runs by the clock
        old = [r for r in decisions if r["deployment"] == "news" and r["ts"].timestamp() * 1e6 < cutoff]
        hook(engine)
        first = hook.last_result
        assert first is not None and first.complete and first.decisions == len(old) >= 5
        engine.log.append([decision("news", 400, 8)])
        hook(engine)
        assert hook.last_result is first  # not due yet
        assert "news-400d-8" in engine.log.read_decisions()["decision_id"].to_pylist()


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4, 5])
def test_a_crash_during_retention_loses_nothing_that_should_stay(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 fail_at: int) -> None:
    with Engine(home) as engine:
        expected = [r for r in engine.log.read_decisions().to_pylist()
                    if not r["decision_id"].startswith(("news-100d", "news-40d"))]
    real, calls = os.replace, []

    def replace(src: Any, dst: Any) -> None:
        calls.append(dst)
        if len(calls) == fail_at:
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(compaction_module.os, "replace", replace)
    with pytest.raises(StorageError):
        apply_retention(Home(home), now_us=NOW, wait_s=5)
    monkeypatch.setattr(compaction_module.os, "replace", real)
    with Engine(home) as engine:
        assert [r for r in engine.log.read_decisions().to_pylist() if r in expected] == expected
    assert apply_retention(Home(home), now_us=NOW, wait_s=5).complete
    with Engine(home) as engine:
        assert engine.log.read_decisions().to_pylist() == expected
        outcomes = set(engine.log.read_outcomes()["decision_id"].to_pylist())
        assert not {o for o in outcomes if o.startswith(("news-100d", "news-40d"))}


def test_events_level_cutoffs(tmp_path: Path) -> None:
    from rlops.events import EventLog

    with EventLog(tmp_path / "events") as log:
        old, new = decision("a", 10, 0), decision("a", 1, 0)
        log.append([old, new, outcome(old), outcome(new)])
        removal = expire_records(log, {"a": NOW - 5 * DAY_US}, wait_s=1)
        assert removal.complete and (removal.decisions, removal.outcomes) == (1, 1)
        assert log.read_decisions()["decision_id"].to_pylist() == [new.decision_id]
        assert log.read_outcomes()["decision_id"].to_pylist() == [new.decision_id]
