"""Manufacturing line: serial machines that wear out and break down, buffers between them, and customer demand.

Three machines in series (``M1 -> B1 -> M2 -> B2 -> M3 -> finished goods``), one step per hour, a week per
episode. It is the classic serial production line with unreliable machines and finite buffers (Buzacott &
Shanthikumar, *Stochastic Models of Manufacturing Systems*, 1993; Dallery & Gershwin, *Manufacturing flow line
systems: a review*, 1992), with age-dependent failures and preventive maintenance as in the age-replacement model
of Barlow & Hunter (1960), *Optimum preventive maintenance policies*, Operations Research 8(1).

Per machine ``i`` with capacity ``c_i = capacity * capacity_factors[i]`` units per hour:

- **Production.** A working machine produces ``x_i = min(r_i c_i, input_i, space_i)`` units in the step: ``r_i``
  is its commanded rate in ``[0, 1]``, ``input_i`` the upstream buffer at the start of the step (unlimited raw
  material for M1) and ``space_i`` the free room in its output buffer after the downstream machine took its
  input (finished goods are unbounded). Machines are processed from last to first.
- **Wear and failures.** Wear grows with use, ``w_i += x_i / c_i`` (hours at full rate). The machine fails at the
  end of a step with the discrete Weibull hazard ``h = 1 - exp(-[((w + dw) / eta)^beta - (w / eta)^beta])``
  (``beta > 1``: failures become likelier as the machine wears). A failed machine is repaired for
  ``D ~ Geometric(1 / repair_mean)`` hours (1, 2, ...; mean ``repair_mean``) and comes back as good as new (``w = 0``).
- **Preventive maintenance.** Requested on a working machine, it takes the machine down for ``pm_duration``
  hours starting now and resets its wear to 0. Requests on a machine already down are ignored (no cost).
- **Demand.** ``d_k ~ Poisson(demand_rate)`` units per hour join the backlog; finished goods ship against the
  backlog at once: ``shipped = min(finished, backlog)``.

The failure draws, repair times and demand are drawn at reset from the episode's seed (common random numbers),
so two controllers on the same seed face the same luck; only wear decides whether a draw becomes a failure.

**Action** (``[-1, 1]^6``): the first three numbers set the rates, ``r_i = min(1, 1 + a_i)`` (``-1`` stops a
machine, ``0`` and above run it at full rate); the last three request preventive maintenance of machine ``i`` when
``> 0.5``. The zero action is business as usual, full rate and no maintenance, so an untrained agent's exploration
around zero does not stall the line or keep it in maintenance.

**Observation** (float32, clipped to the bounds of the observation space): per machine its wear ``w_i / eta``, 1.0
while under repair, its remaining downtime ``d`` (repair or maintenance) as ``d / (d + 10 h)``; then each buffer /
``buffer_capacity``, finished goods ``F`` as ``F / (F + 50)`` and backlog ``L`` as ``L / (L + 50)``. The
``x / (x + scale)`` form reads like ``x / scale`` for ordinary values and stays below 1 for the rare huge backlog
after a long breakdown, so a learned policy is never asked about inputs far outside what it trained on.

**KPIs**: ``throughput`` (units shipped), ``cost`` ($: maintenance, repairs, downtime, holding, backlog) and
``downtime`` (machine-hours down). **Constraint**: ``backlog_exceeded`` when the backlog is above
``backlog_limit`` at the end of a step.

**Reward**: ``(unit_margin * shipped - cost) / 100`` per step.

**Baseline**: :class:`ScheduledBaseStock`, preventive maintenance of each machine every ``pm_interval`` hours
(staggered), and the base-stock rule for rates: each machine works at the rate that brings its output buffer up to
a target level (for the last machine, finished goods minus backlog), and idles once the target is reached.

The constants are illustrative (a line loaded to about 80% of its nominal capacity), not fitted to a plant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlops.errors import ValidationError
from rlops.scenarios.base import KPI, Aggregation, Better, ScenarioSpec

ENV_ID = "rlops/ManufacturingLine-v0"
THROUGHPUT, COST, DOWNTIME = "throughput", "cost", "downtime"
BACKLOG_EXCEEDED = "backlog_exceeded"
STOCK_SCALE = 50.0
#: A maintenance request is an action entry above this.
MAINTAIN_THRESHOLD = 0.5
DOWNTIME_SCALE = 10.0
#: Upper bounds of the observation entries (every entry is >= 0; wear is clipped at 5 eta; the others are < 1).
MACHINE_HIGH = (5.0, 1.0, 1.0)
STOCK_HIGH = 1.0


def squash(x: float | np.ndarray, scale: float) -> Any:
    """``x / (x + scale)`` for ``x >= 0``: about ``x / scale`` for small ``x``, below 1 however large ``x`` grows."""
    return x / (x + scale)


def unsquash(y: float | np.ndarray, scale: float) -> Any:
    """The inverse of :func:`squash`."""
    return scale * y / (1.0 - y)


@dataclass(frozen=True)
class ManufacturingParams:
    """Dynamics and cost constants of the line.

    Attributes:
        capacity: nominal capacity of a machine, units/h, default 10.0.
        capacity_factors: per-machine multipliers of ``capacity`` (their count is the number of machines),
            default ``(1.0, 0.95, 1.0)`` (M2 is the bottleneck).
        weibull_scale: ``eta``, wear (full-rate hours) at which the cumulative hazard is 1, default 80.0.
        weibull_shape: ``beta`` (> 1: wear-out failures), default 2.5.
        repair_mean: mean repair time after a breakdown, h (>= 1), default 8.0.
        pm_duration: hours a preventive maintenance keeps a machine down, default 2.0 (rounded to whole hours).
        buffer_capacity: units each buffer between machines holds, default 30.0.
        demand_rate: mean demand, units/h, default 8.0.
        pm_cost: $ per preventive maintenance, default 100.0.
        repair_cost: $ per breakdown repair, default 500.0.
        downtime_cost: $ per machine-hour down (idle crew, lost overhead), default 20.0.
        buffer_holding_cost: $ per unit-hour in the buffers, default 0.05.
        finished_holding_cost: $ per unit-hour of finished goods, default 0.1.
        backlog_cost: $ per unit-hour of unmet demand, default 1.0.
        unit_margin: $ earned per unit shipped (reward only, not part of ``cost``), default 5.0.
        backlog_limit: backlog above which the service constraint is violated, units, default 40.0.
    """

    capacity: float = 10.0
    capacity_factors: tuple[float, ...] = (1.0, 0.95, 1.0)
    weibull_scale: float = 80.0
    weibull_shape: float = 2.5
    repair_mean: float = 8.0
    pm_duration: float = 2.0
    buffer_capacity: float = 30.0
    demand_rate: float = 8.0
    pm_cost: float = 100.0
    repair_cost: float = 500.0
    downtime_cost: float = 20.0
    buffer_holding_cost: float = 0.05
    finished_holding_cost: float = 0.1
    backlog_cost: float = 1.0
    unit_margin: float = 5.0
    backlog_limit: float = 40.0

    @property
    def machines(self) -> int:
        return len(self.capacity_factors)

    def capacities(self) -> np.ndarray:
        return self.capacity * np.asarray(self.capacity_factors, dtype=float)

    def hazard(self, wear: float, added: float) -> float:
        """Probability of failing in a step that adds ``added`` to ``wear`` (discrete Weibull hazard)."""
        eta, beta = self.weibull_scale, self.weibull_shape
        return 1.0 - math.exp(-(((wear + added) / eta) ** beta - (wear / eta) ** beta))

    def check(self) -> None:
        """Reject constants that make the model meaningless."""
        if self.machines < 1 or any(not f > 0 for f in self.capacity_factors):
            raise ValidationError("params.capacity_factors", "needs at least one factor, each > 0")
        for name in ("capacity", "weibull_scale", "weibull_shape", "buffer_capacity"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValidationError(f"params.{name}", f"must be a finite number > 0, got {value}")
        if not self.repair_mean >= 1.0:
            raise ValidationError("params.repair_mean", f"must be >= 1 hour, got {self.repair_mean}")
        if not self.pm_duration >= 1.0:
            raise ValidationError("params.pm_duration", f"must be >= 1 hour, got {self.pm_duration}")
        for name in ("demand_rate", "pm_cost", "repair_cost", "downtime_cost", "buffer_holding_cost",
                     "finished_holding_cost", "backlog_cost", "unit_margin", "backlog_limit"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValidationError(f"params.{name}", f"must be a finite number >= 0, got {value}")


class ManufacturingLineEnv(gym.Env[np.ndarray, np.ndarray]):
    """The line as a Gymnasium environment (see the module docstring for the model).

    Args:
        params: dynamics and cost constants, default :class:`ManufacturingParams()`.
        hours: episode length in hourly steps, default 168 (a week).
        render_mode: only ``None`` is supported.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - Gymnasium's class attribute

    def __init__(self, params: ManufacturingParams | None = None, hours: int = 168,
                 render_mode: str | None = None) -> None:
        self.params = params if params is not None else ManufacturingParams()
        self.params.check()
        if hours < 1:
            raise ValidationError("hours", f"must be >= 1, got {hours}")
        self.render_mode = render_mode
        self.horizon = hours
        n = self.params.machines
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2 * n,), dtype=np.float32)
        self._obs_high = np.array(MACHINE_HIGH * n + (1.0,) * (n - 1) + (STOCK_HIGH, STOCK_HIGH), dtype=np.float32)
        self.observation_space = spaces.Box(np.zeros_like(self._obs_high), self._obs_high, dtype=np.float32)
        self._caps = self.params.capacities()
        self._t = 0
        self._wear = np.zeros(n)
        self._down = np.zeros(n, dtype=np.int64)  # remaining hours down, this one included
        self._repairing = np.zeros(n, dtype=bool)
        self._buffers = np.zeros(n - 1)
        self._finished = 0.0
        self._backlog = 0.0
        self._uniforms = np.zeros((hours, n))
        self._repairs = np.ones((hours, n), dtype=np.int64)
        self._demand = np.zeros(hours)

    def _observation(self) -> np.ndarray:
        p = self.params
        per_machine = np.stack([self._wear / p.weibull_scale, self._repairing.astype(float),
                                squash(self._down, DOWNTIME_SCALE)], axis=1).reshape(-1)
        obs = np.concatenate([per_machine, self._buffers / p.buffer_capacity,
                              [squash(self._finished, STOCK_SCALE), squash(self._backlog, STOCK_SCALE)]])
        return np.clip(obs, 0.0, self._obs_high).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start with all machines working, random wear in ``[0, eta]`` and partly filled buffers."""
        super().reset(seed=seed)
        p, rng, n = self.params, self.np_random, self.params.machines
        self._t = 0
        self._wear = rng.uniform(0.0, p.weibull_scale, size=n)
        self._down = np.zeros(n, dtype=np.int64)
        self._repairing = np.zeros(n, dtype=bool)
        self._buffers = np.floor(rng.uniform(0.0, p.buffer_capacity / 2, size=n - 1))
        self._finished = float(np.floor(rng.uniform(0.0, 20.0)))
        self._backlog = 0.0
        self._uniforms = rng.random((self.horizon, n))
        self._repairs = rng.geometric(1.0 / p.repair_mean, size=(self.horizon, n))
        self._demand = rng.poisson(p.demand_rate, size=self.horizon).astype(float)
        return self._observation(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        p, n, k = self.params, self.params.machines, self._t
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        rates, maintain = np.minimum(1.0, 1.0 + a[:n]), a[n:] > MAINTAIN_THRESHOLD
        pm_hours = round(p.pm_duration)
        pm_started = 0
        for i in range(n):
            if maintain[i] and self._down[i] == 0:
                self._down[i] = pm_hours
                self._wear[i] = 0.0
                pm_started += 1
        working = self._down == 0
        produced = np.zeros(n)
        for i in reversed(range(n)):
            if not working[i]:
                continue
            available = math.inf if i == 0 else self._buffers[i - 1]
            space = math.inf if i == n - 1 else p.buffer_capacity - self._buffers[i]
            x = max(0.0, min(rates[i] * self._caps[i], available, space))
            produced[i] = x
            if i > 0:
                self._buffers[i - 1] -= x
            if i < n - 1:
                self._buffers[i] += x
            else:
                self._finished += x
        downtime = float(n - working.sum())
        failures = 0
        for i in range(n):
            self._down[i] = max(0, self._down[i] - 1)
            if self._down[i] == 0:
                self._repairing[i] = False
            if working[i]:
                added = produced[i] / self._caps[i]
                if added > 0 and self._uniforms[k, i] < p.hazard(self._wear[i], added):
                    failures += 1
                    self._down[i] = int(self._repairs[k, i])
                    self._repairing[i] = True
                    self._wear[i] = 0.0
                else:
                    self._wear[i] += added
        self._backlog += self._demand[k]
        shipped = min(self._finished, self._backlog)
        self._finished -= shipped
        self._backlog -= shipped
        holding = p.buffer_holding_cost * float(self._buffers.sum()) + p.finished_holding_cost * self._finished
        cost = (p.pm_cost * pm_started + p.repair_cost * failures + p.downtime_cost * downtime + holding
                + p.backlog_cost * self._backlog)
        self._t += 1
        info = {
            THROUGHPUT: shipped,
            COST: cost,
            DOWNTIME: downtime,
            BACKLOG_EXCEEDED: 1.0 if self._backlog > p.backlog_limit else 0.0,
            "produced": produced.tolist(),
            "failures": failures,
            "maintenances": pm_started,
            "backlog": self._backlog,
        }
        reward = (p.unit_margin * shipped - cost) / 100.0
        return self._observation(), reward, False, self._t >= self.horizon, info


class ScheduledBaseStock:
    """Fixed preventive-maintenance schedule plus the base-stock production rule.

    Machine ``i`` is maintained at hours ``t`` with ``t % pm_interval == offset_i`` (offsets spread the machines
    evenly over the interval; hours counted from the episode's start). Its rate brings the level downstream of it
    up to ``base_stock[i]``: ``r_i = clip((S_i - level_i) / c_i, 0, 1)``, where ``level_i`` is buffer ``i`` for
    the inner machines and finished goods minus backlog for the last one.

    Args:
        params: the line's constants (capacities, buffer size), read from the environment.
        pm_interval: hours between maintenances of a machine, default 48.
        base_stock: target level per machine (units), default 20 for buffers and 30 for finished goods.
    """

    def __init__(self, params: ManufacturingParams, pm_interval: int = 48,
                 base_stock: tuple[float, ...] | None = None) -> None:
        n = params.machines
        if pm_interval < 1:
            raise ValidationError("pm_interval", f"must be >= 1 hour, got {pm_interval}")
        self.params, self.pm_interval = params, pm_interval
        self.base_stock = np.asarray(base_stock if base_stock is not None else (20.0,) * (n - 1) + (30.0,))
        if self.base_stock.shape != (n,):
            raise ValidationError("base_stock", f"needs one level per machine ({n}), got {self.base_stock.shape}")
        self.offsets = [round(i * pm_interval / n) for i in range(n)]
        self.hour = 0

    def reset(self, seed: int | None = None) -> None:
        self.hour = 0

    def act(self, observation: Any) -> np.ndarray:
        p, n = self.params, self.params.machines
        obs = np.asarray(observation, dtype=np.float64)
        buffers = obs[3 * n: 3 * n + n - 1] * p.buffer_capacity
        finished, backlog = unsquash(obs[3 * n + n - 1], STOCK_SCALE), unsquash(obs[3 * n + n], STOCK_SCALE)
        levels = np.append(buffers, finished - backlog)
        rates = np.clip((self.base_stock - levels) / p.capacities(), 0.0, 1.0)
        maintain = np.array([(self.hour - off) % self.pm_interval == 0 for off in self.offsets])
        self.hour += 1
        return np.concatenate([rates - 1.0, np.where(maintain, 1.0, -1.0)]).astype(np.float32)


def make_env(params: ManufacturingParams | None = None, **options: Any) -> ManufacturingLineEnv:
    """Build the environment (the spec's ``env_factory``)."""
    return ManufacturingLineEnv(params=params, **options)


def make_baseline(env: gym.Env[Any, Any]) -> ScheduledBaseStock:
    """Maintenance every 48 h plus the base-stock rule, for the environment's line."""
    return ScheduledBaseStock(getattr(env.unwrapped, "params", ManufacturingParams()))


SPEC = ScenarioSpec(
    id=ENV_ID,
    params_type=ManufacturingParams,
    env_factory=make_env,
    kpis=(
        KPI(THROUGHPUT, Aggregation.SUM, Better.HIGHER, "units", "units shipped to customers"),
        KPI(COST, Aggregation.SUM, Better.LOWER, "$", "maintenance, repairs, downtime, holding and backlog"),
        KPI(DOWNTIME, Aggregation.SUM, Better.LOWER, "machine-h", "hours machines spent down"),
    ),
    constraints=(BACKLOG_EXCEEDED,),
    perturbable=("capacity", "weibull_scale", "weibull_shape", "repair_mean", "buffer_capacity", "demand_rate",
                 "pm_cost", "repair_cost", "downtime_cost", "buffer_holding_cost", "finished_holding_cost",
                 "backlog_cost"),
    baseline=make_baseline,
    description="Three machines in series with wear-dependent Weibull breakdowns, finite buffers and Poisson "
                "demand; one week at hourly steps. Baseline: maintenance every 48 h plus a base-stock rule.",
)
