"""The quick-start demo: the loop on the built-in synthetic bandit, over HTTP and in process.

1. The real decision service (``rlops serve``, its own process) starts on a free loopback port. Four client
   threads, each a simulated application using :class:`rlops.Client`, ask a uniform-random logging deployment
   for ``n`` decisions and report each outcome (clicked or not) over HTTP, with some retries that send an
   outcome twice. The decide latency and throughput are measured from the clients.
2. A LinUCB deployment serves the next ``n`` users in process and learns online from the joined rewards.
3. Both are joined under the reward spec and compared with each other and with the optimum, which the
   synthetic world knows exactly.

Later issues grow this into the whole lifecycle (gates, rollout, monitoring).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import orjson
import pyarrow as pa

from rlops.client import Client
from rlops.demo.keys import client_keys
from rlops.engine import DeploymentSpec, Engine, OutcomeStatus
from rlops.errors import ConflictError
from rlops.home import Home
from rlops.scenarios import SyntheticBandit
from rlops.scenarios.synthetic_bandit import ACTIONS
from rlops.service.runner import ServiceProcess

if TYPE_CHECKING:
    from rlops.explain import DecisionExplanation

LOGGING = "demo-logging"
LEARNING = "demo"
BATCH = 100
CLIENTS = 4
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
class HttpResult:
    """The HTTP phase as the clients saw it."""

    url: str
    clients: int
    decisions: int
    requests: int
    seconds: float
    decide_p50_ms: float
    decide_p99_ms: float

    @property
    def decisions_per_second(self) -> float:
        return self.decisions / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class DemoResult:
    home: Path
    policies: list[PolicyResult]
    optimum: float
    http: HttpResult
    duplicates_sent: int
    duplicates_detected: int
    dead_letters: int
    seconds: float
    explanation: DecisionExplanation | None = None
    behaviour_html: str = ""


#: How the demo's canaries are judged (rlops.rollout.guardrails): a verdict within a few thousand decisions, so the
#: closed loop (rlops.demo.closed_loop) finishes in seconds; a canary not worse after 3,000 per arm is promoted.
GUARDRAIL = {"min_samples": 200, "max_samples": 3000, "tune_at": 300}


def spec(name: str, policy: dict[str, object], online: bool) -> DeploymentSpec:
    """A deployment of the synthetic bandit with the demo's reward, guardrail and seed."""
    return DeploymentSpec.from_dict({
        "name": name, "schema": SyntheticBandit().schema.to_dict(), "reward": REWARD, "policy": policy,
        "learning": {"online": online}, "seed": 7, "guardrail": GUARDRAIL,
        "all_outcomes_reported": True,  # the simulated applications report a click or a no-click for every decision
    })


