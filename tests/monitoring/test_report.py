"""``window_drift`` and its HTML: a real engine in a temporary home, live traffic with one feature shifted."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlops.engine import DeploymentSpec, Engine
from rlops.errors import NotFoundError, ValidationError
from rlops.events.tables import parse_time_us
from rlops.home import Home
from rlops.monitoring.drift import Metric, ReferenceProfile, Severity
from rlops.monitoring.report import ReferenceKind, iso, render_html, window_drift, write_html
from rlops.policies import LinUCB, save_policy
from rlops.registry import ModelRef, Registry
from rlops.scenarios import SyntheticBandit

WORLD = SyntheticBandit(seed=0)
REWARD = {"name": "click", "version": 1, "expression": "1 if clicked else 0", "fields": {"clicked": {}},
          "window": "1h", "missing": 0.0}
MODEL = "news-model"


def users(n: int, seed: int, age_shift: float = 0.0) -> list[dict[str, Any]]:
    """Users of the synthetic bandit; ``age_shift`` years added to every age (clipped to the schema's 90)."""
    contexts = WORLD.sample_contexts(n, np.random.default_rng(seed))
    for c in contexts:
        c["age"] = min(90.0, c["age"] + age_shift)
    return contexts


def registered_home(tmp_path: Path, n_reference: int = 1500) -> tuple[Home, Path]:
    """A home with ``news-model@1`` registered with a reference profile of unshifted users, and deployment
    ``news`` serving that registered policy folder."""
    home = Home.resolve(tmp_path / "home").ensure()
    rng = np.random.default_rng(1)
    profile = ReferenceProfile.build(WORLD.schema, users(n_reference, 2), actions=rng.integers(0, 5, n_reference),
                                     rewards=(rng.random(n_reference) < 0.3).astype(float))
    policy = save_policy(LinUCB(WORLD.schema, alpha=0.5, epsilon=0.1), tmp_path / "policy")
    with Registry(home) as registry:
        version = registry.register(MODEL, policy, reference=profile)
        folder = registry.folder(MODEL, version.version) / "policy"
    with Engine(home, fsync=False) as engine:
        engine.apply(DeploymentSpec.from_dict({"name": "news", "schema": WORLD.schema.to_dict(), "reward": REWARD,
                                               "policy": {"path": str(folder)}}))
    return home, folder


def serve(home: Home, contexts: list[dict[str, Any]], outcomes: bool = True) -> list[Any]:
    """Decide for every context of deployment ``news`` and report a click for every third."""
    with Engine(home, fsync=False) as engine:
        decisions = engine.decide_batch("news", contexts, [f"u{i}" for i in range(len(contexts))])
        if outcomes:
            engine.report_batch([{"decision_id": d.decision_id, "fields": {"clicked": i % 3 == 0}}
                                 for i, d in enumerate(decisions)])
    return decisions


@pytest.fixture
def shifted(tmp_path: Path) -> Home:
    home, _ = registered_home(tmp_path)
    serve(home, users(600, 3, age_shift=20.0))
    return home


def test_the_shifted_feature_is_flagged_and_the_others_are_not(shifted: Home) -> None:
    report = window_drift(shifted, "news", window_s=3600)
    assert report.reference.kind is ReferenceKind.REGISTRY and report.reference.description == f"{MODEL}@1"
    assert report.batch.n_live == 600 and report.n_rewarded == 600
    age = report.batch.feature("age")
    assert age.severity is Severity.ALERT and age.value(Metric.PSI) > 1.0
    for name in ("device", "returning", "activity", "taste[0]", "taste[3]"):
        assert report.batch.feature(name).severity is Severity.NONE, name
    assert report.batch.multivariate is not None and report.batch.multivariate.severity is Severity.ALERT
    # the served policy mostly exploits one action, unlike the reference's uniform mix
    assert report.batch.actions[0].severity is Severity.ALERT
    assert report.rewards is not None and report.rewards.name == "reward"
    assert report.severity is Severity.ALERT
    assert json.loads(json.dumps(report.to_dict()))["drift"]["drifted"][0] == "age"


def test_the_html_has_the_plots_and_names_the_features(shifted: Home, tmp_path: Path) -> None:
    report = window_drift(shifted, "news", window_s=3600, sub_windows=6)
    path = write_html(report, tmp_path / "out" / "drift.html")
    html = path.read_text()
    assert html.startswith("<!doctype html>") and "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    svgs = re.findall(r"<svg .*?</svg>", html)
    assert len(svgs) == len(report.histograms) + 1  # one histogram per column, and the heatmap
    for name in ("age", "device", "returning", "activity", "taste[2]", "action", "reward"):
        assert f'aria-label="{name} ·' in html, name
    assert "PSI per feature over the window" in html and "Severity per column" in html
    assert report.command in html and "--end" in report.command
    assert report.heatmap.features[0] == "age" and len(report.heatmap.starts_us) == 6
    assert sum(report.heatmap.rows) == 600
    shown = [v for v in report.heatmap.psi[0] if not np.isnan(v)]
    assert shown and min(shown) > 0.25  # age drifted in every sub-window with enough decisions
    assert render_html(report) == html


def test_histograms_are_proportions_on_shared_bins(shifted: Home) -> None:
    report = window_drift(shifted, "news", window_s=3600)
    by_name = {h.name: h for h in report.histograms}
    age = by_name["age"]
    assert age.edges is not None and len(age.edges) == len(age.labels) + 1
    assert sum(age.reference) == pytest.approx(1.0) and sum(age.live) == pytest.approx(1.0)
    # the live ages sit to the right of the reference's: more mass in the upper half of the shared bins
    half = len(age.labels) // 2
    assert sum(age.live[half:]) > sum(age.reference[half:]) + 0.3
    device = by_name["device"]
    assert device.labels == ("mobile", "desktop", "tablet") and device.edges is None


def test_without_a_registered_profile_an_earlier_window_is_the_baseline(tmp_path: Path) -> None:
    home = Home.resolve(tmp_path / "home").ensure()
    with Engine(home, fsync=False) as engine:
        engine.apply(DeploymentSpec.from_dict({"name": "news", "schema": WORLD.schema.to_dict(), "reward": REWARD,
                                               "policy": {"kind": "uniform"}}))
    serve(home, users(400, 5))
    time.sleep(0.01)
    middle = int(time.time() * 1e6)
    time.sleep(0.01)
    serve(home, users(400, 6, age_shift=25.0))
    end = int(time.time() * 1e6) + 1
    report = window_drift(home, "news", window_s=(end - middle) / 1e6, end_us=end, baseline_s=600)
    assert report.reference.kind is ReferenceKind.BASELINE and report.reference.n_rows == 400
    assert report.reference.end_us is not None and abs(report.reference.end_us - middle) <= 1
    assert report.batch.n_live == 400
    assert report.batch.feature("age").severity is Severity.ALERT
    assert report.batch.feature("activity").severity is Severity.NONE
    # a uniform policy in both windows: the action mix did not move
    assert report.batch.actions[0].severity is Severity.NONE
    # with no baseline option, the default is a baseline as long as the window, found too (no registry profile)
    assert window_drift(home, "news", window_s=(end - middle) / 1e6, end_us=end).reference.kind is (
        ReferenceKind.BASELINE)


def test_a_named_registry_version_is_used(shifted: Home) -> None:
    report = window_drift(shifted, "news", window_s=3600, reference=ModelRef(MODEL, 1))
    assert report.reference.description == f"{MODEL}@1"
    assert f"--reference {MODEL}@1" in report.command


def test_errors_name_the_option(shifted: Home, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="deployment 'nope'"):
        window_drift(shifted, "nope", window_s=3600)
    with pytest.raises(ValidationError) as info:
        window_drift(shifted, "news", window_s=60, end_us=parse_time_us("2001-01-01T00:00:00Z", "end"))
    assert info.value.field == "window" and "no served decisions" in info.value.rule and "--window" in str(info.value)
    with pytest.raises(ValidationError) as info:
        window_drift(shifted, "news", window_s=0)
    assert info.value.field == "window"
    policy = save_policy(LinUCB(WORLD.schema), tmp_path / "bare")
    with Registry(shifted) as registry:
        registry.register("bare", policy)  # no reference profile
    with pytest.raises(ValidationError) as info:
        window_drift(shifted, "news", window_s=3600, reference=ModelRef("bare", 1))
    assert info.value.field == "reference" and "no reference profile" in info.value.rule
    with pytest.raises(ValidationError) as info:
        window_drift(shifted, "news", window_s=3600, baseline_s=1)
    assert info.value.field == "baseline_window"


def test_too_few_decisions_in_the_window(tmp_path: Path) -> None:
    home, _ = registered_home(tmp_path, n_reference=200)
    serve(home, users(10, 7))
    with pytest.raises(ValidationError) as info:
        window_drift(home, "news", window_s=3600)
    assert info.value.field == "window" and "10 served decisions" in info.value.rule


def test_times() -> None:
    assert parse_time_us("2024-06-01T00:00:00Z", "end") == parse_time_us("2024-06-01", "end") == 1_717_200_000_000_000
    assert parse_time_us("123", "end") == 123
    assert iso(1_717_200_000_000_000) == "2024-06-01T00:00:00Z"
    with pytest.raises(ValidationError, match="end"):
        parse_time_us("yesterday", "end")
