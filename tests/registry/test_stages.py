"""Stages: every allowed move works, every other is refused naming the allowed ones, and all are recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlops.errors import ConflictError, NotFoundError, ValidationError
from rlops.registry import TRANSITIONS, Registry, Stage, allowed_targets, default_actor

#: Every test runs on SQLite and on PostgreSQL (see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("home_on_backend")

#: How to reach each stage from a fresh candidate.
PATHS = {
    Stage.CANDIDATE: [],
    Stage.SHADOW: [Stage.SHADOW],
    Stage.CANARY: [Stage.CANARY],
    Stage.PRODUCTION: [Stage.CANARY, Stage.PRODUCTION],
    Stage.RETIRED: [Stage.RETIRED],
}


def _at(registry: Registry, policy_dir: Path, stage: Stage) -> int:
    version = registry.register("pricing", policy_dir).version
    for step in PATHS[stage]:
        registry.transition("pricing", version, step, reason=f"to {step.value}")
    assert registry.get("pricing", version).stage is stage
    return version


@pytest.mark.parametrize("source", list(Stage))
@pytest.mark.parametrize("target", list(Stage))
def test_every_pair_of_stages(registry: Registry, policy_dir: Path, source: Stage, target: Stage) -> None:
    version = _at(registry, policy_dir, source)
    if target in TRANSITIONS[source]:
        moves = registry.transition("pricing", version, target, reason="test", actor="ci")
        assert (moves[0].from_stage, moves[0].to_stage, moves[0].actor) == (source, target, "ci")
        assert registry.get("pricing", version).stage is target
    else:
        with pytest.raises(ConflictError) as info:
            registry.transition("pricing", version, target, reason="test")
        allowed = ", ".join(s.value for s in allowed_targets(source))
        assert f"allowed from {source.value}: {allowed}" in str(info.value)
        assert str(info.value).startswith("stage: cannot move pricing@")
        assert registry.get("pricing", version).stage is source  # nothing changed


def test_history_records_who_why_and_when(registry: Registry, policy_dir: Path) -> None:
    registry.register("pricing", policy_dir, actor="trainer")
    registry.transition("pricing", 1, Stage.SHADOW, reason="offline gates passed")
    registry.transition("pricing", 1, Stage.CANARY, reason="shadow agreed 99%", actor="svc:rollout")
    history = registry.history("pricing", 1)
    assert [(t.from_stage, t.to_stage, t.actor, t.reason) for t in history] == [
        (None, Stage.CANDIDATE, "trainer", "registered"),
        (Stage.CANDIDATE, Stage.SHADOW, default_actor(), "offline gates passed"),
        (Stage.SHADOW, Stage.CANARY, "svc:rollout", "shadow agreed 99%"),
    ]
    times = [t.at_us for t in history]
    assert times == sorted(times) and times[0] > 1_600_000_000_000_000


def test_promotion_retires_the_current_production(registry: Registry, policy_dir: Path) -> None:
    first = _at(registry, policy_dir, Stage.PRODUCTION)
    second = _at(registry, policy_dir, Stage.CANARY)
    moves = registry.transition("pricing", second, Stage.PRODUCTION, reason="canary passed", actor="bob")
    assert [(m.version, m.to_stage) for m in moves] == [(second, Stage.PRODUCTION), (first, Stage.RETIRED)]
    assert moves[1].reason == f"replaced by pricing@{second}: canary passed"
    stages = {v.version: v.stage for v in registry.versions("pricing")}
    assert stages == {first: Stage.RETIRED, second: Stage.PRODUCTION}
    # Rollback: the former production version may go straight back, which retires the bad one.
    registry.transition("pricing", first, Stage.PRODUCTION, reason="rollback: p99 latency")
    stages = {v.version: v.stage for v in registry.versions("pricing")}
    assert stages == {first: Stage.PRODUCTION, second: Stage.RETIRED}


def test_only_a_former_production_version_may_return_from_retired(registry: Registry, policy_dir: Path) -> None:
    version = _at(registry, policy_dir, Stage.RETIRED)
    with pytest.raises(ConflictError, match=r"allowed from retired: candidate\)"):
        registry.transition("pricing", version, Stage.PRODUCTION, reason="shortcut")
    assert allowed_targets(Stage.RETIRED, was_production=True) == [Stage.CANDIDATE, Stage.PRODUCTION]


def test_same_stage_is_refused(registry: Registry, policy_dir: Path) -> None:
    registry.register("pricing", policy_dir)
    with pytest.raises(ConflictError, match="from candidate to candidate"):
        registry.transition("pricing", 1, Stage.CANDIDATE, reason="noop")


@pytest.mark.parametrize(("reason", "actor", "field"), [("", None, "reason"), ("  ", None, "reason"),
                                                        ("ok", "", "actor"), ("x" * 2001, None, "reason")])
def test_reason_and_actor_are_required(registry: Registry, policy_dir: Path, reason: str, actor: str | None,
                                       field: str) -> None:
    registry.register("pricing", policy_dir)
    with pytest.raises(ValidationError) as info:
        registry.transition("pricing", 1, Stage.SHADOW, reason=reason, actor=actor)
    assert info.value.field == field


def test_unknown_version_is_not_found(registry: Registry, policy_dir: Path) -> None:
    registry.register("pricing", policy_dir)
    with pytest.raises(NotFoundError, match="pricing@7"):
        registry.transition("pricing", 7, Stage.RETIRED, reason="gone")
    with pytest.raises(NotFoundError, match="'ranking'"):
        registry.get("ranking")