def _http_phase(home: Path, world: SyntheticBandit, n: int, rng: np.random.Generator, report: Progress,
                expected: list[float], optimum: list[float]) -> tuple[HttpResult, int, int]:
    """Simulated applications ask the real service for decisions and report outcomes over HTTP."""
    contexts = world.sample_contexts(n, rng)
    schema = world.schema
    x = schema.encode([schema.validate_context(c) for c in contexts])
    probs = world.click_probability(x)
    draws = rng.random(n)  # clicks are decided up front, so threads do not share a generator
    chosen = np.empty(n, dtype=np.int64)
    latencies: list[float] = []
    counts = {"requests": 0, "sent_twice": 0, "duplicates": 0, "done": 0}
    lock = threading.Lock()
    index = {name: i for i, name in enumerate(ACTIONS)}

    def application(worker: int, url: str, key: str) -> None:
        with Client(url, api_key=key) as client:
            for i in range(worker, n, CLIENTS):
                started = time.perf_counter()
                d = client.decide(LOGGING, contexts[i], unit_id=f"user-{i % 50_000}")
                took = time.perf_counter() - started
                a = index[str(d.action)]
                chosen[i] = a
                clicked = bool(draws[i] < probs[i, a])
                answer = client.report(d.decision_id, {"clicked": clicked})
                sent = 2
                if i % 1000 == 0:  # a client retrying: the same outcome sent twice must count once
                    answer = client.report(d.decision_id, {"clicked": clicked})
                    sent += 1
                with lock:
                    latencies.append(took)
                    counts["requests"] += sent
                    counts["sent_twice"] += sent == 3
                    counts["duplicates"] += answer.duplicates
                    counts["done"] += 1
                    done = counts["done"]
                if done % 100 == 0 or done == n:
                    report(f"{LOGGING} (HTTP)", done, n)

    with ServiceProcess(home) as url, client_keys(home, LOGGING, CLIENTS) as keys:
        started = time.perf_counter()
        threads = [threading.Thread(target=application, args=(w, url, keys[w])) for w in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
    if len(latencies) != n:
        raise ConflictError(f"the HTTP phase made {len(latencies)} of {n} decisions; see {home}/logs/service.log")
    expected.extend(probs[np.arange(n), chosen].tolist())
    optimum.extend(probs.max(axis=1).tolist())
    p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
    http = HttpResult(url, CLIENTS, n, counts["requests"], seconds, float(p50), float(p99))
    return http, counts["sent_twice"], counts["duplicates"]


def _learning_phase(engine: Engine, world: SyntheticBandit, n: int, rng: np.random.Generator, report: Progress,
                    expected: list[float], optimum: list[float]) -> tuple[int, int]:
    """LinUCB serves in process and learns online from the joined rewards."""
    schema = engine.spec(LEARNING).schema_
    sent_twice = duplicates = 0
    for start in range(0, n, BATCH):
        size = min(BATCH, n - start)
        contexts = world.sample_contexts(size, rng)
        units = [f"user-{int(u)}" for u in rng.integers(0, 50_000, size)]
        decisions = engine.decide_batch(LEARNING, contexts, units)
        x = schema.encode([schema.validate_context(c) for c in contexts])
        actions = np.array([d.action_index for d in decisions])
        clicks = world.sample_clicks(x, actions, rng)
        probs = world.click_probability(x)
        expected.extend(probs[np.arange(size), actions].tolist())
        optimum.extend(probs.max(axis=1).tolist())
        outcomes = [{"decision_id": d.decision_id, "fields": {"clicked": bool(c)}}
                    for d, c in zip(decisions, clicks, strict=True)]
        if start % 1000 == 0:
            outcomes.append(outcomes[0])
            sent_twice += 1
        duplicates += sum(a.status is OutcomeStatus.DUPLICATE for a in engine.report_batch(outcomes))
        if (start + size) % LEARN_EVERY == 0 or start + size == n:
            engine.learn(LEARNING, include_pending=True)
        report(LEARNING, start + size, n)
    return sent_twice, duplicates


def run(home: Path, n: int = 10_000, seed: int = 0, progress: Progress | None = None) -> DemoResult:
    """Run the demo into ``home`` (must hold no event log yet) and return the comparison.

    Args:
        home: a fresh home folder; it keeps the deployments and events afterwards.
        n: decisions per policy (10,000 by default; ``rlops demo --fast`` uses 2,000).
        seed: seeds the users and their clicks.
        progress: called as ``progress(phase, done, total)``.
    """
    started = time.perf_counter()
    layout = Home.resolve(home)
    if layout.events.exists() and any(layout.events.iterdir()):
        raise ConflictError(f"{layout.root} already holds an event log; run the demo in a new folder "
                            f"(e.g. --home {layout.root}-2) so that its numbers are its own")
    world = SyntheticBandit(seed=0)
    rng = np.random.default_rng(seed)
    report = progress or (lambda phase, done, total: None)
    expected: dict[str, list[float]] = {LOGGING: [], LEARNING: []}
    optimum: list[float] = []
    with Engine(layout) as engine:
        engine.apply(spec(LOGGING, {"kind": "uniform"}, online=False))
        engine.apply(spec(LEARNING, {"kind": "linucb", "params": {"alpha": 0.5, "epsilon": 0.05}}, online=True))
    http, sent_http, dup_http = _http_phase(layout.root, world, n, rng, report, expected[LOGGING], optimum)
    with Engine(layout) as engine:
        sent_local, dup_local = _learning_phase(engine, world, n, rng, report, expected[LEARNING], optimum)
        lost = [{"decision_id": f"unknown-{i}", "fields": {"clicked": True}} for i in range(3)]
        engine.report_batch(lost)  # outcomes for decisions that never existed go to the dead-letter table
        engine.save_learned(LEARNING)
        explanation, behaviour = _explain(engine, np.random.default_rng(seed))
        far_future = time.time_ns() // 1000 + 10**12  # judge every window as closed
        results = []
        for name, kind, joined in ((name, kind, engine.interactions(name, as_of_us=far_future))
                                   for name, kind in ((LOGGING, "uniform (HTTP)"), (LEARNING, "LinUCB"))):
            rewards = np.asarray(joined.interactions["reward"].to_numpy(), dtype=np.float64)
            values = np.array(expected[name])
            results.append(PolicyResult(name, kind, len(values), joined.stats.joined, float(rewards.mean()),
                                        float(values.mean()), float(values[-len(values) // 4:].mean())))
        dead = engine.dead_letters().num_rows
    return DemoResult(layout.root, results, float(np.mean(optimum)), http, sent_http + sent_local,
                      dup_http + dup_local, dead, time.perf_counter() - started, explanation, behaviour)


def _explain(engine: Engine, rng: np.random.Generator) -> tuple[DecisionExplanation, str]:  # rng: sampling only
    """Why LinUCB made its last decision (with the state it had learned, live in this engine), and how it behaves
    over the logged contexts: feature importance and partial dependence, as an HTML section for the report."""
    import pyarrow.compute as pc

    from rlops.explain import explain_decision, score_function
    from rlops.explain.global_explanation import explain_policy_globally

    decisions = engine.log.read_decisions()
    mine = decisions.filter(pc.equal(decisions["deployment"], LEARNING))
    explanation = explain_decision(engine, str(mine["decision_id"][-1].as_py()))
    policy = engine.policy(LEARNING, "production")
    scores = score_function(policy)
    picked = rng.choice(mine.num_rows, size=min(1000, mine.num_rows), replace=False)
    contexts = [orjson.loads(c) for c in mine.take(pa.array(np.sort(picked)))["context"].to_pylist()]
    behaviour = explain_policy_globally(scores, list(scores.actions), policy.schema, contexts, top_k=4,
                                        score_label="expected click rate", seed=0,
                                        title="How the learned LinUCB behaves over the users it served")
    return explanation, behaviour.to_html()
