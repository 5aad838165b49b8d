"""The demo's closed loop on a real server: the retrained candidate is promoted and beats the logging policy by the
simulator's truth, and a deliberately broken canary is rolled back by the server's guardrail, with no failed request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlops.demo import run
from rlops.demo.bandit import LOGGING
from rlops.demo.closed_loop import (
    HISTORY_COLUMNS,
    SUMMARY_COLUMNS,
    history_rows,
    least_clicked,
    run_closed_loop,
    summary_rows,
)
from rlops.engine import Engine
from rlops.engine.deployment import Role
from rlops.errors import NotFoundError
from rlops.registry import Registry, Stage
from rlops.scenarios import SyntheticBandit
from rlops.scenarios.synthetic_bandit import ACTIONS


@pytest.mark.slow
def test_the_candidate_is_promoted_and_a_broken_canary_rolled_back(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    run(home, n=2000, seed=0)
    lines: list[str] = []
    result = run_closed_loop(home, seed=0, say=lines.append, fast=True)

    assert result.outcome == "promoted", lines
    assert result.validation in ("pass", "warn")
    assert result.decided_by in ("loop", "guardrail")
    # The retrained candidate beats the uniform logging policy on fresh users, by the simulator's truth.
    assert result.candidate_value > result.logging_value + 0.1
    assert result.broken_value < result.logging_value < result.optimum
    # shadow -> canary -> promote (by the loop or the server's guardrail), then the broken canary -> rollback by the
    # running server's supervisor: nobody here called check or rollback.
    steps = [(h.action, h.version, h.actor) for h in result.history]
    candidate = result.candidate
    assert steps[:2] == [("shadow", candidate, "loop"), ("canary", candidate, "loop")], steps
    assert steps[2][:2] == ("promote", candidate) and steps[2][2] in ("loop", "guardrail"), steps
    assert steps[-2:] == [("canary", "rule", "demo"), ("rollback", "rule", "guardrail")], steps
    assert result.broken_outcome == "rolled_back" and result.broken_rolled_back_by == "guardrail"
    assert "worse" in result.broken_reason
    # Traffic went over HTTP, to both arms, and no request failed.
    assert result.failed_requests == 0, result.failures
    assert result.decisions > 500 and result.requests == 2 * result.decisions
    assert result.served.get(str(candidate), 0) > 100
    assert len(result.served) >= 3  # logging, the candidate, the broken canary
    with Engine(home) as engine:
        arms = engine.arms(LOGGING)
        assert [(a.role, a.policy_version) for a in arms] == [(Role.PRODUCTION, candidate)]
    with Registry(engine.home) as registry:
        name, number = str(candidate).split("@")
        assert registry.get(name, int(number)).stage is Stage.PRODUCTION
    # The CLI's tables.
    assert all(len(row) == len(SUMMARY_COLUMNS) for row in summary_rows(result))
    assert [row[1] for row in history_rows(result)] == [h.action for h in result.history]
    assert all(len(row) == len(HISTORY_COLUMNS) for row in history_rows(result))
    assert any("rolled back by guardrail" in line for line in lines)


def test_the_broken_policy_picks_each_users_least_clicked_content() -> None:
    world = SyntheticBandit(seed=0)
    contexts = world.sample_contexts(200, np.random.default_rng(1))
    probs = world.click_probability(world.schema.encode(contexts))
    chosen = [ACTIONS.index(least_clicked(c)) for c in contexts]
    assert chosen == probs.argmin(axis=1).tolist()


def test_without_the_bandit_part_it_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=LOGGING):
        run_closed_loop(tmp_path / "empty")
