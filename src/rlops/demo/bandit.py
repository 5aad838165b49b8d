"""The quick-start demo: the whole in-process loop on the built-in synthetic bandit.

1. A uniform-random logging policy serves ``n`` synthetic users; every decision and its outcome (clicked or not)
   goes through :class:`~rlops.engine.Engine` into the durable event log.
2. A LinUCB deployment serves the next ``n`` users and learns online from the joined rewards after every batch.
3. Both are joined under the reward spec and compared with each other and with the optimum, which the
   synthetic world knows exactly.

Later issues grow this into the whole lifecycle (service, gates, rollout, monitoring).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlops.engine import DeploymentSpec, Engine, OutcomeStatus
from rlops.errors import ConflictError
from rlops.home import Home
from rlops.scenarios import SyntheticBandit

LOGGING = "demo-logging"
LEARNING = "demo"
BATCH = 100
#: Decisions between online updates. Each update re-joins the log (an incremental cursor is future work).
LEARN_EVERY = 500
REWARD = {
    "name": "click", "version": 1, "expression": "1 if clicked else 0",
    "fields": {"clicked": {"default": False}}, "aggregation": "max", "window": "1h", "missing": 0.0,
}

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class PolicyResult:
    """What one deployment earned: observed (joined) clicks and the expected click rate of its choices."""

    deployment: str
    policy: str
    decisions: int
    joined: int
    mean_reward: float
    expected_reward: float
    last_quarter_expected: float


@dataclass(frozen=True)
class DemoResult:
    home: Path
    policies: list[PolicyResult]
    optimum: float
    duplicates_sent: int
    duplicates_detected: int
    dead_letters: int
    seconds: float


def _spec(name: str, policy: dict[str, object], online: bool) -> DeploymentSpec:
    return DeploymentSpec.from_dict({
        "name": name, "schema": SyntheticBandit().schema.to_dict(), "reward": REWARD, "policy": policy,
        "learning": {"online": online}, "seed": 7,
    })


def run(home: Path, n: int = 10_000, seed: int = 0, progress: Progress | None = None) -> DemoResult:
    """Run the demo into ``home`` (must hold no event log yet) and return the comparison.

    Args:
        home: a fresh home folder; it keeps the deployments and events afterwards.
        n: decisions per policy (10,000 by default; ``rlops demo --fast`` uses 2,000).
        seed: seeds the users and their clicks.
        progress: called as ``progress(phase, done, total)``.
    """
    import time

    started = time.perf_counter()
    layout = Home.resolve(home)
    if layout.events.exists() and any(layout.events.iterdir()):
        raise ConflictError(f"{layout.root} already holds an event log; run the demo in a new folder "
                            f"(e.g. --home {layout.root}-2) so that its numbers are its own")
    world = SyntheticBandit(seed=0)
    rng = np.random.default_rng(seed)
    report = progress or (lambda phase, done, total: None)
    with Engine(layout) as engine:
        engine.apply(_spec(LOGGING, {"kind": "uniform"}, online=False))
        engine.apply(_spec(LEARNING, {"kind": "linucb", "params": {"alpha": 0.5, "epsilon": 0.05}}, online=True))
        expected: dict[str, list[float]] = {LOGGING: [], LEARNING: []}
        optimum: list[float] = []
        duplicates_sent = 0
        duplicates = 0
        for name in (LOGGING, LEARNING):
            for start in range(0, n, BATCH):
                size = min(BATCH, n - start)
                contexts = world.sample_contexts(size, rng)
                units = [f"user-{int(u)}" for u in rng.integers(0, 50_000, size)]
                decisions = engine.decide_batch(name, contexts, units)
                x = engine.spec(name).schema_.encode([engine.spec(name).schema_.validate_context(c)
                                                      for c in contexts])
                actions = np.array([d.action_index for d in decisions])
                clicks = world.sample_clicks(x, actions, rng)
                probs = world.click_probability(x)
                expected[name].extend(probs[np.arange(size), actions].tolist())
                optimum.extend(probs.max(axis=1).tolist())
                outcomes = [{"decision_id": d.decision_id, "fields": {"clicked": bool(c)}}
                            for d, c in zip(decisions, clicks, strict=True)]
                if start % 1000 == 0:  # a client retrying: the same outcome sent twice must count once
                    outcomes.append(outcomes[0])
                    duplicates_sent += 1
                answers = engine.report_batch(outcomes)
                duplicates += sum(a.status is OutcomeStatus.DUPLICATE for a in answers)
                if name == LEARNING and ((start + size) % LEARN_EVERY == 0 or start + size == n):
                    engine.learn(LEARNING, include_pending=True)
                report(name, start + size, n)
        lost = [{"decision_id": f"unknown-{i}", "fields": {"clicked": True}} for i in range(3)]
        engine.report_batch(lost)  # outcomes for decisions that never existed go to the dead-letter table
        engine.save_learned(LEARNING)
        far_future = time.time_ns() // 1000 + 10**12  # judge every window as closed
        results = []
        for name, kind in ((LOGGING, "uniform"), (LEARNING, "LinUCB")):
            joined = engine.interactions(name, as_of_us=far_future)
            rewards = np.asarray(joined.interactions["reward"].to_numpy(), dtype=np.float64)
            values = np.array(expected[name])
            results.append(PolicyResult(name, kind, len(values), joined.stats.joined, float(rewards.mean()),
                                        float(values.mean()), float(values[-len(values) // 4:].mean())))
        dead = engine.dead_letters().num_rows
    return DemoResult(layout.root, results, float(np.mean(optimum)), duplicates_sent, duplicates, dead,
                      time.perf_counter() - started)
