"""The closed loop on a real engine: retrain beats the logging policy, gates, shadow, canary, promotion; and an
interrupted cycle resumes at its step without training or registering twice."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest

from rlops.engine import DeploymentSpec, Engine
from rlops.errors import ConflictError
from rlops.events import Mode
from rlops.policies import PolicyInput, load_policy
from rlops.registry import Registry, Stage
from rlops.rollout.loop import Loop, LoopConfig, Step, request_retrain, take_trigger
from rlops.scenarios import SyntheticBandit

WORLD = SyntheticBandit(seed=0)
REWARD = {"name": "click", "version": 1, "expression": "1 if clicked else 0", "fields": {"clicked": {}},
          "window": "1h", "missing": 0.0}
CONFIG = LoopConfig(kind="bandit", shadow_decisions=150, canary_fraction=0.5, poll=0.01, min_interactions=500)


class World:
    """Users arriving at the deployment and clicking as the synthetic bandit's click model says."""

    def __init__(self, engine: Engine, seed: int = 0) -> None:
        self.engine, self.rng, self.served = engine, np.random.default_rng(seed), 0

    def traffic(self, n: int) -> None:
        contexts = WORLD.sample_contexts(n, self.rng)
        units = [f"user-{i}" for i in self.rng.integers(0, 5000, n)]
        decisions = self.engine.decide_batch("news", contexts, units)
        x = WORLD.schema.encode(contexts)
        index = np.array([d.action_index for d in decisions])
        clicks = WORLD.sample_clicks(x, index, self.rng)
        self.engine.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": bool(c)}}
                                  for d, c in zip(decisions, clicks, strict=True)])
        self.served += n

    def sleep(self, _: float) -> None:  # the loop waits; meanwhile users keep coming
        self.traffic(200)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    e = Engine(tmp_path / "home", fsync=False)
    e.apply(DeploymentSpec.from_dict({"name": "news", "schema": WORLD.schema.to_dict(), "reward": REWARD,
                                      "policy": {"kind": "uniform"},
                                      "guardrail": {"min_samples": 100, "max_samples": 1500},
                                      "all_outcomes_reported": True}))
    yield e  # type: ignore[misc]
    e.close()


def _value(folder: Any) -> float:
    """The expected click rate of a policy on fresh users (the simulator's truth, not an estimate)."""
    policy = load_policy(folder)
    rng = np.random.default_rng(99)
    contexts = WORLD.sample_contexts(4000, rng)
    batch = PolicyInput.from_contexts(WORLD.schema, contexts)
    return WORLD.value_of(batch.x, policy.act(batch, rng).action)


@pytest.mark.slow
def test_a_cycle_retrains_a_better_policy_and_promotes_it(engine: Engine) -> None:
    world = World(engine)
    world.traffic(3000)
    lines: list[str] = []
    state = Loop(engine, "news", CONFIG, say=lines.append, sleep=world.sleep).run_cycle()
    assert state.outcome == "promoted", lines
    assert state.status in ("pass", "warn")
    candidate = str(state.candidate)
    assert engine.arms("news")[0].policy_version == candidate  # production now
    assert engine.spec("news").shadows == ()  # the shadow graduated to canary, then production
    # The retrained policy beats the uniform logging policy on fresh users, by the simulator's truth.
    x = PolicyInput.from_contexts(WORLD.schema, WORLD.sample_contexts(4000, np.random.default_rng(99))).x
    uniform = float(WORLD.click_probability(x).mean())
    assert _value(state.folder) > uniform + 0.15
    with Registry(engine.home) as registry:
        name, number = candidate.split("@")
        version = registry.get(name, int(number))
        assert version.stage is Stage.PRODUCTION
        lineage = version.lineage
        assert lineage.events is not None and lineage.events.decisions is not None
        assert lineage.events.decisions >= 3000
        assert registry.details(name, int(number)).report is not None  # the validation report is signed in
    decisions = engine.log.read_decisions()
    shadow = decisions.filter(decisions["mode"].to_numpy(zero_copy_only=False) == Mode.SHADOW.value)
    assert shadow.num_rows >= CONFIG.shadow_decisions
    actions = [c.action for c in engine.store.changes("news")]
    assert actions == ["shadow", "canary", "promote"]


class Interrupt(Exception):
    pass


@pytest.mark.slow
def test_an_interrupted_cycle_resumes_at_its_step(engine: Engine) -> None:
    world = World(engine, seed=1)
    world.traffic(3000)
    looks = 0

    def interrupt_in_shadow(_: float) -> None:
        nonlocal looks
        looks += 1
        world.traffic(50)
        if looks == 2:
            raise Interrupt  # as Ctrl-C or kill -9 would, in the middle of the shadow step

    with pytest.raises(Interrupt):
        Loop(engine, "news", CONFIG, sleep=interrupt_in_shadow).run_cycle()
    stopped = Loop(engine, "news", CONFIG).state()
    assert stopped is not None and stopped.step is Step.SHADOW and stopped.candidate is not None
    lines: list[str] = []
    # A new process: a new engine on the same home folder.
    with Engine(engine.home, fsync=False) as again:
        resumed = Loop(again, "news", CONFIG, say=lines.append, sleep=World(again, seed=2).sleep).run_cycle()
        assert resumed.outcome == "promoted"
        assert resumed.candidate == stopped.candidate and resumed.folder == stopped.folder
        assert any("resuming at shadow" in line for line in lines)
        assert not any("trained a candidate" in line for line in lines)  # not trained twice
        with Registry(again.home) as registry:
            assert len(registry.versions("news")) == 1  # not registered twice
        assert [c.action for c in again.store.changes("news")] == ["shadow", "canary", "promote"]


