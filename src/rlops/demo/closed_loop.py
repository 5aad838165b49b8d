"""The closed loop of ``rlops demo``: retrain from the logs, shadow, canary, promote; then a broken canary rolled back.

It runs after the bandit part (:func:`rlops.demo.bandit.run`), on the same home folder, whose deployment
:data:`~rlops.demo.bandit.LOGGING` holds thousands of uniform-random decisions with their clicks.

1. The real decision service (``rlops serve``, its own process, with its background supervisor judging canaries
   every second) starts on a free loopback port.
2. One cycle of :class:`rlops.rollout.loop.Loop` runs here: a candidate is retrained from the logged interactions,
   validated by the gates on the same logs, registered (signed, with lineage), put in shadow next to production,
   then in canary on half of the users. While the loop waits, simulated applications keep asking the service for
   decisions over HTTP and report clicks from the synthetic world's click model. The running server's guardrail
   (its supervisor) judges the canary and promotes the candidate; the loop sees the verdict and ends the cycle.
   The validation gates are the defaults, with the act-latency budget relaxed to :data:`LATENCY_GATE_MS`.
3. A deliberately broken policy, :func:`least_clicked`, is put in canary. Traffic keeps flowing over HTTP until the
   running server's supervisor finds it worse and rolls it back by itself: nothing here calls ``check`` or
   ``rollback``.
4. The synthetic world knows every user's click probabilities, so the candidate's true expected click rate on fresh
   users is compared with the logging policy's (and the optimum's, and the broken policy's) exactly.

Example:
    >>> from rlops.demo import run                                   # doctest: +SKIP
    >>> run(home, n=2000)                                            # doctest: +SKIP
    >>> result = run_closed_loop(home, fast=True, say=print)         # doctest: +SKIP
    >>> result.outcome, result.broken_rolled_back_by                 # doctest: +SKIP
    ('promoted', 'guardrail')
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from rlops.client import Client
from rlops.demo.bandit import LOGGING
from rlops.demo.keys import client_keys
from rlops.engine import Engine
from rlops.engine.deployment import PolicySource
from rlops.engine.engine import now_us
from rlops.errors import ConflictError, RlopsError
from rlops.evaluation.validate import DEFAULT_GATES
from rlops.files import write_atomic
from rlops.home import Home
from rlops.policies import PolicyInput, load_policy
from rlops.rollout.loop import Loop, LoopConfig
from rlops.rollout.operations import Rollout
from rlops.scenarios import SyntheticBandit
from rlops.scenarios.synthetic_bandit import ACTIONS
from rlops.service.runner import ServiceProcess

Say = Callable[[str], None]

#: The click model the bandit part serves (:func:`rlops.demo.bandit.run` uses ``SyntheticBandit(seed=0)``; the
#: demo's ``seed`` draws the users and their clicks, not the world).
WORLD_SEED = 0
#: The broken canary's rule, as the ``rule`` policy kind imports it.
BROKEN_TARGET = "rlops.demo.closed_loop:least_clicked"
#: Simulated applications (client threads) sending decisions and outcomes.
CLIENTS = 4
#: Fresh users on which the policies' true expected click rates are computed.
FRESH_USERS = 4000
#: The demo's act-latency gate, p99 in milliseconds. The default gates ask for 2 ms, which a busy laptop running the
#: service, four clients and the loop on two cores can miss; the demo is about the loop, not the latency budget.
LATENCY_GATE_MS = 20.0
#: Columns of :func:`summary_rows` and :func:`history_rows`, for the CLI's tables.
SUMMARY_COLUMNS = ("step", "result")
HISTORY_COLUMNS = ("when", "action", "version", "actor", "reason")


@lru_cache(maxsize=1)
def _world() -> SyntheticBandit:
    return SyntheticBandit(seed=WORLD_SEED)


def least_clicked(context: Mapping[str, Any]) -> str:
    """A deliberately broken policy: the content this user is *least* likely to click.

    It reads the synthetic world's true click model (which a real policy never could) and picks the worst action
    for every user, so its click rate is far below any sensible policy's. The demo puts it in canary to show that
    the running service's guardrail rolls a bad canary back by itself. Never serve it for anything else.

    Args:
        context: one validated context of the synthetic users' schema.

    Returns:
        The name of the action with the lowest click probability for this user.
    """
    world = _world()
    p = world.click_probability(world.schema.encode([context]))[0]
    return ACTIONS[int(np.argmin(p))]


@dataclass(frozen=True)
class _Sizes:
    """How long the closed loop runs: shadow decisions, seconds between looks, and the time limits (seconds)."""

    shadow_decisions: int
    poll: float
    canary_timeout: float
    rollback_timeout: float

    @classmethod
    def of(cls, fast: bool) -> _Sizes:
        if fast:
            return cls(shadow_decisions=200, poll=0.5, canary_timeout=90.0, rollback_timeout=60.0)
        return cls(shadow_decisions=500, poll=1.0, canary_timeout=180.0, rollback_timeout=120.0)


@dataclass(frozen=True)
class HistoryRow:
    """One change of the deployment, as :meth:`rlops.rollout.operations.Rollout.history` keeps it.

    Attributes:
        ts_us: when, microseconds since the epoch.
        action: ``shadow``, ``canary``, ``promote``, ``rollback``...
        version: the policy version it concerned (``rule`` for the broken canary, which is not registered).
        actor: who made it: ``loop``, ``guardrail`` (the server's supervisor), ``demo``.
        reason: why, in words.
    """

    ts_us: int
    action: str
    version: str | None
    actor: str
    reason: str


@dataclass(frozen=True)
class ClosedLoopResult:
    """What the closed loop did.

    Attributes:
        home: the home folder.
        url: the service the traffic went to.
        notes: the loop cycle's notes, one line per step.
        candidate: the retrained candidate, ``MODEL@N`` (``None`` if the cycle stopped before registering it).
        method: how the candidate was trained, and why that method.
        validation: the gates' status (``pass``, ``warn`` or ``fail``).
        report: the validation report (``report.json``).
        outcome: how the cycle ended: ``promoted``, ``rolled_back``, ``rejected`` or ``awaiting_approval``.
        decided_by: who promoted or rolled back the candidate: ``guardrail`` (the server's supervisor) or ``loop``.
        decisions: decisions the simulated applications got over HTTP (each with its click reported).
        requests: HTTP requests sent (decide and report).
        failed_requests: requests that failed (the demo expects none).
        failures: the first few failures, one line each.
        served: decisions over HTTP per serving policy version.
        history: the deployment's changes made during this run, oldest first.
        logging_value: the uniform logging policy's true expected click rate on fresh users.
        candidate_value: the candidate's (``nan`` without a candidate).
        broken_value: the broken canary's (:func:`least_clicked`).
        optimum: the best possible, every user's best action.
        broken_outcome: how the broken canary ended (``rolled_back``).
        broken_rolled_back_by: who rolled it back (``guardrail``: the server's supervisor).
        broken_reason: the guardrail's reason.
        broken_seconds: seconds from the broken canary's start to its rollback.
        seconds: seconds the whole closed loop took.
    """

    home: Path
    url: str
    notes: list[str]
    candidate: str | None
    method: str | None
    validation: str | None
    report: str | None
    outcome: str | None
    decided_by: str | None
    decisions: int
    requests: int
    failed_requests: int
    failures: list[str]
    served: dict[str, int]
    history: list[HistoryRow]
    logging_value: float
    candidate_value: float
    broken_value: float
    optimum: float
    broken_outcome: str
    broken_rolled_back_by: str
    broken_reason: str
    broken_seconds: float
    seconds: float


class _Traffic:
    """Simulated applications: client threads that ask the service for decisions and report the users' clicks.

    Every decision is for a new user (a distinct unit id), so the sticky split sends about the canary's fraction of
    them to the canary. Clicks follow the synthetic world's click model; each call of :meth:`run_for` draws users
    and clicks from generators seeded by ``(seed, call, client)``.
    """

    def __init__(self, url: str, seed: int, keys: list[str]) -> None:
        self.url, self.seed, self.clients = url, seed, len(keys)
        self._http = [Client(url, api_key=key) for key in keys]
        self._units = itertools.count()
        self._calls = itertools.count()
        self._lock = threading.Lock()
        self.decisions = self.requests = 0
        self.failures: list[str] = []
        self.failed = 0
        self.served: Counter[str] = Counter()

    def run_for(self, seconds: float) -> None:
        """Send traffic from every client thread for ``seconds`` (the loop's ``sleep``)."""
        call = next(self._calls)
        deadline = time.monotonic() + seconds
        threads = [threading.Thread(target=self._application, args=(w, call, deadline), daemon=True)
                   for w in range(self.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _application(self, worker: int, call: int, deadline: float) -> None:
        world, client = _world(), self._http[worker]
        rng = np.random.default_rng([self.seed, call, worker])
        index = {name: i for i, name in enumerate(ACTIONS)}
        while time.monotonic() < deadline:
            contexts = world.sample_contexts(32, rng)
            probs = world.click_probability(world.schema.encode(contexts))
            draws = rng.random(len(contexts))
            for i, context in enumerate(contexts):
                if time.monotonic() >= deadline:
                    return
                unit = f"visitor-{self.seed}-{next(self._units)}"
                sent = 0
                try:
                    d = client.decide(LOGGING, context, unit_id=unit)
                    sent += 1
                    client.report(d.decision_id, {"clicked": bool(draws[i] < probs[i, index[str(d.action)]])})
                    sent += 1
                except (RlopsError, httpx.HTTPError) as e:
                    with self._lock:
                        self.requests += sent + 1
                        self.failed += 1
                        if len(self.failures) < 5:
                            self.failures.append(f"{type(e).__name__}: {e}")
                    continue
                with self._lock:
                    self.requests += sent
                    self.decisions += 1
                    self.served[d.policy_version] += 1

    def close(self) -> None:
        for client in self._http:
            client.close()


def _gates_file(home: Path) -> Path:
    """The default gates with the act-latency budget relaxed to :data:`LATENCY_GATE_MS`, written into ``home``."""
    gates = [g.model_copy(update={"name": f"p99 act latency under {LATENCY_GATE_MS:g} ms", "value": LATENCY_GATE_MS})
             if g.metric == "budget.measurement.p99_ms" else g for g in DEFAULT_GATES.gates]
    path = home / "demo" / "closed-loop-gates.json"  # JSON is YAML: GatesFile.load reads it
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"gates": [g.model_dump(mode="json", exclude_none=True) for g in gates]}, indent=2))
    return path


def _waiting_for_the_server(engine: Engine, traffic: _Traffic, sizes: _Sizes, say: Say) -> Callable[[float], None]:
    """The loop's ``sleep``: users keep coming over HTTP; in the candidate's canary, until the server has decided.

    While a registered candidate is in canary the users keep coming until the running server's supervisor has
    promoted it or rolled it back (or ``canary_timeout`` has passed, when the loop rolls it back itself). The server
    is left to decide alone because its supervisor acts on whatever canary is current once its (slow) judgement is
    done: a loop that promoted first and a broken canary started right after could be promoted on the candidate's
    verdict.
    """

    def in_canary() -> bool:
        canary = engine.store.latest(LOGGING).deployment_spec().canary
        return canary is not None and canary.policy.version is not None

    def sleep(seconds: float) -> None:
        traffic.run_for(seconds)
        if not in_canary():
            return
        deadline, started, told = time.monotonic() + sizes.canary_timeout, traffic.decisions, time.monotonic()
        while in_canary() and time.monotonic() < deadline:
            traffic.run_for(seconds)
            if time.monotonic() - told >= 3.0:
                say(f"  canary: {traffic.decisions - started} decisions over HTTP, waiting for the server's guardrail")
                told = time.monotonic()

    return sleep


def _history(rollout: Rollout, since_us: int) -> list[HistoryRow]:
    return [HistoryRow(c.ts_us, c.action, c.version, c.actor, c.reason)
            for c in rollout.history(LOGGING) if c.ts_us >= since_us]


def _true_values(folder: str | None, seed: int) -> tuple[float, float, float, float]:
    """True expected click rates on fresh users: (logging, candidate, broken, optimum)."""
    world = _world()
    rng = np.random.default_rng([seed, 99])
    batch = PolicyInput.from_contexts(world.schema, world.sample_contexts(FRESH_USERS, rng))
    probs = world.click_probability(batch.x)
    candidate = float("nan")
    if folder is not None:
        candidate = world.value_of(batch.x, load_policy(folder).act(batch, rng).action)
    return float(probs.mean()), candidate, float(probs.min(axis=1).mean()), float(probs.max(axis=1).mean())


def _broken_canary(engine: Engine, traffic: _Traffic, sizes: _Sizes, say: Say, home: Path) -> tuple[HistoryRow, float]:
    """Put :func:`least_clicked` in canary and keep traffic flowing until the server's supervisor ends it."""
    rollout = Rollout(engine, actor="demo")
    started = now_us()
    change = rollout.canary(LOGGING, PolicySource(kind="rule", params={"target": BROKEN_TARGET}), 0.5,
                            reason="a deliberately broken policy: it shows every user the content they are least "
                                   "likely to click; the guardrail should roll it back")
    say(f"a deliberately broken policy ({BROKEN_TARGET}) in canary on 50% of users; waiting for the server's "
        "guardrail")
    deadline, before, told = time.monotonic() + sizes.rollback_timeout, traffic.decisions, time.monotonic()
    while time.monotonic() < deadline:
        traffic.run_for(sizes.poll)
        ended = [c for c in rollout.history(LOGGING) if c.ts_us > change.ts_us and c.action in ("promote", "rollback")]
        if ended:
            end = ended[0]
            row = HistoryRow(end.ts_us, end.action, end.version, end.actor, end.reason)
            seconds = (end.ts_us - started) / 1e6
            if end.action != "rollback":
                raise ConflictError(f"the broken canary was promoted by {end.actor!r} ({end.reason}); the guardrail "
                                    f"should have rolled it back (deployment {LOGGING!r}, home {home})")
            say(f"the broken canary was rolled back by {end.actor} after {seconds:.1f} s: {end.reason}")
            return row, seconds
        if time.monotonic() - told >= 3.0:
            say(f"  broken canary: {traffic.decisions - before} decisions over HTTP since it started, no verdict yet")
            told = time.monotonic()
    raise ConflictError(f"the server's guardrail did not roll the broken canary of {LOGGING!r} back within "
                        f"{sizes.rollback_timeout:.0f} s; is the supervisor on (RLOPS_SUPERVISE_INTERVAL must not be "
                        f"0)? See {home}/logs/service.log")


def run_closed_loop(home: Path, *, seed: int = 0, say: Say | None = None, fast: bool = False) -> ClosedLoopResult:
    """Run the closed loop on the bandit part's home folder and return what happened.

    Args:
        home: the home folder the bandit part (:func:`rlops.demo.bandit.run`) ran in.
        seed: seeds the simulated users, their clicks, training and validation (default 0).
        say: called with one line per step (default: nothing).
        fast: fewer shadow decisions and shorter looks (200 instead of 500; 0.5 s instead of 1 s).

    Returns:
        The loop's notes, the candidate and its outcome, the HTTP traffic, the deployment's history and the true
        click rates.

    Raises:
        NotFoundError: the bandit part has not run in ``home`` (no deployment :data:`~rlops.demo.bandit.LOGGING`).
        ConflictError: too few logged interactions, or the broken canary not rolled back in time.
        StorageError: the service did not start.
    """
    started = time.perf_counter()
    since = now_us()
    say = say or (lambda _: None)
    sizes = _Sizes.of(fast)
    layout = Home.resolve(home)
    with Engine(layout) as engine:
        engine.store.latest(LOGGING)  # the bandit part must have run: an unknown deployment fails here, clearly
    say("starting the decision service (its supervisor judges canaries every second)")
    with (ServiceProcess(layout.root) as url, Engine(layout) as engine,
          client_keys(layout, LOGGING, CLIENTS) as keys):
        say(f"service at {url}; retraining {LOGGING!r} from its logged interactions")
        traffic = _Traffic(url, seed, keys)
        try:
            config = LoopConfig(kind="bandit", gates=str(_gates_file(layout.root)),
                                shadow_decisions=sizes.shadow_decisions, canary_fraction=0.5, poll=sizes.poll,
                                canary_timeout=sizes.canary_timeout, seed=seed)
            sleep = _waiting_for_the_server(engine, traffic, sizes, say)
            state = Loop(engine, LOGGING, config, say=say, sleep=sleep).run_cycle()
            broken, broken_seconds = _broken_canary(engine, traffic, sizes, say, layout.root)
        finally:
            traffic.close()
        history = _history(Rollout(engine), since)
    decided_by = next((h.actor for h in history if h.version == state.candidate
                       and h.action in ("promote", "rollback")), None)
    logging_value, candidate_value, broken_value, optimum = _true_values(state.folder, seed)
    return ClosedLoopResult(
        home=layout.root, url=url, notes=list(state.notes), candidate=state.candidate, method=state.method,
        validation=state.status, report=state.report, outcome=state.outcome, decided_by=decided_by,
        decisions=traffic.decisions, requests=traffic.requests, failed_requests=traffic.failed,
        failures=list(traffic.failures), served=dict(traffic.served), history=history,
        logging_value=logging_value, candidate_value=candidate_value, broken_value=broken_value, optimum=optimum,
        broken_outcome="rolled_back", broken_rolled_back_by=broken.actor, broken_reason=broken.reason,
        broken_seconds=broken_seconds, seconds=time.perf_counter() - started)


def summary_rows(result: ClosedLoopResult) -> list[tuple[str, str]]:
    """The closed loop in a few rows of (step, result), for a two-column table (:data:`SUMMARY_COLUMNS`)."""
    by = f" by the {result.decided_by}" if result.decided_by else ""
    outcome = (result.outcome or "unfinished").replace("_", " ")
    return [
        ("retrain", result.method or "not trained"),
        ("validate", f"{(result.validation or 'not run').upper()} (report {result.report})"),
        ("register", result.candidate or "not registered"),
        ("shadow -> canary (50%)", f"{outcome}{by}"),
        ("true click rate", f"logging (uniform) {result.logging_value:.4f} -> candidate {result.candidate_value:.4f} "
                            f"(optimum {result.optimum:.4f})"),
        ("broken canary", f"{result.broken_outcome.replace('_', ' ')} by the {result.broken_rolled_back_by} after "
                          f"{result.broken_seconds:.1f} s (its true click rate {result.broken_value:.4f})"),
        ("over HTTP", f"{result.decisions:,} decisions, {result.requests:,} requests, {result.failed_requests} failed "
                      f"({result.url})"),
    ]


def history_rows(result: ClosedLoopResult) -> list[tuple[str, str, str, str, str]]:
    """The deployment's changes as rows of :data:`HISTORY_COLUMNS` (local time, action, version, actor, reason)."""
    return [(time.strftime("%H:%M:%S", time.localtime(h.ts_us / 1e6)), h.action, h.version or "", h.actor, h.reason)
            for h in result.history]
