"""The supervisor: online learning on its cadence, snapshots into the registry, guardrails, one leader per home."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlops.engine import Engine
from rlops.engine.deployment import PolicySource
from rlops.registry import Registry
from rlops.rollout.operations import Rollout
from rlops.rollout.supervisor import Supervisor
from tests.rollout.test_operations import FOOD, spec, traffic


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    e = Engine(tmp_path / "home")
    e.apply(spec(policy={"kind": "linucb", "params": {"alpha": 0.5, "epsilon": 0.1}},
                 learning={"online": True, "interval": "2s", "snapshot_every": 300}))
    yield e  # type: ignore[misc]
    e.close()


def test_learns_on_its_cadence_and_snapshots_with_lineage(engine: Engine) -> None:
    supervisor = Supervisor(engine)
    traffic(engine, 200)
    first = supervisor.tick(now=100.0)
    assert first.learned == {"news": 200} and first.snapshots == []
    traffic(engine, 200, seed=1)
    assert supervisor.tick(now=101.0).learned == {}  # 1 s later: not due (interval 2 s)
    second = supervisor.tick(now=102.5)
    assert second.learned == {"news": 200}
    assert second.snapshots == ["news@1"]  # 400 learned >= 300: snapshot, then the count starts again
    assert engine.learned_count("news") == 400
    with Registry(engine.home) as registry:
        version = registry.get("news", 1)
        assert version.actor == "online-learning"
        policy = registry.load("news", 1)  # verified, and it carries what was learned
        lineage = version.lineage
    assert lineage.events is not None and lineage.events.deployment == "news"
    assert lineage.reward_spec == "click@1"
    assert type(policy).__name__ == "LinUCB"
    supervisor.lock.release()


def test_the_leader_judges_the_canary_and_followers_do_not(engine: Engine) -> None:
    leader, follower = Supervisor(engine), Supervisor(engine)
    assert leader.leader and not follower.leader  # one flock per home folder
    Rollout(engine).canary("news", PolicySource(**FOOD), 0.5, reason="bad on purpose")
    traffic(engine, 1500)
    assert follower.tick(now=0.0).checks == []
    report = leader.tick(now=0.0)
    assert [c.action for c in report.checks] == ["rolled_back"]
    assert [a.role for a in engine.arms("news")] == ["production"]
    assert Rollout(engine).history("news")[-1].actor == "guardrail"
    leader.lock.release()
    assert follower.leader  # the lock passes on when the leader goes


def test_a_failing_hook_does_not_stop_the_tick(engine: Engine) -> None:
    calls = []

    def broken(_: Engine) -> None:
        calls.append(1)
        raise RuntimeError("boom")

    supervisor = Supervisor(engine, hooks=[broken])
    traffic(engine, 50)
    report = supervisor.tick(now=0.0)
    assert calls == [1] and report.learned == {"news": 50}
    assert any("boom" in e for e in report.errors)
    supervisor.lock.release()
