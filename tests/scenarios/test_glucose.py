"""Glucose: the minimal model against closed forms, the KPIs by hand, basal-bolus dosing, perturbations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlops.errors import ValidationError
from rlops.scenarios import evaluate_controller
from rlops.scenarios.glucose import (
    HYPO_EVENTS,
    HYPOGLYCEMIA,
    MEAN_GLUCOSE,
    SEVERE_HYPOGLYCEMIA,
    SPEC,
    TIME_IN_RANGE,
    BasalBolus,
    GlucoseEnv,
    GlucoseParams,
    dose_action,
    dose_units,
    risk,
)

QUIET = {"meal_scale": 0.0, "cgm_noise_std": 0.0}  # no meals, a perfect sensor


def _basal() -> np.ndarray:
    return dose_action(GlucoseParams().basal_rate() * 5.0 / 60.0)


def test_dose_mapping_and_its_inverse() -> None:
    assert dose_units(np.array([-1.0])) == 0.0
    assert dose_units(np.array([0.0])) == pytest.approx(0.1)
    assert dose_units(np.array([1.0])) == pytest.approx(10.0)
    for units in (0.05, 0.081, 1.0, 6.5):
        assert dose_units(dose_action(units)) == pytest.approx(units, rel=1e-5)
    assert dose_action(0.0)[0] == -1.0 and dose_action(50.0)[0] == 1.0


def test_risk_function_is_zero_near_112_and_larger_low_than_high() -> None:
    assert risk(112.5) == pytest.approx(0.0, abs=0.01)
    assert risk(50.0) > risk(250.0) > risk(150.0) > 0.0


def test_under_basal_insulin_glucose_relaxes_exponentially_to_basal() -> None:
    env = GlucoseEnv(params=GlucoseParams(**QUIET))
    obs, _ = env.reset(seed=0)
    g0 = float(obs[0]) * 60.0 + 120.0
    p = env.params
    for k in range(1, 13):
        _, _, _, _, info = env.step(_basal())
        expected = p.basal_glucose + (g0 - p.basal_glucose) * math.exp(-p.p1 * 5.0 * k)
        assert info[MEAN_GLUCOSE] == pytest.approx(expected, abs=1e-3 * abs(g0 - p.basal_glucose) + 1e-3)


def test_a_meal_adds_its_absorbed_glucose_when_nothing_removes_it() -> None:
    # p1 = 0 and basal insulin (X = 0): glucose only accumulates what the gut releases, A_G * grams * 1000 / V_G.
    env = GlucoseEnv(params=GlucoseParams(p1=0.0, cgm_noise_std=0.0, meal_time_std=0.0, meal_size_cv=0.0))
    env.reset(seed=1)
    eaten = 0.0
    first = None
    for _ in range(288):
        _, _, _, _, info = env.step(_basal())
        first = info[MEAN_GLUCOSE] if first is None else first
        eaten += info["carbs_g"]
    assert eaten == pytest.approx(200.0)  # 50 + 70 + 80 g, no jitter
    rise = info[MEAN_GLUCOSE] - first
    expected = 0.8 * 200.0 * 1000.0 / 117.0
    assert rise == pytest.approx(expected, rel=0.01)  # the gut is all but empty after the last meal


def test_kpis_and_hypoglycaemia_signals_by_hand() -> None:
    env = GlucoseEnv(params=GlucoseParams(**QUIET))
    env.reset(seed=2)
    glucose, in_range, events, low, severe = [], [], 0.0, 0, 0
    previous, entries = math.inf, 0  # the day starts in [90, 160] mg/dL
    for k in range(60):
        action = dose_action(8.0) if k == 0 else dose_action(0.0)  # a large bolus, then nothing
        _, reward, _, _, info = env.step(action)
        g = info[MEAN_GLUCOSE]
        glucose.append(g)
        in_range.append(info[TIME_IN_RANGE])
        events += info[HYPO_EVENTS]
        low += int(info[HYPOGLYCEMIA])
        severe += int(info[SEVERE_HYPOGLYCEMIA])
        assert info[TIME_IN_RANGE] == (100.0 if 70.0 <= g <= 180.0 else 0.0)
        assert info[HYPOGLYCEMIA] == (1.0 if g < 70.0 else 0.0)
        assert reward == pytest.approx(-risk(g) / 10.0)
        entries += int(g < 70.0 <= previous)
        previous = g
    assert min(glucose) < 54.0  # 8 U without food: severe hypoglycaemia
    assert events == entries == 1
    assert low == sum(g < 70.0 for g in glucose) and severe == sum(g < 54.0 for g in glucose)


def test_basal_bolus_boluses_at_meals_and_gives_basal_otherwise() -> None:
    env = SPEC.make()
    controller = BasalBolus()
    obs, _ = env.reset(seed=3)
    basal = GlucoseParams().basal_rate() * 5.0 / 60.0
    boluses = 0
    for _ in range(288):
        announced = float(obs[6]) * 100.0
        units = dose_units(controller.act(obs))
        if announced > 0:
            boluses += 1
            assert units == pytest.approx(basal + announced / 10.0, rel=1e-5)
        else:
            assert units == pytest.approx(basal, rel=1e-5)
        obs, *_ = env.step(controller.act(obs))
    assert boluses == 3


def test_basal_bolus_keeps_the_default_patient_mostly_in_range() -> None:
    results = evaluate_controller(SPEC, SPEC.baseline, range(4))
    assert np.mean([r.kpis[TIME_IN_RANGE] for r in results]) > 70.0
    without = evaluate_controller(SPEC, BasalBolus(carb_ratio=1e9), range(4))  # basal only, no boluses
    assert np.mean([r.kpis[MEAN_GLUCOSE] for r in without]) > np.mean([r.kpis[MEAN_GLUCOSE] for r in results]) + 40


def test_bad_baseline_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="carb_ratio"):
        BasalBolus(carb_ratio=0.0)


def test_more_insulin_sensitivity_lowers_glucose() -> None:
    seeds = range(4)
    base = evaluate_controller(SPEC, SPEC.baseline, seeds)
    sensitive = evaluate_controller(SPEC, SPEC.baseline, seeds, params=SPEC.scaled({"p3": 1.3}))
    for b, s in zip(base, sensitive, strict=True):
        assert s.kpis[MEAN_GLUCOSE] < b.kpis[MEAN_GLUCOSE]


def test_bigger_meals_raise_glucose() -> None:
    seeds = range(4)
    base = evaluate_controller(SPEC, BasalBolus(carb_ratio=1e9), seeds)
    big = evaluate_controller(SPEC, BasalBolus(carb_ratio=1e9), seeds, params=SPEC.scaled({"meal_scale": 1.5}))
    for b, s in zip(base, big, strict=True):
        assert s.kpis[MEAN_GLUCOSE] > b.kpis[MEAN_GLUCOSE]
