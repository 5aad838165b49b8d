"""Building HVAC: one office zone as a two-resistance, two-capacitance (2R2C) thermal network.

The zone has an interior node (air, furniture, inner walls) at temperature ``T_i`` and an envelope node (outer
walls, slab) at ``T_e``, linked to each other and to the outdoor air ``T_o`` by thermal resistances. This is the
"TiTe" grey-box structure of Bacher & Madsen (2011), *Identifying suitable models for the heat dynamics of
buildings*, Energy and Buildings 43(7), 1511-1522; the same network underlies the reduced-order models of
ISO 13790 / ISO 52016-1. In kW, kWh/K and K/kW, with time ``t`` in hours::

    C_i dT_i/dt = (T_e - T_i) / R_ie + Q_hvac + Q_int + Q_sol
    C_e dT_e/dt = (T_i - T_e) / R_ie + (T_o - T_e) / R_ea

The system is linear, so it is discretised exactly under a zero-order hold over each step of ``dt`` hours:
with ``x = [T_i, T_e]``, ``w = [T_o, Q_hvac + Q_int + Q_sol]`` and ``dx/dt = A x + B w``, the augmented matrix
exponential ``expm([[A, B], [0, 0]] dt)`` gives ``x_{k+1} = A_d x_k + B_d w_k`` (no step-size instability).

Exogenous inputs (drawn at reset from the episode's seed, so every controller faces the same weather):

- Outdoor temperature, a daily sinusoid peaking at 15:00 plus AR(1) noise:
  ``T_o(h) = mean + offset + d + amp * cos(2 pi (h - 15) / 24) + n_k`` with a day-to-day shift
  ``d ~ N(0, daily_std^2)`` and ``n_{k+1} = rho n_k + sigma sqrt(1 - rho^2) e_k``.
- Solar gains ``Q_sol = solar_peak * max(0, sin(pi (h - 6) / 12))`` (daylight 06:00-18:00).
- Occupancy 08:00-18:00, with internal gains ``Q_int = occupant_gain`` while occupied.
- A three-period time-of-use tariff (off-peak 22:00-07:00, peak 14:00-20:00, mid otherwise), the structure of
  common commercial TOU tariffs.

**Action.** One number ``a`` in ``[-1, 1]``: thermal power, heating ``Q_hvac = a * heat_max`` for ``a > 0``,
cooling ``Q_hvac = a * cool_max`` for ``a < 0``. Power rather than a setpoint because a setpoint would hide an
inner control loop inside the environment: with power the agent owns the whole decision (setback, pre-heating
before the peak, riding the comfort band) and the energy it spends is exactly what it chose. Electric energy is
``|Q_hvac| / COP * dt`` (a heat pump, one COP per mode).

**Observation** (float32, each O(1), clipped to the bounds of the observation space): ``(T_i - 20) / 10``,
``(T_e - 20) / 10``, ``(T_o - 10) / 15``, ``sin`` and ``cos`` of the hour of day, occupied now (0/1), occupied one
hour ahead (0/1), price now and price one hour ahead divided by ``price_peak``.

**KPIs** (``info`` every step): ``energy_kwh`` (electric kWh), ``energy_cost`` ($), ``comfort_violation``
(degree-hours outside ``[comfort_low, comfort_high]`` while occupied, from the interior temperature at the end of
the step). **Constraints**: ``comfort_violated`` (occupied and outside the band at the end of the step),
``unsafe_temperature`` (interior below 12 °C or above 30 °C at any time).

**Reward**: ``-(energy_cost + comfort_weight * comfort_violation)`` per step (``comfort_weight`` in $ per
degree-hour, default 1.0).

**Baseline**: :class:`Thermostat`, fixed heating and cooling setpoints (21 °C and 24 °C) with a 1 K deadband,
on/off at full power, around the clock (no night setback).

The constants are illustrative of a small office zone (about 100 m²): an interior time constant of about two
hours and an envelope time constant of about a day, the orders of magnitude Bacher & Madsen report; they are not
fitted to a particular building.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlops.errors import ValidationError
from rlops.scenarios.base import KPI, Aggregation, Better, ScenarioSpec

ENV_ID = "rlops/Hvac-v0"
ENERGY, COST, COMFORT = "energy_kwh", "energy_cost", "comfort_violation"
COMFORT_VIOLATED, UNSAFE = "comfort_violated", "unsafe_temperature"
#: Observation scaling: ``(T - TEMP_CENTER) / TEMP_SCALE`` for the zone's two temperatures.
TEMP_CENTER, TEMP_SCALE = 20.0, 10.0
OUTDOOR_CENTER, OUTDOOR_SCALE = 10.0, 15.0
#: Bounds of each observation entry (values outside are clipped): temperatures -10..50 °C (outdoor -35..55 °C),
#: the clock, the occupancy flags, prices up to twice the peak price.
OBS_LOW = np.array([-3.0, -3.0, -3.0, -1.0, -1.0, 0.0, 0.0, 0.0, 0.0], dtype=np.float32)
OBS_HIGH = np.array([3.0, 3.0, 3.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0], dtype=np.float32)
UNSAFE_LOW, UNSAFE_HIGH = 12.0, 30.0


@dataclass(frozen=True)
class HvacParams:
    """Dynamics constants of the zone, its weather, schedule and tariff.

    Attributes:
        interior_capacitance: ``C_i``, kWh/K, default 2.0.
        envelope_capacitance: ``C_e``, kWh/K, default 8.0.
        interior_resistance: ``R_ie`` between interior and envelope, K/kW, default 1.0.
        envelope_resistance: ``R_ea`` between envelope and outdoor air, K/kW, default 3.0.
        heat_max: heating capacity, thermal kW, default 6.0.
        cool_max: cooling capacity, thermal kW, default 6.0.
        cop_heat: heating coefficient of performance, default 3.0.
        cop_cool: cooling coefficient of performance, default 3.0.
        occupant_gain: internal gains while occupied, kW, default 1.0.
        solar_peak: solar gains at noon, kW, default 2.0.
        outdoor_mean: mean outdoor temperature, °C, default 8.0.
        outdoor_offset: added to every outdoor temperature, K, default 0.0 (shift the weather with it).
        outdoor_amplitude: half the daily swing, K, default 5.0.
        outdoor_daily_std: day-to-day standard deviation of the daily mean, K, default 3.0.
        outdoor_noise_std: stationary standard deviation of the AR(1) noise, K, default 1.0.
        outdoor_noise_rho: AR(1) coefficient per step, default 0.9.
        occupancy_start: hour the zone fills, default 8.0.
        occupancy_end: hour it empties, default 18.0.
        comfort_low: lower comfort bound while occupied, °C, default 20.0.
        comfort_high: upper comfort bound while occupied, °C, default 25.0.
        price_offpeak: $/kWh 22:00-07:00, default 0.10.
        price_mid: $/kWh 07:00-14:00 and 20:00-22:00, default 0.18.
        price_peak: $/kWh 14:00-20:00, default 0.32.
    """

    interior_capacitance: float = 2.0
    envelope_capacitance: float = 8.0
    interior_resistance: float = 1.0
    envelope_resistance: float = 3.0
    heat_max: float = 6.0
    cool_max: float = 6.0
    cop_heat: float = 3.0
    cop_cool: float = 3.0
    occupant_gain: float = 1.0
    solar_peak: float = 2.0
    outdoor_mean: float = 8.0
    outdoor_offset: float = 0.0
    outdoor_amplitude: float = 5.0
    outdoor_daily_std: float = 3.0
    outdoor_noise_std: float = 1.0
    outdoor_noise_rho: float = 0.9
    occupancy_start: float = 8.0
    occupancy_end: float = 18.0
    comfort_low: float = 20.0
    comfort_high: float = 25.0
    price_offpeak: float = 0.10
    price_mid: float = 0.18
    price_peak: float = 0.32

    def check(self) -> None:
        """Reject constants that make the model meaningless (non-positive capacities, resistances, COPs)."""
        for name in ("interior_capacitance", "envelope_capacitance", "interior_resistance", "envelope_resistance",
                     "cop_heat", "cop_cool"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValidationError(f"params.{name}", f"must be a finite number > 0, got {value}")
        for name in ("heat_max", "cool_max", "outdoor_daily_std", "outdoor_noise_std"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValidationError(f"params.{name}", f"must be a finite number >= 0, got {value}")
        if not -1.0 < self.outdoor_noise_rho < 1.0:
            raise ValidationError("params.outdoor_noise_rho", f"must be in (-1, 1), got {self.outdoor_noise_rho}")
        if not self.comfort_low < self.comfort_high:
            raise ValidationError("params.comfort_high", "must be above comfort_low")

    def occupied(self, hour: float) -> bool:
        """Whether the zone is occupied at ``hour`` (hours since midnight, any day)."""
        h = hour % 24.0
        return self.occupancy_start <= h < self.occupancy_end

    def price(self, hour: float) -> float:
        """Electricity price in $/kWh at ``hour``."""
        h = hour % 24.0
        if h >= 22.0 or h < 7.0:
            return self.price_offpeak
        if 14.0 <= h < 20.0:
            return self.price_peak
        return self.price_mid

    def solar(self, hour: float) -> float:
        """Solar gains into the interior, kW."""
        return self.solar_peak * max(0.0, math.sin(math.pi * ((hour % 24.0) - 6.0) / 12.0))

    def discretise(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """``(A_d, B_d)`` of the exact zero-order-hold discretisation over ``dt`` hours."""
        from scipy.linalg import expm

        ci, ce = self.interior_capacitance, self.envelope_capacitance
        rie, rea = self.interior_resistance, self.envelope_resistance
        a = np.array([[-1.0 / (rie * ci), 1.0 / (rie * ci)],
                      [1.0 / (rie * ce), -1.0 / (rie * ce) - 1.0 / (rea * ce)]])
        b = np.array([[0.0, 1.0 / ci], [1.0 / (rea * ce), 0.0]])
        augmented = np.zeros((4, 4))
        augmented[:2, :2], augmented[:2, 2:] = a, b
        phi = expm(augmented * dt)
        return phi[:2, :2], phi[:2, 2:]


class HvacEnv(gym.Env[np.ndarray, np.ndarray]):
    """The zone as a Gymnasium environment (see the module docstring for the model).

    Args:
        params: dynamics constants, default :class:`HvacParams()`.
        days: episode length in days, default 1 (96 steps of 15 minutes).
        step_minutes: control interval, default 15.
        comfort_weight: reward penalty per degree-hour of discomfort, $/(K·h), default 1.0.
        render_mode: only ``None`` is supported.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - Gymnasium's class attribute

    def __init__(self, params: HvacParams | None = None, days: int = 1, step_minutes: int = 15,
                 comfort_weight: float = 1.0, render_mode: str | None = None) -> None:
        self.params = params if params is not None else HvacParams()
        self.params.check()
        if days < 1:
            raise ValidationError("days", f"must be >= 1, got {days}")
        if step_minutes < 1 or 1440 % step_minutes:
            raise ValidationError("step_minutes", f"must divide a day (1440 minutes), got {step_minutes}")
        if not comfort_weight >= 0:
            raise ValidationError("comfort_weight", f"must be >= 0, got {comfort_weight}")
        self.render_mode = render_mode
        self.dt = step_minutes / 60.0
        self.horizon = days * (1440 // step_minutes)
        self.comfort_weight = float(comfort_weight)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        self._ad, self._bd = self.params.discretise(self.dt)
        self._t = 0
        self._ti, self._te = 21.0, 20.0
        self._outdoor = np.zeros(self.horizon + 1)

    def set_params(self, params: HvacParams) -> None:
        """Change the constants from the next step on (e.g. shift ``outdoor_offset`` in the middle of a demo).

        The weather already drawn for the episode keeps its noise; the outdoor temperature moves by the change of
        ``outdoor_mean + outdoor_offset``.
        """
        params.check()
        shift = (params.outdoor_mean + params.outdoor_offset) - (self.params.outdoor_mean + self.params.outdoor_offset)
        self._outdoor = self._outdoor + shift
        self.params = params
        self._ad, self._bd = params.discretise(self.dt)

    def hour(self, step: int | None = None) -> float:
        """Hours since the episode's first midnight at ``step`` (default: the current step)."""
        return (self._t if step is None else step) * self.dt

    def _draw_weather(self) -> np.ndarray:
        p, rng = self.params, self.np_random
        n = self.horizon + 1
        steps_per_day = round(24.0 / self.dt)
        days = -(-n // steps_per_day)
        daily = rng.normal(0.0, p.outdoor_daily_std, size=days).repeat(steps_per_day)[:n]
        shocks = rng.standard_normal(n)
        noise = np.empty(n)
        noise[0] = p.outdoor_noise_std * shocks[0]
        scale = p.outdoor_noise_std * math.sqrt(1.0 - p.outdoor_noise_rho**2)
        for k in range(1, n):
            noise[k] = p.outdoor_noise_rho * noise[k - 1] + scale * shocks[k]
        hours = np.arange(n) * self.dt
        cycle = p.outdoor_amplitude * np.cos(2.0 * np.pi * (hours - 15.0) / 24.0)
        return p.outdoor_mean + p.outdoor_offset + daily + cycle + noise  # type: ignore[no-any-return]

    def _observation(self) -> np.ndarray:
        p, h = self.params, self.hour()
        angle = 2.0 * math.pi * (h % 24.0) / 24.0
        obs = np.array([
            (self._ti - TEMP_CENTER) / TEMP_SCALE,
            (self._te - TEMP_CENTER) / TEMP_SCALE,
            (self._outdoor[self._t] - OUTDOOR_CENTER) / OUTDOOR_SCALE,
            math.sin(angle), math.cos(angle),
            float(p.occupied(h)), float(p.occupied(h + 1.0)),
            p.price(h) / p.price_peak, p.price(h + 1.0) / p.price_peak,
        ])
        return np.clip(obs, OBS_LOW, OBS_HIGH).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start at midnight with the interior at 19-22 °C and the envelope up to 2 K colder."""
        super().reset(seed=seed)
        self._t = 0
        self._outdoor = self._draw_weather()
        self._ti = float(self.np_random.uniform(19.0, 22.0))
        self._te = self._ti - float(self.np_random.uniform(0.0, 2.0))
        return self._observation(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        p, h = self.params, self.hour()
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        q_hvac = a * p.heat_max if a >= 0 else a * p.cool_max
        cop = p.cop_heat if q_hvac >= 0 else p.cop_cool
        occupied = p.occupied(h)
        q_total = q_hvac + (p.occupant_gain if occupied else 0.0) + p.solar(h)
        t_out = float(self._outdoor[self._t])
        ad, bd = self._ad, self._bd
        ti = ad[0, 0] * self._ti + ad[0, 1] * self._te + bd[0, 0] * t_out + bd[0, 1] * q_total
        te = ad[1, 0] * self._ti + ad[1, 1] * self._te + bd[1, 0] * t_out + bd[1, 1] * q_total
        self._ti, self._te = float(ti), float(te)
        self._t += 1
        energy = abs(q_hvac) / cop * self.dt
        cost = energy * p.price(h)
        outside = max(0.0, p.comfort_low - self._ti, self._ti - p.comfort_high)
        violation = outside * self.dt if occupied else 0.0
        info = {
            ENERGY: energy,
            COST: cost,
            COMFORT: violation,
            COMFORT_VIOLATED: 1.0 if occupied and outside > 0 else 0.0,
            UNSAFE: 1.0 if not UNSAFE_LOW <= self._ti <= UNSAFE_HIGH else 0.0,
            "interior_temperature": self._ti,
            "outdoor_temperature": t_out,
            "hvac_power_kw": q_hvac,
        }
        reward = -(cost + self.comfort_weight * violation)
        return self._observation(), reward, False, self._t >= self.horizon, info


class Thermostat:
    """Fixed-setpoint on/off thermostat with a deadband, around the clock.

    Heating switches on below ``heat_setpoint - deadband / 2`` and off above ``heat_setpoint + deadband / 2``;
    cooling switches on above ``cool_setpoint + deadband / 2`` and off below ``cool_setpoint - deadband / 2``.
    While on, it asks for full power (action +1 or -1). It reads the interior temperature from the observation.

    Args:
        heat_setpoint: °C, default 21.0.
        cool_setpoint: °C, default 24.0.
        deadband: total width of the hysteresis, K, default 1.0.
    """

    def __init__(self, heat_setpoint: float = 21.0, cool_setpoint: float = 24.0, deadband: float = 1.0) -> None:
        if not heat_setpoint + deadband / 2 < cool_setpoint - deadband / 2:
            raise ValidationError("cool_setpoint", "heating and cooling bands overlap; raise cool_setpoint")
        self.heat_setpoint, self.cool_setpoint, self.deadband = heat_setpoint, cool_setpoint, deadband
        self.heating = self.cooling = False

    def reset(self, seed: int | None = None) -> None:
        self.heating = self.cooling = False

    def act(self, observation: Any) -> np.ndarray:
        t = float(np.asarray(observation)[0]) * TEMP_SCALE + TEMP_CENTER
        half = self.deadband / 2.0
        if t < self.heat_setpoint - half:
            self.heating = True
        elif t > self.heat_setpoint + half:
            self.heating = False
        if t > self.cool_setpoint + half:
            self.cooling = True
        elif t < self.cool_setpoint - half:
            self.cooling = False
        value = 1.0 if self.heating else -1.0 if self.cooling else 0.0
        return np.array([value], dtype=np.float32)


def thermostat_rule(context: Mapping[str, Any]) -> list[float]:
    """The thermostat as a stateless rule over a served context (``obs_0``: the scaled interior temperature), so
    the decision service can serve it: full heating below 21 °C, full cooling above 24 °C, off in between.

    :class:`Thermostat` keeps a 1 K hysteresis across steps; a rule served per request has no memory across
    requests, so this one switches at the setpoints themselves. Serve it as
    ``{"kind": "rule", "params": {"target": "rlops.scenarios.hvac:thermostat_rule"}}``.
    """
    t = float(context["obs_0"]) * TEMP_SCALE + TEMP_CENTER
    return [1.0 if t < 21.0 else -1.0 if t > 24.0 else 0.0]


def make_env(params: HvacParams | None = None, **options: Any) -> HvacEnv:
    """Build the environment (the spec's ``env_factory``)."""
    return HvacEnv(params=params, **options)


def make_baseline(env: gym.Env[Any, Any]) -> Thermostat:
    """The fixed-setpoint thermostat (21/24 °C, 1 K deadband)."""
    return Thermostat()


SPEC = ScenarioSpec(
    id=ENV_ID,
    params_type=HvacParams,
    env_factory=make_env,
    kpis=(
        KPI(ENERGY, Aggregation.SUM, Better.LOWER, "kWh", "electric energy of heating and cooling"),
        KPI(COST, Aggregation.SUM, Better.LOWER, "$", "energy cost under the time-of-use tariff"),
        KPI(COMFORT, Aggregation.SUM, Better.LOWER, "K·h", "degree-hours outside the comfort band while occupied"),
    ),
    constraints=(COMFORT_VIOLATED, UNSAFE),
    perturbable=("interior_capacitance", "envelope_capacitance", "interior_resistance", "envelope_resistance",
                 "heat_max", "cool_max", "cop_heat", "cop_cool", "occupant_gain", "solar_peak", "outdoor_mean",
                 "outdoor_offset", "outdoor_amplitude", "outdoor_daily_std", "outdoor_noise_std", "price_offpeak",
                 "price_mid", "price_peak"),
    baseline=make_baseline,
    description="An office zone (2R2C thermal model) heated and cooled by a heat pump under a time-of-use tariff; "
                "one day at 15-minute steps. Baseline: fixed-setpoint thermostat (21/24 °C, 1 K deadband).",
)
