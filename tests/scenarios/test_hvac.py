"""HVAC: the 2R2C model against an independent integration, the KPIs by hand, the thermostat, perturbations."""

from __future__ import annotations

import numpy as np
import pytest

from rlops.errors import ValidationError
from rlops.scenarios import evaluate_controller
from rlops.scenarios.hvac import (
    COMFORT,
    COMFORT_VIOLATED,
    COST,
    ENERGY,
    SPEC,
    TEMP_CENTER,
    TEMP_SCALE,
    HvacEnv,
    HvacParams,
    Thermostat,
)


def _obs_at(temperature: float) -> np.ndarray:
    obs = np.zeros(9, dtype=np.float32)
    obs[0] = (temperature - TEMP_CENTER) / TEMP_SCALE
    return obs


def test_exact_discretisation_matches_a_fine_euler_integration() -> None:
    p = HvacParams()
    ad, bd = p.discretise(0.25)
    x, w = np.array([21.0, 18.0]), np.array([5.0, 4.0])  # T_i, T_e; T_o, Q
    y = x.copy()
    h = 0.25 / 20_000
    for _ in range(20_000):
        ti, te = y
        dti = ((te - ti) / p.interior_resistance + w[1]) / p.interior_capacitance
        dte = ((ti - te) / p.interior_resistance + (w[0] - te) / p.envelope_resistance) / p.envelope_capacitance
        y = y + h * np.array([dti, dte])
    assert ad @ x + bd @ w == pytest.approx(y, abs=1e-4)


def test_energy_and_cost_of_one_step_by_hand() -> None:
    env = HvacEnv()
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.array([0.5], dtype=np.float32))  # 00:00-00:15, off-peak, unoccupied
    # 0.5 * 6 kW thermal / COP 3 = 1 kW electric for 0.25 h = 0.25 kWh at $0.10/kWh
    assert info[ENERGY] == pytest.approx(0.25)
    assert info[COST] == pytest.approx(0.025)
    assert info[COMFORT] == 0.0 and info[COMFORT_VIOLATED] == 0.0
    assert reward == pytest.approx(-0.025)
    _, _, _, _, info = env.step(np.array([-1.0], dtype=np.float32))  # full cooling: 6 / 3 * 0.25 = 0.5 kWh
    assert info[ENERGY] == pytest.approx(0.5)


def test_peak_price_and_comfort_degree_hours_while_occupied() -> None:
    env = HvacEnv(params=HvacParams(outdoor_mean=-5.0), comfort_weight=2.0)
    env.reset(seed=1)
    for _ in range(32):  # to 08:00 with the heating off: the zone is cold when people arrive
        env.step(np.array([0.0], dtype=np.float32))
    assert env.hour() == 8.0
    _, reward, _, _, info = env.step(np.array([1.0], dtype=np.float32))  # 08:00, mid price
    t = info["interior_temperature"]
    assert t < 20.0
    assert info[COMFORT] == pytest.approx((20.0 - t) * 0.25)
    assert info[COMFORT_VIOLATED] == 1.0
    assert info[COST] == pytest.approx(0.5 * 0.18)
    assert reward == pytest.approx(-(0.5 * 0.18 + 2.0 * (20.0 - t) * 0.25))
    for _ in range(23):  # to 14:00: peak price
        env.step(np.array([0.0], dtype=np.float32))
    _, _, _, _, info = env.step(np.array([1.0], dtype=np.float32))
    assert info[COST] == pytest.approx(0.5 * 0.32)


def test_episode_kpis_are_sums_of_step_values() -> None:
    env = SPEC.make()
    controller = Thermostat()
    obs, _ = env.reset(seed=5)
    energy = comfort = 0.0
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(controller.act(obs))
        energy += info[ENERGY]
        comfort += info[COMFORT]
        done = terminated or truncated
    result = evaluate_controller(SPEC, SPEC.baseline, seeds=[5])[0]
    assert result.kpis[ENERGY] == pytest.approx(energy)
    assert result.kpis[COMFORT] == pytest.approx(comfort)
    assert result.steps == 96


def test_thermostat_heats_below_the_band_and_not_above() -> None:
    t = Thermostat(heat_setpoint=21.0, cool_setpoint=24.0, deadband=1.0)
    assert t.act(_obs_at(19.0))[0] == 1.0
    assert t.act(_obs_at(21.2))[0] == 1.0  # still inside the deadband: keeps heating
    assert t.act(_obs_at(21.6))[0] == 0.0  # above 21.5: off
    assert t.act(_obs_at(20.8))[0] == 0.0  # inside the deadband: stays off
    assert t.act(_obs_at(25.0))[0] == -1.0  # above 24.5: cools
    assert t.act(_obs_at(23.8))[0] == -1.0
    assert t.act(_obs_at(23.4))[0] == 0.0
    t.reset()
    assert t.act(_obs_at(20.8))[0] == 0.0


def test_thermostat_keeps_the_zone_near_its_setpoint() -> None:
    env = SPEC.make()
    obs, _ = env.reset(seed=2)
    controller = Thermostat()
    temps = []
    for _ in range(96):
        obs, _, _, _, info = env.step(controller.act(obs))
        temps.append(info["interior_temperature"])
    assert min(temps[8:]) > 20.0 and max(temps) < 23.0


def test_overlapping_setpoints_are_refused() -> None:
    with pytest.raises(ValidationError, match="cool_setpoint"):
        Thermostat(heat_setpoint=22.0, cool_setpoint=22.5, deadband=1.0)


def test_warmer_weather_needs_less_heating() -> None:
    seeds = range(5)
    base = evaluate_controller(SPEC, SPEC.baseline, seeds)
    warm = evaluate_controller(SPEC, SPEC.baseline, seeds, params={"outdoor_offset": 5.0})
    assert sum(r.kpis[ENERGY] for r in warm) < 0.8 * sum(r.kpis[ENERGY] for r in base)


def test_better_insulation_needs_less_energy() -> None:
    seeds = range(5)
    base = evaluate_controller(SPEC, SPEC.baseline, seeds)
    insulated = evaluate_controller(SPEC, SPEC.baseline, seeds, params=SPEC.scaled({"envelope_resistance": 2.0}))
    assert sum(r.kpis[ENERGY] for r in insulated) < sum(r.kpis[ENERGY] for r in base)


def test_set_params_shifts_the_weather_from_the_next_step() -> None:
    env = HvacEnv()
    env.reset(seed=4)
    shifted = HvacEnv()
    shifted.reset(seed=4)
    for _ in range(10):
        a = env.step(np.array([0.0], dtype=np.float32))[4]
        b = shifted.step(np.array([0.0], dtype=np.float32))[4]
        assert a["outdoor_temperature"] == b["outdoor_temperature"]
    shifted.set_params(HvacParams(outdoor_offset=8.0))
    a = env.step(np.array([0.0], dtype=np.float32))[4]
    b = shifted.step(np.array([0.0], dtype=np.float32))[4]
    assert b["outdoor_temperature"] == pytest.approx(a["outdoor_temperature"] + 8.0)


def test_bad_constants_are_refused_by_name() -> None:
    with pytest.raises(ValidationError, match=r"params\.interior_capacitance"):
        SPEC.make({"interior_capacitance": 0.0})
    with pytest.raises(ValidationError, match="step_minutes"):
        HvacEnv(step_minutes=7)
