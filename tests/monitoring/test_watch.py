"""The monitor's signals against hand computations, the alert rules acting on them, and the gauges on /metrics
read back with prometheus_client's own parser."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
import pyarrow.compute as pc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rlops.engine import DeploymentSpec, Engine
from rlops.home import Home
from rlops.monitoring.alerts import AlertRules, AlertState, AlertStore, Signal
from rlops.monitoring.drift import ReferenceProfile
from rlops.monitoring.live import ReferenceCache
from rlops.monitoring.watch import SIGNALS_FILE, Watcher, collect_signals, reward_model_error
from rlops.policies import LinUCB, PolicyInput, save_policy
from rlops.registry import Registry
from rlops.service import ServiceSettings
from rlops.service.runner import BackgroundServer
from tests.keys import bearer, make_key
from tests.monitoring.test_report import REWARD, WORLD, users

FOOD = {"kind": "rule", "params": {"target": "tests.rollout.rules:always_food", "epsilon": 0.1}}


def _home(tmp_path: Path) -> Home:
    """``news`` serving the registered ``news-model@1`` (with a reference profile of unshifted users), a food
    canary on 30% and a uniform holdout on 20% of units."""
    home = Home.resolve(tmp_path / "home").ensure()
    rng = np.random.default_rng(1)
    profile = ReferenceProfile.build(WORLD.schema, users(1500, 2), actions=rng.integers(0, 5, 1500),
                                     rewards=(rng.random(1500) < 0.3).astype(float))
    folder = save_policy(LinUCB(WORLD.schema, alpha=0.5, epsilon=0.1), tmp_path / "policy")
    with Registry(home) as registry:
        registry.register("news-model", folder, reference=profile)
    with Engine(home, fsync=False) as engine:
        engine.apply(DeploymentSpec.from_dict({
            "name": "news", "schema": WORLD.schema.to_dict(), "reward": REWARD,
            "policy": {"version": "news-model@1"}, "learning": {"online": True},
            "canary": {"policy": FOOD, "fraction": 0.3}, "holdout": {"policy": {"kind": "uniform"}, "fraction": 0.2},
            "guardrail": {"min_samples": 30, "max_samples": 3000}, "all_outcomes_reported": True}))
    return home


def _traffic(engine: Engine, n: int, seed: int, age_shift: float = 0.0) -> None:
    contexts = users(n, seed, age_shift)
    decisions = engine.decide_batch("news", contexts, [f"u{seed}-{i}" for i in range(n)])
    rng = np.random.default_rng(seed)
    clicks = [bool(rng.random() < (0.15 if d.action == "food" else 0.5)) for d in decisions]
    engine.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": c}}
                         for d, c in zip(decisions, clicks, strict=True)])


def _by(signals: list[Signal], name: str, **labels: str) -> float:
    found = [s.value for s in signals if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_signals_match_hand_computations(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with Engine(home, fsync=False) as engine:
        _traffic(engine, 900, 1)
        engine.learn("news")
        with Registry(home) as registry:
            signals = collect_signals(engine, window_s=600, registry=registry, references=ReferenceCache(registry))
        joined = engine.interactions("news", include_pending=True).interactions
        versions = {a.role.value: a.policy_version for a in engine.arms("news")}
        rewards = {role: np.asarray(joined.filter(pc.equal(joined["policy_version"], v))["reward"].to_numpy(),
                                    dtype=float) for role, v in versions.items()}
        for role, version in versions.items():
            assert _by(signals, "reward_mean", policy_version=version) == pytest.approx(rewards[role].mean())
            assert _by(signals, "reward_count", policy_version=version) == rewards[role].size
        lift = rewards["production"].mean() - rewards["holdout"].mean()
        assert _by(signals, "lift", deployment="news") == pytest.approx(lift)
        assert _by(signals, "lift_low") < lift < _by(signals, "lift_high")
        assert _by(signals, "guardrail_state", canary_version=versions["canary"]) == -1.0  # food is far worse
        # Reward model error of the production LinUCB, recomputed independently.
        mine = joined.filter(pc.equal(joined["policy_version"], versions["production"]))
        policy = engine.policy("news")
        batch = PolicyInput.from_contexts(WORLD.schema, [json.loads(c) for c in mine["context"].to_pylist()])
        predicted = policy.expected_rewards(batch)[np.arange(mine.num_rows), mine["action_index"].to_numpy()]
        bias = float((predicted - mine["reward"].to_numpy()).mean())
        assert _by(signals, "reward_model_bias", policy_version=versions["production"]) == pytest.approx(bias)
        assert reward_model_error(engine.policy("news", "canary").expected_rewards, WORLD.schema, mine) is None
        psi = {s.labels["feature"]: s.value for s in signals
               if s.name == "drift_psi" and s.labels["policy_version"] == "news-model@1"}
        assert set(psi) >= {"age", "activity"} and psi["age"] < 0.1  # unshifted traffic
        assert _by(signals, "propensity_min", policy_version=versions["holdout"]) == pytest.approx(0.2)


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        _Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    _Hook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_alert_rules_fire_post_and_roll_back(tmp_path: Path, webhook: str) -> None:
    home = _home(tmp_path)
    rules = AlertRules.from_dict({"webhook": webhook, "resolve_after": 0, "rules": [
        {"name": "age-drift", "signal": "drift_psi", "match": {"feature": "age"}, "op": ">", "threshold": 0.25,
         "severity": "warning"},
        {"name": "canary-worse", "signal": "guardrail_state", "op": "<", "threshold": 0, "severity": "critical",
         "action": "rollback"}]})
    with Engine(home, fsync=False) as engine:
        _traffic(engine, 900, 2, age_shift=25)
        watcher = Watcher(rules=rules, window_s=600, interval=0)
        watcher(engine)
        alerts = AlertStore.for_home(home).list_alerts(state=AlertState.FIRING)
        assert sorted(a.rule for a in alerts) == ["age-drift", "canary-worse"]
        rollback = next(a for a in alerts if a.rule == "canary-worse")
        assert rollback.action_result is not None and rollback.action_result.startswith("rolled back")
        assert engine.spec("news").canary is None
        assert engine.store.changes("news")[-1].actor == "alert:canary-worse"
        assert sorted(p["rule"] for p in _Hook.received) == ["age-drift", "canary-worse"]
        assert (home.root / SIGNALS_FILE).exists()
        watcher(engine)  # still drifting: not fired again
        assert len(AlertStore.for_home(home).list_alerts()) == 2


def test_metrics_expose_the_monitor_gauges(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with Engine(home, fsync=False) as engine:
        _traffic(engine, 600, 3)
    settings = ServiceSettings(home=home.root, port=0, supervise_interval=0.2, monitor_interval=0.2)
    viewer = bearer(make_key(home.root, "viewer"))  # what a Prometheus scrape would use
    with BackgroundServer(settings) as url:
        deadline = time.monotonic() + 20
        families: dict[str, Any] = {}
        while time.monotonic() < deadline and "rlops_reward_mean" not in families:
            time.sleep(0.3)
            text = httpx.get(f"{url}/metrics", headers=viewer).text
            families = {f.name: f for f in text_string_to_metric_families(text)}
        with Engine(home, fsync=False) as engine:
            joined = engine.interactions("news", include_pending=True).interactions
        expected = {v: float(np.mean(joined.filter(pc.equal(joined["policy_version"], v))["reward"].to_numpy()))
                    for v in set(joined["policy_version"].to_pylist())}
        means = {s.labels["policy_version"]: s.value for s in families["rlops_reward_mean"].samples}
        assert means == pytest.approx(expected)
        psi = [s for s in families["rlops_drift_psi"].samples if s.labels["feature"] == "age"]
        assert len(psi) == 1 and 0 <= psi[0].value < 0.25
        lift = families["rlops_lift"].samples[0]
        assert lift.labels == {"deployment": "news"}
