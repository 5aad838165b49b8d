"""``snapshot``: the numbers of ``rlops monitor``, checked against a hand computation from the decisions made."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlops.engine import DeploymentSpec, Engine
from rlops.errors import NotFoundError, ValidationError
from rlops.home import Home
from rlops.monitoring.drift import Severity
from rlops.monitoring.live import Z95, ReferenceCache, effective_sample_size, reward_stats, snapshot
from rlops.registry import Registry
from tests.monitoring.test_report import REWARD, WORLD, registered_home, serve, users


def _spec(alpha: float) -> DeploymentSpec:
    return DeploymentSpec.from_dict({"name": "news", "schema": WORLD.schema.to_dict(), "reward": REWARD,
                                     "policy": {"kind": "linucb", "params": {"alpha": alpha, "epsilon": 0.2}}})


@pytest.fixture
def home(tmp_path: Path) -> tuple[Home, dict[str, Any]]:
    """Revision 1 makes 40 decisions (25 clicked or not, one outcome expired, 15 waiting), revision 2 makes 10."""
    home = Home.resolve(tmp_path / "home").ensure()
    with Engine(home, fsync=False) as engine:
        engine.apply(_spec(0.5))
        first = engine.decide_batch("news", users(40, 1), [f"u{i}" for i in range(40)])
        engine.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": i % 4 == 0}}
                             for i, d in enumerate(first[:25])])
        ts = engine.decision(first[30].decision_id)["ts"]
        decided_us = round(dt.datetime.fromisoformat(ts).timestamp() * 1e6)
        late = engine.report(first[30].decision_id, {"clicked": True}, ts=decided_us + 2 * 3600 * 1_000_000)
        assert late.status.value == "dead_letter"
        engine.apply(_spec(2.0))
        second = engine.decide_batch("news", users(10, 2), [f"v{i}" for i in range(10)])
    return home, {"first": first, "second": second}


def test_numbers_per_version_match_a_hand_computation(home: tuple[Home, dict[str, Any]]) -> None:
    root, made = home
    with Engine(root) as engine:
        snap = snapshot(engine, window_s=3600)
    assert [(r.policy_version, r.live) for r in snap.rows] == [("news@r2", True), ("news@r1", False)]
    old = snap.rows[1]
    first = made["first"]
    assert (old.decisions, old.recent, old.joined, old.defaulted, old.pending, old.dead_letters) == (40, 40, 25, 0,
                                                                                                     15, 1)
    assert old.rate_per_s == pytest.approx(40 / 3600)
    rewards = np.array([1.0 if i % 4 == 0 else 0.0 for i in range(25)])
    mean, sd = rewards.mean(), rewards.std(ddof=1)
    assert old.reward is not None and old.reward.n == 25
    assert old.reward.mean == pytest.approx(7 / 25)
    assert (old.reward.low, old.reward.high) == pytest.approx((mean - 1.96 * sd / 5, mean + 1.96 * sd / 5), abs=1e-4)
    p = np.array([d.propensity for d in first])
    assert old.min_propensity == pytest.approx(p.min())
    weights = 1 / p
    assert old.ess == pytest.approx(weights.sum() ** 2 / (weights**2).sum())
    assert old.ess is not None and old.ess_fraction == pytest.approx(old.ess / 40)
    counts = Counter(d.action for d in first)
    top = counts.most_common(3)
    assert [share for _, share in old.top_actions] == pytest.approx([c / 40 for _, c in top])
    assert old.top_actions[0][0] == top[0][0]
    new = snap.rows[0]
    assert (new.decisions, new.joined, new.pending, new.dead_letters, new.reward) == (10, 0, 10, 0, None)
    assert new.drift is None and old.drift is None  # no registry reference, nothing asked for


def test_windows_close_as_time_passes(home: tuple[Home, dict[str, Any]]) -> None:
    root, _ = home
    later = snapshot_at(root, hours=2)
    old = later.rows[1]
    # two hours on, every window has closed: the 15 decisions without a usable outcome get the default reward 0
    assert (old.recent, old.joined, old.defaulted, old.pending) == (0, 25, 15, 0)
    assert old.reward is not None and old.reward.n == 40 and old.reward.mean == pytest.approx(7 / 40)
    assert old.rate_per_s == 0


def snapshot_at(root: Home, hours: float) -> Any:
    from rlops.engine.engine import now_us

    with Engine(root) as engine:
        return snapshot(engine, ["news"], window_s=60, as_of_us=now_us() + round(hours * 3600e6))


def test_drift_against_the_registered_profile(tmp_path: Path) -> None:
    root, _ = registered_home(tmp_path, n_reference=500)
    serve(root, users(200, 3, age_shift=20.0))
    with Engine(root) as engine, Registry(root) as registry:
        cache = ReferenceCache(registry)
        snap = snapshot(engine, window_s=3600, references=cache)
        drift = snap.rows[0].drift
        assert drift is not None and drift.reference == "news-model@1" and drift.feature == "age"
        assert drift.severity is Severity.ALERT and drift.psi > 1 and drift.rows == 200
        assert snapshot(engine, window_s=3600, references=cache, drift_rows=60).rows[0].drift.rows == 60  # type: ignore[union-attr]
        assert snapshot(engine, window_s=3600, references=ReferenceCache(None)).rows[0].drift is None


def test_bad_arguments(home: tuple[Home, dict[str, Any]]) -> None:
    root, _ = home
    with Engine(root) as engine:
        with pytest.raises(NotFoundError, match="deployment 'nope'"):
            snapshot(engine, ["nope"])
        with pytest.raises(ValidationError, match="window"):
            snapshot(engine, window_s=0)
        with pytest.raises(ValidationError, match="drift_rows"):
            snapshot(engine, drift_rows=0)


def test_helpers() -> None:
    assert reward_stats(np.array([])) is None
    one = reward_stats(np.array([2.0]))
    assert one is not None and one.mean == 2.0 and math.isnan(one.low)
    two = reward_stats(np.array([0.0, 1.0]))
    assert two is not None and two.high - two.mean == pytest.approx(Z95 * math.sqrt(0.5) / math.sqrt(2))
    assert effective_sample_size(np.full(10, 0.3)) == pytest.approx(10)
    assert effective_sample_size(np.array([1.0, 0.01])) == pytest.approx(101**2 / (1 + 10_000))
