"""Manufacturing line: flows and costs by hand, failures and maintenance, the baseline's schedule, perturbations."""

from __future__ import annotations

import numpy as np
import pytest

from rlops.errors import ValidationError
from rlops.scenarios import evaluate_controller
from rlops.scenarios.manufacturing import (
    COST,
    DOWNTIME,
    SPEC,
    STOCK_SCALE,
    THROUGHPUT,
    ManufacturingLineEnv,
    ManufacturingParams,
    ScheduledBaseStock,
    squash,
    unsquash,
)

RELIABLE = {"weibull_scale": 1e9}  # wear never turns into a failure


def _state(env: ManufacturingLineEnv, obs: np.ndarray) -> tuple[np.ndarray, float, float]:
    p = env.params
    buffers = obs[9:11].astype(float) * p.buffer_capacity
    return buffers, unsquash(float(obs[11]), STOCK_SCALE), unsquash(float(obs[12]), STOCK_SCALE)


def _action(rates: tuple[float, ...], maintain: tuple[bool, ...] = (False, False, False)) -> np.ndarray:
    return np.array([r - 1 for r in rates] + [1.0 if m else -1.0 for m in maintain], dtype=np.float32)


def test_one_step_of_flow_and_cost_by_hand() -> None:
    env = SPEC.make({**RELIABLE, "demand_rate": 0.0})
    obs, _ = env.reset(seed=0)
    buffers, finished, backlog = _state(env.unwrapped, obs)  # type: ignore[arg-type]
    assert backlog == 0.0
    _, reward, _, _, info = env.step(_action((1.0, 1.0, 1.0)))
    c1, c2, c3 = 10.0, 9.5, 10.0
    m3 = min(c3, buffers[1])  # processed last to first: M3 first empties B2, then M2 refills it
    m2 = min(c2, buffers[0], 30.0 - (buffers[1] - m3))
    m1 = min(c1, 30.0 - (buffers[0] - m2))
    assert info["produced"] == pytest.approx([m1, m2, m3])
    b1, b2, fg = buffers[0] - m2 + m1, buffers[1] - m3 + m2, finished + m3
    assert info[THROUGHPUT] == 0.0  # no demand, nothing ships
    assert info[COST] == pytest.approx(0.05 * (b1 + b2) + 0.1 * fg)
    assert info[DOWNTIME] == 0.0
    assert reward == pytest.approx(-info[COST] / 100.0)


def test_preventive_maintenance_stops_the_machine_and_charges_for_it() -> None:
    env = SPEC.make({**RELIABLE, "demand_rate": 0.0})
    env.reset(seed=0)
    _, _, _, _, info = env.step(_action((1.0, 0.0, 0.0), (True, False, False)))
    assert info["produced"][0] == 0.0
    assert info["maintenances"] == 1
    assert info[DOWNTIME] == 1.0
    holding = info[COST] - 100.0 - 20.0
    assert holding >= 0.0
    _, _, _, _, info = env.step(_action((1.0, 0.0, 0.0), (True, False, False)))  # pm_duration 2: still down
    assert info["produced"][0] == 0.0 and info["maintenances"] == 0  # the request while down is ignored
    _, _, _, _, info = env.step(_action((1.0, 0.0, 0.0)))
    assert info["produced"][0] > 0.0


def test_shipping_serves_the_backlog_from_finished_goods() -> None:
    env = SPEC.make({**RELIABLE, "demand_rate": 30.0})  # demand far above what the line makes
    env.reset(seed=2)
    shipped_total, produced_total = 0.0, 0.0
    obs, _ = env.reset(seed=2)
    _, finished0, _ = _state(env.unwrapped, obs)  # type: ignore[arg-type]
    for _ in range(20):
        obs, _, _, _, info = env.step(_action((1.0, 1.0, 1.0)))
        shipped_total += info[THROUGHPUT]
        produced_total += info["produced"][2]
    _, finished, backlog = _state(env.unwrapped, obs)  # type: ignore[arg-type]
    assert finished == 0.0 and backlog > 0.0  # everything made is shipped at once
    assert shipped_total == pytest.approx(finished0 + produced_total)
    assert backlog == pytest.approx(info["backlog"], rel=1e-5)


