"""Batch drift: the numbers equal direct computations, severities follow the thresholds, bad input is named."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from rlops.errors import ConfigError, ValidationError
from rlops.monitoring.drift import (
    CategoricalProfile,
    DomainClassifier,
    DriftConfig,
    Metric,
    NumericProfile,
    ReferenceProfile,
    Severity,
    Threshold,
    batch_drift,
    cramers_v,
    psi,
)
from rlops.schema import Schema
from tests.monitoring.drift.conftest import contexts


@pytest.fixture
def profile(schema: Schema) -> ReferenceProfile:
    rng = np.random.default_rng(0)
    return ReferenceProfile.build(schema, contexts(4000, seed=0), actions=rng.integers(0, 3, 4000),
                                  rewards=rng.normal(1.0, 0.5, 4000))


def test_a_window_from_the_reference_distribution_does_not_drift(schema: Schema, profile: ReferenceProfile) -> None:
    rng = np.random.default_rng(1)
    report = batch_drift(profile, contexts(3000, seed=1), schema=schema, actions=rng.integers(0, 3, 3000),
                         rewards=rng.normal(1.0, 0.5, 3000))
    assert report.severity is Severity.NONE, report.to_dict()
    assert report.drifted == []
    assert report.multivariate is not None and 0.4 < report.multivariate.auc < 0.6
    assert report.n_live == 3000


def test_numeric_values_equal_direct_computations(schema: Schema, profile: ReferenceProfile) -> None:
    window = contexts(3000, seed=2, temperature_shift=2.5)  # half a standard deviation
    report = batch_drift(profile, window, schema=schema)
    live = np.array([row["temperature"] for row in window])
    reference = profile.features[0]
    assert isinstance(reference, NumericProfile)
    result = report.feature("temperature")
    assert result.value(Metric.KS) == pytest.approx(stats.ks_2samp(reference.sample, live).statistic, abs=1e-12)
    assert result.value(Metric.WASSERSTEIN) == pytest.approx(
        stats.wasserstein_distance(reference.sample, live) / reference.std, rel=1e-3)
    bins = np.bincount(np.searchsorted(reference.edges, live, side="left"), minlength=reference.edges.size + 1)
    assert result.value(Metric.PSI) == pytest.approx(psi(reference.counts, bins), abs=1e-12)
    assert result.severity is Severity.ALERT
    assert report.severity is Severity.ALERT
    assert report.drifted == ["temperature"]


def test_categorical_shift_is_judged_on_category_frequencies(schema: Schema, profile: ReferenceProfile) -> None:
    window = contexts(3000, seed=3, blue=0.5)
    report = batch_drift(profile, window, schema=schema)
    color = report.feature("color")
    reference = profile.features[2]
    assert isinstance(reference, CategoricalProfile)
    live = [sum(row["color"] == c for row in window) for c in ("red", "green", "blue")] + [0]
    assert color.value(Metric.CRAMERS_V) == pytest.approx(cramers_v(reference.counts, live))
    assert color.severity is not Severity.NONE
    assert report.feature("temperature").severity is Severity.NONE


def test_actions_and_rewards_are_compared(schema: Schema, profile: ReferenceProfile) -> None:
    rng = np.random.default_rng(4)
    report = batch_drift(profile, contexts(2000, seed=4), schema=schema, actions=np.zeros(2000, dtype=int),
                         rewards=rng.normal(0.0, 0.5, 2000))
    assert report.actions[0].severity is Severity.ALERT
    assert report.rewards is not None and report.rewards.severity is Severity.ALERT
    assert report.drifted == []
    assert report.severity is Severity.ALERT


def test_thresholds_are_configurable(schema: Schema, profile: ReferenceProfile) -> None:
    window = contexts(2000, seed=5, temperature_shift=0.75)  # 0.15 standard deviations
    default = batch_drift(profile, window, schema=schema).feature("temperature")
    assert default.severity is Severity.WARN
    lenient = DriftConfig(wasserstein=Threshold(warn=0.5, alert=1.0), ks=Threshold(), psi=Threshold(),
                          jensen_shannon=Threshold())
    assert batch_drift(profile, window, schema=schema, config=lenient).feature("temperature").severity is Severity.NONE


def test_matrix_input_and_report_dict(schema: Schema, profile: ReferenceProfile) -> None:
    window = contexts(500, seed=6)
    matrix = schema.encode([schema.validate_context(c) for c in window])
    a = batch_drift(profile, window, schema=schema).to_dict()
    b = batch_drift(profile, matrix).to_dict()
    assert a == b
    json.dumps(b)
    assert b["features"][0]["metrics"]["ks"]["severity"] in {"none", "warn", "alert"}


def test_bad_windows_are_named(schema: Schema, profile: ReferenceProfile) -> None:
    matrix = schema.encode([schema.validate_context(c) for c in contexts(100, seed=7)])
    with pytest.raises(ValidationError) as raised:
        batch_drift(profile, matrix[:, :3])
    assert raised.value.field == "live"
    matrix[42, 1] = np.inf
    with pytest.raises(ValidationError) as raised:
        batch_drift(profile, matrix)
    assert raised.value.field == "live[42].visits"
    with pytest.raises(ValidationError) as raised:
        batch_drift(profile, matrix[:10])
    assert "min_rows" in raised.value.rule
    with pytest.raises(ValidationError) as raised:
        batch_drift(profile, contexts(60, seed=7), schema=schema, actions=[0] * 59)
    assert raised.value.field == "actions"
    with pytest.raises(ConfigError, match=r"psi\.warn"):
        DriftConfig.from_dict({"psi": {"warn": -1}})
    with pytest.raises(ConfigError, match="above alert"):
        DriftConfig.from_dict({"ks": {"warn": 0.5, "alert": 0.2}})


@pytest.mark.slow
def test_the_domain_classifier_sees_a_change_no_single_feature_shows(schema: Schema) -> None:
    rng = np.random.default_rng(8)
    reference = contexts(2000, seed=8)
    profile = ReferenceProfile.build(schema, reference)
    window = contexts(2000, seed=9)
    for row in window:  # same marginals, but the two embedding elements now move together
        z = float(rng.normal())
        row["embedding"] = [z, z]
    config = DriftConfig(domain_classifier=DomainClassifier.GRADIENT_BOOSTING, domain_rows=400, domain_folds=3)
    report = batch_drift(profile, window, schema=schema, config=config)
    assert report.drifted == []
    assert report.multivariate is not None
    assert report.multivariate.auc > 0.7
    assert report.multivariate.severity is Severity.ALERT
