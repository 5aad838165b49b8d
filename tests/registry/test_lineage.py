"""Lineage: event-log fingerprints, range parsing, the git commit."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from rlops.errors import ValidationError
from rlops.events import DecisionRecord, EventLog, Mode
from rlops.home import Home
from rlops.registry import EventsRange, Lineage, ModelRef, Registry, events_fingerprint, git_commit

T0 = 1_700_000_000_000_000


def decision(i: int, deployment: str = "pricing", mode: Mode = Mode.SERVED) -> DecisionRecord:
    return DecisionRecord(decision_id=f"d-{deployment}-{i:05d}", ts=T0 + i * 1_000_000, deployment=deployment,
                          policy_version="v1", mode=mode, unit_id=f"u{i}", context={"x": float(i)},
                          actions=["a", "b"], action="a", action_index=0, propensity=0.5, probabilities=[0.5, 0.5])


@pytest.fixture
def log(home: Home) -> EventLog:
    with EventLog(home.events, fsync=False) as log:
        log.append([decision(i) for i in range(10)])
        log.append([decision(i, "other") for i in range(5)])
        log.append([replace(decision(i), decision_id=f"s-{i}", mode=Mode.SHADOW) for i in range(3)])
        yield log


def test_fingerprint_counts_and_hashes_the_range(log: EventLog) -> None:
    whole = events_fingerprint(log, "pricing")
    assert whole.decisions == 10  # the other deployment and the shadow decisions are left out
    assert whole.hash is not None and re.fullmatch(r"[0-9a-f]{64}", whole.hash)
    part = events_fingerprint(log, "pricing", T0 + 2_000_000, T0 + 5_000_000)
    assert part.decisions == 3  # 2, 3, 4: start included, end excluded
    assert part.hash != whole.hash
    import hashlib

    expected = hashlib.sha256(b"".join(f"d-pricing-{i:05d}\n".encode() for i in (2, 3, 4))).hexdigest()
    assert part.hash == expected
    assert events_fingerprint(log, "pricing", T0 + 2_000_000, T0 + 5_000_000) == part  # deterministic


def test_fingerprint_survives_compaction(log: EventLog) -> None:
    before = events_fingerprint(log, "pricing")
    log.rotate()
    log.compact()
    assert events_fingerprint(log, "pricing") == before
    log.append([decision(10)])
    assert events_fingerprint(log, "pricing").hash != before.hash


def test_parse_events_range() -> None:
    assert EventsRange.parse("pricing") == EventsRange("pricing")
    r = EventsRange.parse("pricing@2024-06-01..2024-06-08T12:00:00Z")
    assert (r.start_us, r.end_us) == (1_717_200_000_000_000, 1_717_848_000_000_000)
    assert EventsRange.parse("pricing@..123").end_us == 123
    assert str(r) == "pricing@2024-06-01T00:00:00Z..2024-06-08T12:00:00Z"
    for bad, field in (("pricing@2024-06-01", "events_range"), ("pricing@yesterday..", "events_range.from"),
                       ("@..", "events.deployment"), ("p@2024-06-08..2024-06-01", "events")):
        with pytest.raises(ValidationError) as info:
            EventsRange.parse(bad)
        assert info.value.field == field
    with pytest.raises(ValidationError, match="SHA-256"):
        EventsRange("pricing", hash="abc")


def test_lineage_round_trips(registry: Registry, policy_dir: Path, log: EventLog) -> None:
    lineage = Lineage(events=events_fingerprint(log, "pricing", T0, None), reward_spec="revenue@3", scenario="shop")
    registry.register("pricing", policy_dir)
    v = registry.register("pricing", policy_dir, lineage=replace(lineage, parent=ModelRef("pricing", 1)))
    got = registry.get("pricing", v.version).lineage
    assert got.events == lineage.events and got.reward_spec == "revenue@3" and got.scenario == "shop"
    assert got.parent == ModelRef("pricing", 1)
    assert Lineage.from_dict(got.to_dict()) == got


def test_git_commit_of_this_checkout_or_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commit = git_commit()
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}", commit)
    assert git_commit(tmp_path) is None  # not a checkout
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all: still no exception
    assert git_commit() is None