def test_a_worn_out_machine_fails_and_is_repaired_as_new() -> None:
    # hazard ~1 as soon as a machine works; repairs long enough that one step cannot finish them
    env = SPEC.make({"weibull_scale": 1e-3, "demand_rate": 0.0, "repair_mean": 1000.0})
    env.reset(seed=3)
    obs, _, _, _, info = env.step(_action((1.0, 0.0, 0.0)))
    assert info["produced"][0] > 0.0  # the failing step still produced
    assert info["failures"] == 1
    assert info[COST] >= 500.0
    assert obs[0] == 0.0 and obs[1] == 1.0 and 0.0 < obs[2] < 1.0  # as good as new, under repair, time to go
    obs, _, _, _, info = env.step(_action((1.0, 0.0, 0.0)))
    assert info["produced"][0] == 0.0 and info[DOWNTIME] == 1.0 and info["failures"] == 0


def test_an_idle_machine_does_not_wear() -> None:
    env = SPEC.make({"demand_rate": 0.0})
    obs, _ = env.reset(seed=4)
    wear = obs[0:9:3].copy()
    obs, _, _, _, info = env.step(_action((0.0, 0.0, 0.0)))
    assert info["failures"] == 0
    assert obs[0:9:3] == pytest.approx(wear)


def test_baseline_maintains_on_schedule_only() -> None:
    params = ManufacturingParams()
    controller = ScheduledBaseStock(params, pm_interval=48)
    assert controller.offsets == [0, 16, 32]
    obs = np.zeros(13, dtype=np.float32)
    requested = [np.flatnonzero(controller.act(obs)[3:] > 0).tolist() for _ in range(100)]
    expected = [[i for i, off in enumerate((0, 16, 32)) if (t - off) % 48 == 0] for t in range(100)]
    assert requested == expected


def test_baseline_base_stock_rule() -> None:
    params = ManufacturingParams()
    controller = ScheduledBaseStock(params, pm_interval=1000)
    controller.hour = 1  # off the maintenance schedule
    obs = np.zeros(13, dtype=np.float32)
    obs[9], obs[10] = 25.0 / 30.0, 15.0 / 30.0  # B1 above its target of 20, B2 five units below
    obs[11], obs[12] = squash(10.0, STOCK_SCALE), squash(40.0, STOCK_SCALE)  # level -30 vs target 30
    rates = controller.act(obs)[:3] + 1.0
    assert rates == pytest.approx([0.0, 5.0 / 9.5, 1.0], abs=1e-6)


def test_squashed_stocks_stay_below_one_and_invert() -> None:
    for x in (0.0, 10.0, 50.0, 5000.0):
        assert 0.0 <= squash(x, 50.0) < 1.0
        assert unsquash(squash(x, 50.0), 50.0) == pytest.approx(x)
    assert squash(50.0, 50.0) == 0.5


def test_baseline_needs_one_base_stock_per_machine() -> None:
    with pytest.raises(ValidationError, match="base_stock"):
        ScheduledBaseStock(ManufacturingParams(), base_stock=(10.0, 10.0))


def test_slower_repairs_mean_more_downtime() -> None:
    seeds = range(8)
    base = evaluate_controller(SPEC, SPEC.baseline, seeds)
    slow = evaluate_controller(SPEC, SPEC.baseline, seeds, params=SPEC.scaled({"repair_mean": 3.0}))
    assert sum(r.kpis[DOWNTIME] for r in slow) > sum(r.kpis[DOWNTIME] for r in base)


def test_less_reliable_machines_fail_more_and_cost_more() -> None:
    seeds = range(8)
    base = evaluate_controller(SPEC, SPEC.baseline, seeds)
    fragile = evaluate_controller(SPEC, SPEC.baseline, seeds, params=SPEC.scaled({"weibull_scale": 0.5}))
    assert sum(r.kpis[COST] for r in fragile) > sum(r.kpis[COST] for r in base)
    assert sum(r.kpis[THROUGHPUT] for r in fragile) < sum(r.kpis[THROUGHPUT] for r in base)


def test_more_demand_ships_more() -> None:
    seeds = range(4)
    base = evaluate_controller(SPEC, SPEC.baseline, seeds, params=SPEC.scaled({"demand_rate": 0.5}))
    busy = evaluate_controller(SPEC, SPEC.baseline, seeds)
    assert sum(r.kpis[THROUGHPUT] for r in busy) > 1.5 * sum(r.kpis[THROUGHPUT] for r in base)
