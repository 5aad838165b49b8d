"""The dashboard's JSON (/v1/dashboard) against hand computation over a real home folder: two policy versions with
rewards over six simulated hours, the second from the registry with a validation report, and a shift in one
feature (age) in the last two hours."""

from __future__ import annotations

import json
import math
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from rlops.engine import DeploymentSpec, Engine, PolicySource
from rlops.evaluation.report import write_report
from rlops.evaluation.validate import ValidateOptions, validate
from rlops.home import Home
from rlops.monitoring.drift.statistics import psi
from rlops.monitoring.overview import Z95, build_overview, encode_contexts
from rlops.policies import kinds, save_policy
from rlops.registry import Lineage, Registry, Stage
from rlops.rollout.operations import Rollout
from rlops.scenarios import SyntheticBandit
from rlops.service import ServiceSettings
from rlops.service.runner import BackgroundServer
from tests.keys import bearer, make_key
from tests.service.conftest import REWARD

HOUR_US = 3_600_000_000
STEP_US = HOUR_US // 2  # one batch of decisions every 30 simulated minutes
STEPS = 12
PER_STEP = 200
SHIFT_FROM = 8  # steps 8..11 (the last two hours) see users 25 years older
SECOND_VERSION_FROM = 6
MODEL = "news-model"


@dataclass(frozen=True)
class Scenario:
    """The home folder and what was put in it."""

    home: Path
    start_us: int
    report: Path


def make_home(root: Path, monkeypatch: pytest.MonkeyPatch, canary_from: int | None = None) -> Scenario:
    """Decisions and outcomes at simulated times over the six hours before now (the engine's clock is moved);
    from step ``canary_from`` on, a canary serves 30% of the units."""
    bandit = SyntheticBandit()
    schema = bandit.schema
    rng = np.random.default_rng(7)
    start = time.time_ns() // 1000 - STEPS * STEP_US - HOUR_US  # every attribution window (1 h) has closed by now
    clock = [start]
    monkeypatch.setattr("rlops.engine.engine.now_us", lambda: clock[0])
    home = root / "home"
    report_dir = home / "reports" / "news-model-v1"
    with Engine(home, fsync=False) as engine:
        engine.apply(DeploymentSpec.from_dict({"name": "news", "schema": schema.to_dict(), "reward": REWARD,
                                               "policy": {"kind": "linucb",
                                                          "params": {"alpha": 0.5, "epsilon": 0.1}}}))
        for step in range(STEPS):
            clock[0] = start + step * STEP_US
            if step == SECOND_VERSION_FROM:
                folder = save_policy(kinds()["linucb"](schema, alpha=1.0, epsilon=0.2), root / "candidate")  # type: ignore[call-arg]
                run = validate(ValidateOptions(policy=folder, events=home, deployment="news", measure=False,
                                               command="rlops validate --policy candidate --events HOME"))
                write_report(run.results, report_dir)
                with Registry(Home(home)) as registry:
                    version = registry.register(MODEL, folder, lineage=Lineage(reward_spec="click@1"),
                                                report=report_dir / "report.json", actor="test")
                    # Its report fails the DR gate on this little data: promoted by an override, as a user could.
                    registry.transition(MODEL, version.version, Stage.CANARY, reason="gates passed", actor="test",
                                        override_gates=True)
                    registry.transition(MODEL, version.version, Stage.PRODUCTION, reason="canary held",
                                        actor="test", override_gates=True)
                engine.apply(DeploymentSpec.from_dict({"name": "news", "schema": schema.to_dict(), "reward": REWARD,
                                                       "policy": {"version": f"{MODEL}@{version.version}"}}))
            if step == canary_from:
                Rollout(engine, actor="test").canary("news", PolicySource(kind="linucb", params={"alpha": 2.0}), 0.3,
                                                     reason="a bolder exploration")
            contexts = bandit.sample_contexts(PER_STEP, rng)
            if step >= SHIFT_FROM:
                for c in contexts:
                    c["age"] = min(90.0, c["age"] + 25.0)
            decisions = engine.decide_batch("news", contexts, [f"u{step}-{i}" for i in range(PER_STEP)])
            p_click = {"news@r1": 0.3, f"{MODEL}@1": 0.5}
            engine.report_batch([{"decision_id": d.decision_id,
                                  "fields": {"clicked": bool(rng.random() < p_click.get(d.policy_version, 0.45))}}
                                 for d in decisions], ts=clock[0] + 60_000_000)
    monkeypatch.undo()
    return Scenario(home, start, report_dir / "report.json")