def test_a_failing_gate_stops_the_candidate(engine: Engine, tmp_path: Path) -> None:
    World(engine, seed=3).traffic(1000)
    gates = tmp_path / "gates.yaml"
    gates.write_text("gates:\n  - name: impossible\n    metric: ope.estimates.dr.value\n    op: '>'\n    value: 5\n")
    state = Loop(engine, "news", LoopConfig(gates=str(gates), min_interactions=500)).run_cycle()
    assert state.outcome == "rejected" and "impossible" in state.notes[-1]
    assert engine.store.changes("news") == []  # nothing was deployed
    with Registry(engine.home) as registry:
        assert registry.names() == []


def test_too_little_data_is_a_clear_error_and_triggers_round_trip(engine: Engine) -> None:
    World(engine).traffic(50)
    with pytest.raises(ConflictError, match="min_interactions"):
        Loop(engine, "news", CONFIG).run_cycle()
    assert take_trigger(engine.home.root, "news") is None
    request_retrain(engine.home.root, "news", "drift alert")
    assert take_trigger(engine.home.root, "news")["reason"] == "drift alert"  # type: ignore[index]
    assert take_trigger(engine.home.root, "news") is None


def test_a_shadow_that_never_logs_times_out(engine: Engine) -> None:
    World(engine, seed=4).traffic(1000)
    config = LoopConfig(kind="bandit", shadow_decisions=10_000, shadow_timeout=0.5, poll=0.1, min_interactions=500)
    state = Loop(engine, "news", config, sleep=time.sleep).run_cycle()
    assert state.outcome == "rejected" and "shadow_timeout" in state.notes[-1]
    assert engine.spec("news").shadows == ()  # the shadow was taken out again
    assert [c.action for c in engine.store.changes("news")] == ["shadow", "unshadow"]


def test_the_schedule_waits_for_a_trigger_and_runs_one_cycle_per_trigger(engine: Engine) -> None:
    World(engine).traffic(50)  # too little data: the cycle is skipped, and counted
    lines: list[str] = []
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 3:
            raise Interrupt  # nothing due, no trigger: it keeps waiting

    loop = Loop(engine, "news", CONFIG, say=lines.append)
    with pytest.raises(Interrupt):
        loop.run_schedule(None, sleep=nap)
    request_retrain(engine.home.root, "news", "drift alert")
    assert loop.run_schedule(None, max_cycles=1, sleep=nap) == 1
    assert "triggered: drift alert" in lines and any(line.startswith("cycle skipped") for line in lines)
    assert take_trigger(engine.home.root, "news") is None  # the trigger was consumed


def test_without_a_sweep_the_candidate_is_the_one_retrain_from_table_fits(engine: Engine) -> None:
    from rlops.training.offline import retrain_from_table

    World(engine, seed=5).traffic(1000)
    state = Loop(engine, "news", CONFIG).run_cycle(until=Step.VALIDATE)
    assert CONFIG.sweep == 1 and state.sweep is None
    assert state.notes[-1] == "trained a candidate with bandit-dr (1,000 interactions)"
    table = engine.interactions("news", as_of_us=state.trained_us, include_pending=True).interactions
    expected = retrain_from_table(table, WORLD.schema, kind="bandit", seed=CONFIG.seed).policy
    saved = load_policy(str(state.folder)).state()
    assert saved.keys() == expected.state().keys()
    for key, value in expected.state().items():
        np.testing.assert_array_equal(saved[key], value)


def test_a_sweep_keeps_its_winner_and_records_what_it_tried(engine: Engine) -> None:
    World(engine, seed=6).traffic(1000)
    lines: list[str] = []
    config = CONFIG.model_copy(update={"sweep": 3})
    state = Loop(engine, "news", config, say=lines.append).run_cycle(until=Step.VALIDATE)
    sweep = state.sweep
    assert sweep is not None and sweep["kind"] == "bandit" and sweep["score"] == "dr" and sweep["holdout"] == 0.3
    rows = sweep["candidates"]
    assert [(r["method"], r["l2"]) for r in rows] == [("dr", 1.0), ("ips", 1.0), ("dm", 1.0)]
    winner = rows[sweep["winner"]]
    assert winner["low"] == max(r["low"] for r in rows)
    assert state.method is not None and state.method.startswith(f"bandit-{winner['method']}: ")
    note = state.notes[-1]
    assert note.startswith(f"trained a candidate with bandit-{winner['method']} (1,000 interactions); best of 3 by "
                           f"held-out dr lower bound: #{sweep['winner']} ")
    assert len(note) < 160  # one short line; the table and the reason are in state.sweep
    assert sum(line.startswith("  candidate ") for line in lines) == 3
    assert Loop(engine, "news", config).state() == state  # the record survives the state file
    with pytest.raises(pydantic.ValidationError, match="sweep"):
        LoopConfig(sweep=0)