@pytest.fixture
def scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scenario:
    return make_home(tmp_path, monkeypatch)


def _by_hand(home: Path) -> tuple[dict[str, dict[int, list[float]]], dict[str, Counter[str]], list[dict[str, Any]]]:
    """Rewards per version per decision time, actions per version, and the decision rows, from the log itself."""
    with Engine(home) as engine:
        decisions = engine.log.read_decisions().to_pylist()
        outcomes = engine.log.read_outcomes().to_pylist()
    clicked = {o["decision_id"]: 1.0 if json.loads(o["fields"])["clicked"] else 0.0 for o in outcomes}
    rewards: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    actions: dict[str, Counter[str]] = defaultdict(Counter)
    for d in decisions:
        ts = int(d["ts"].timestamp() * 1_000_000)
        rewards[d["policy_version"]][ts].append(clicked[d["decision_id"]])
        actions[d["policy_version"]][d["action"]] += 1
    return rewards, actions, decisions


def test_overview_matches_hand_computation(scenario: Scenario) -> None:
    rewards, actions, decisions = _by_hand(scenario.home)
    with Engine(scenario.home) as engine, Registry(Home(scenario.home)) as registry:
        overview = build_overview(engine, registry=registry)
    [dep] = overview.deployments
    assert dep.name == "news" and dep.revision == 2 and dep.decisions == STEPS * PER_STEP
    assert dep.rewarded == STEPS * PER_STEP  # every decision got an outcome

    # Buckets: 5.5 h of data in at most 30 aligned buckets is 15 minutes each; each batch is in its own bucket.
    assert dep.bucket_us == 900_000_000
    assert [s.policy_version for s in dep.rewards] == [f"{MODEL}@1", "news@r1"]
    for series in dep.rewards:
        by_time = rewards[series.policy_version]
        assert len(series.points) == len(by_time)
        for point, ts in zip(series.points, sorted(by_time), strict=True):
            values = by_time[ts]
            assert point.start_us == ts // dep.bucket_us * dep.bucket_us and point.n == len(values)
            half = Z95 * statistics.stdev(values) / math.sqrt(len(values))
            assert point.mean == pytest.approx(statistics.fmean(values), abs=1e-12)
            assert point.low == pytest.approx(statistics.fmean(values) - half, abs=1e-12)
            assert point.high == pytest.approx(statistics.fmean(values) + half, abs=1e-12)

    # Arms: one production arm, serving the registered version.
    [arm] = dep.arms
    assert (arm.role, arm.policy_version, arm.fraction) == ("production", f"{MODEL}@1", 1.0)
    assert (arm.registry_ref, arm.registry_stage, arm.decisions) == (f"{MODEL}@1", "production", 6 * PER_STEP)
    r2 = [v for values in rewards[f"{MODEL}@1"].values() for v in values]
    [compared] = dep.comparison.arms
    assert compared.mean == pytest.approx(statistics.fmean(r2), abs=1e-12) and compared.rewarded == len(r2)
    assert compared.high == pytest.approx(statistics.fmean(r2) + Z95 * statistics.stdev(r2) / math.sqrt(len(r2)))
    assert dep.comparison.guardrail is None and "no canary" in (dep.comparison.note or "")

    # Actions: shares per version.
    for dist in dep.actions:
        counted = actions[dist.policy_version]
        assert dist.decisions == sum(counted.values())
        assert {a.action: a.count for a in dist.actions} == dict(counted)
        assert {a.action: a.share for a in dist.actions} == pytest.approx(
            {k: v / dist.decisions for k, v in counted.items()})

    # Drift: the reference is the first batch; age alone shifts, in the last four batches.
    drift = dep.drift
    assert drift.reference_rows == PER_STEP and drift.note is None
    rows = {r.feature: r.psi for r in drift.features}
    assert set(rows) >= {"age", "device", "returning", "activity", "taste[0]"}
    step_of = {(scenario.start_us + k * STEP_US) // dep.bucket_us * dep.bucket_us: k for k in range(STEPS)}
    for b, bucket in enumerate(dep.buckets):
        if bucket not in step_of:
            assert rows["age"][b] is None and drift.rows[b] == 0
            continue
        assert drift.rows[b] == PER_STEP
        others = max(v[b] or 0.0 for name, v in rows.items() if name != "age")
        if step_of[bucket] >= SHIFT_FROM:
            assert rows["age"][b] > 0.25 and rows["age"][b] > 2 * others
        else:
            assert rows["age"][b] < 0.25
    # One cell by hand: age in the last bucket against the first batch's deciles.
    schema = SyntheticBandit().schema
    first = [d for d in decisions if (int(d["ts"].timestamp() * 1e6) - scenario.start_us) // STEP_US == 0]
    last = [d for d in decisions if (int(d["ts"].timestamp() * 1e6) - scenario.start_us) // STEP_US == STEPS - 1]
    ref_age = np.array([json.loads(d["context"])["age"] for d in first])
    live_age = np.array([json.loads(d["context"])["age"] for d in last])
    edges = np.unique(np.quantile(np.sort(ref_age), np.arange(1, 10) / 10))
    expected = psi(np.bincount(np.searchsorted(edges, ref_age), minlength=edges.size + 1),
                   np.bincount(np.searchsorted(edges, live_age), minlength=edges.size + 1))
    assert rows["age"][-1] == pytest.approx(expected, rel=1e-12)
    assert encode_contexts(schema, [d["context"] for d in last]).tolist() == \
        schema.encode([json.loads(d["context"]) for d in last]).tolist()

    # Validation reports: the file under the home folder and the copy stored with the registered version.
    sources = {(r.source, r.location) for r in overview.validation_reports}
    assert ("file", "reports/news-model-v1/report.json") in sources and ("registry", f"{MODEL}@1") in sources
    stored = json.loads(scenario.report.read_text())
    [report] = [r for r in overview.validation_reports if r.source == "file"]
    assert report.status == stored["status"] and [g.name for g in report.gates] == \
        [g["gate"]["name"] for g in stored["gates"]]
    [card] = overview.model_cards
    assert card.ref == f"{MODEL}@1" and card.stage == "production" and card.verified
    assert card.report_status == stored["status"] and card.lineage["reward_spec"] == "click@1"
    assert [t.to_stage for t in card.history] == ["candidate", "canary", "production"]
    assert not overview.alerts.available or overview.alerts.note in (None, "no alerts")


def test_canary_arm_gets_the_guardrail(tmp_path: Path) -> None:
    """A real canary (sticky split by the engine): each arm's rewards by hand, and the guardrail's verdict as
    ``rlops deploy check`` reaches it."""
    bandit = SyntheticBandit()
    rng = np.random.default_rng(3)
    with Engine(tmp_path / "home", fsync=False) as engine:
        engine.apply(DeploymentSpec.from_dict({"name": "news", "schema": bandit.schema.to_dict(), "reward": REWARD,
                                               "policy": {"kind": "linucb", "params": {"alpha": 0.5}}}))
        Rollout(engine, actor="test").canary("news", PolicySource(kind="linucb", params={"alpha": 2.0}), 0.3,
                                             reason="try it")
        decisions = engine.decide_batch("news", bandit.sample_contexts(600, rng), [f"u{i}" for i in range(600)])
        versions = {d.policy_version for d in decisions}
        canary_version = next(a.policy_version for a in engine.arms("news") if str(a.role) == "canary")
        clicks = {d.decision_id: bool(rng.random() < (0.6 if d.policy_version == canary_version else 0.3))
                  for d in decisions}
        engine.report_batch([{"decision_id": k, "fields": {"clicked": v}} for k, v in clicks.items()])
        overview = build_overview(engine)
        _, _, expected = Rollout(engine).judge("news")
    assert len(versions) == 2 and expected is not None
    [dep] = overview.deployments
    assert [(a.role, a.fraction) for a in dep.arms] == [("production", 0.7), ("canary", 0.3)]
    production, canary = dep.comparison.arms
    by_arm: dict[str, list[float]] = defaultdict(list)
    for d in decisions:
        by_arm[d.policy_version].append(1.0 if clicks[d.decision_id] else 0.0)
    assert canary.policy_version == canary_version and canary.rewarded == len(by_arm[canary_version])
    assert canary.mean == pytest.approx(statistics.fmean(by_arm[canary_version]), abs=1e-12)
    assert production.mean == pytest.approx(statistics.fmean(by_arm[production.policy_version]), abs=1e-12)
    assert production.decisions + canary.decisions == 600 and 0.2 < canary.decisions / 600 < 0.4
    guardrail = dep.comparison.guardrail
    assert guardrail is not None and guardrail.decision == expected.decision.value
    assert guardrail.difference == pytest.approx(expected.metric("reward").difference.estimate)
    assert [c.action for c in dep.changes][-1] == "canary"


def test_window_and_empty_states(scenario: Scenario, tmp_path: Path) -> None:
    with Engine(scenario.home) as engine:
        recent = build_overview(engine, window_s=3.2 * 3600)
        [dep] = recent.deployments
        assert dep.decisions == 4 * PER_STEP  # the last four batches are 1.5-3 h old
        assert [s.policy_version for s in dep.rewards] == [f"{MODEL}@1"]
        nothing = build_overview(engine, window_s=60)
        [dep] = nothing.deployments
        assert dep.decisions == 0 and dep.rewards == [] and dep.actions == [] and dep.drift.note == "no data yet"
        assert dep.comparison.arms[0].mean is None
    with Engine(tmp_path / "empty") as engine:
        empty = build_overview(engine)
    assert empty.deployments == [] and empty.model_cards == [] and empty.validation_reports == []


def test_dashboard_routes(scenario: Scenario) -> None:
    settings = ServiceSettings(home=scenario.home, port=0)
    viewer = make_key(scenario.home, "viewer")
    with (BackgroundServer(settings) as url,
          httpx.Client(base_url=url, timeout=30, headers=bearer(viewer)) as client):
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "<h1>rlops monitoring</h1>" in page.text and "://" not in page.text
        for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css"),
                           ("favicon.svg", "image/svg+xml")):
            response = client.get(f"/static/{name}")
            assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
            assert "https://" not in response.text
        assert client.get("/static/nope.js").status_code == 404
        assert client.get("/static/..%2F__init__.py").status_code == 404
        data = client.get("/v1/dashboard", params={"deployment": "news", "window": "24h"})
        assert data.status_code == 200, data.text
        body = data.json()
        assert body["deployments"][0]["name"] == "news" and body["window_s"] == 86400.0
        assert set(body["deployments"][0]) >= {"arms", "rewards", "comparison", "drift", "actions", "buckets"}
        missing = client.get("/v1/dashboard", params={"deployment": "nope"})
        assert missing.status_code == 404 and "nope" in missing.json()["error"]["message"]
        bad = client.get("/v1/dashboard", params={"window": "soon"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "window"
