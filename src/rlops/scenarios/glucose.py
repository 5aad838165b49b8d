"""Glucose control: a type-1 diabetic patient as Bergman's minimal model with subcutaneous insulin and a gut.

**This is a simulator for testing control software. It is not a medical device and not medical advice; nothing it
produces should guide anyone's insulin dosing.**

Plasma glucose ``G`` (mg/dL), remote insulin action ``X`` (1/min) and plasma insulin ``I`` (mU/L) follow the
minimal model of Bergman et al. (1979), *Quantitative estimation of insulin sensitivity*, Am J Physiol 236(6),
in the form used for type-1 control since Fisher (1991), *A semiclosed-loop algorithm for the control of blood
glucose levels in diabetics*, IEEE TBME 38(1), with no endogenous insulin::

    dG/dt = -p1 (G - Gb) - X G + Ra(t) / V_G
    dX/dt = -p2 X + p3 (I - Ib)
    dI/dt = -n I + U_I(t) / V_I

Insulin is given subcutaneously, as a pump does, and reaches plasma through the two-compartment depot of Hovorka
et al. (2004), *Nonlinear model predictive control of glucose concentration in subjects with type 1 diabetes*,
Physiol Meas 25(4); meals enter through the same paper's two-compartment gut (a meal of ``m`` grams adds
``1000 A_G m`` mg to ``D1``)::

    dS1/dt = u(t) - S1 / t_I,    dS2/dt = (S1 - S2) / t_I,    U_I = S2 / t_I      (mU/min)
    dD1/dt = -D1 / t_G,          dD2/dt = (D1 - D2) / t_G,    Ra  = D2 / t_G      (mg/min)

Time is in minutes; the model is integrated with fourth-order Runge-Kutta at 1-minute substeps. Under the basal
infusion ``u_b = n Ib V_I`` the patient rests at ``G = Gb``; without insulin, glucose climbs towards
``p1 Gb / (p1 - p3 Ib / p2)`` (about 500 mg/dL with the defaults). The defaults take ``p2``, ``n``, ``V_I`` of the
order of Fisher's values and ``t_I``, ``t_G``, ``A_G`` of Hovorka's, and set ``p1`` and ``p3`` so that glucose
without insulin stays high, as in type-1 diabetes, and a unit of insulin covers about 10 g of carbohydrate.
They describe one virtual patient, not a population.

An episode is one day from 06:00 in 5-minute steps (the interval of a continuous glucose monitor, CGM).
Breakfast (07:00, 50 g), lunch (12:30, 70 g) and dinner (19:00, 80 g) move by ``N(0, 20 min)`` and their sizes by
a factor ``N(1, 0.2)`` (kept in [0.5, 1.5]). A meal is announced to the controller when it is eaten, with the
patient's carbohydrate count, which is off by a factor ``N(1, carb_count_cv)`` (kept in [0.5, 1.5]). The CGM
reads ``G`` plus Gaussian noise. All of it is drawn at reset from the episode's seed.

**Action**: one number ``a`` in ``[-1, 1]``, the insulin dose of the step on a log scale:
``dose = 0.1 U * 100^a`` (0.001 U just above ``a = -1``, 0.1 U at 0, 10 U at 1) and exactly 0 at ``a = -1``,
infused evenly over the 5 minutes. A log scale because doses span four orders of magnitude: a basal step is
about 0.08 U and a meal bolus several units.

**Observation** (float32, clipped to the bounds of the observation space): CGM glucose ``(G_cgm - 120) / 60``, its
change over the last step / 10 mg/dL, insulin in the subcutaneous depot above basal ``(S1 + S2 - basal) / 5 U``,
plasma insulin ``(I - Ib) / (5 Ib)``, insulin action ``X / 0.01``, carbohydrate in the gut ``(D1 + D2) / 50 g``, the
announced carbohydrate of this step / 100 g, and ``sin``, ``cos`` of the time of day. The insulin and gut states
stand for the insulin-on-board and carbs-on-board estimates insulin pumps compute.

**KPIs** (from the true plasma glucose at the end of each step): ``mean_glucose`` (mg/dL), ``time_in_range``
(% of steps with 70 <= G <= 180) and ``hypo_events`` (count of entries below 70 mg/dL). **Constraints**:
``hypoglycemia`` (G < 70), ``severe_hypoglycemia`` (G < 54).

**Reward**: ``-risk(G) / 10`` with the blood glucose risk function of Kovatchev et al. (1997), *Symmetrization of
the blood glucose measurement scale*, Diabetes Care 20(11): ``risk = 10 (1.509 (ln(G)^1.084 - 5.381))^2``, 0 at
about 112.5 mg/dL and rising steeply towards hypoglycaemia.

**Baseline**: :class:`BasalBolus`, the default patient's basal rate every step plus a meal bolus of
``announced carbs / carb_ratio`` units when a meal is announced.
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

ENV_ID = "rlops/Glucose-v0"
MEAN_GLUCOSE, TIME_IN_RANGE, HYPO_EVENTS = "mean_glucose", "time_in_range", "hypo_events"
HYPOGLYCEMIA, SEVERE_HYPOGLYCEMIA = "hypoglycemia", "severe_hypoglycemia"
STEP_MINUTES = 5
SUBSTEPS = 5
START_HOUR = 6.0
RANGE_LOW, RANGE_HIGH, SEVERE_LOW = 70.0, 180.0, 54.0
GLUCOSE_CENTER, GLUCOSE_SCALE = 120.0, 60.0
CARB_SCALE = 100.0
#: Bounds of the observation entries (values outside are clipped): glucose 0..720 mg/dL, a change of +-50 mg/dL,
#: up to 50 U in the depot, the insulin and gut states, up to 300 g announced, the clock.
OBS_LOW = np.array([-2.0, -5.0, -1.0, -1.0, -1.0, 0.0, 0.0, -1.0, -1.0], dtype=np.float32)
OBS_HIGH = np.array([10.0, 5.0, 10.0, 10.0, 10.0, 5.0, 3.0, 1.0, 1.0], dtype=np.float32)
#: Doses on a log scale: ``DOSE_MID * DOSE_RATIO ** a`` units.
DOSE_MID, DOSE_RATIO = 0.1, 100.0
#: (hour, grams) of the three daily meals before jitter.
MEALS = ((7.0, 50.0), (12.5, 70.0), (19.0, 80.0))

State = tuple[float, float, float, float, float, float, float]


@dataclass(frozen=True)
class GlucoseParams:
    """Patient constants (minimal model, gut) and the day's disturbances.

    Attributes:
        p1: glucose effectiveness, 1/min, default 0.01.
        p2: decay rate of remote insulin action, 1/min, default 0.025.
        p3: insulin action gain, 1/min² per mU/L, default 1.3e-5 (insulin sensitivity ``p3 / p2``).
        insulin_clearance: ``n``, 1/min, default 0.09.
        insulin_volume: ``V_I``, L, default 12.0.
        glucose_volume: ``V_G``, dL, default 117.0 (1.67 dL/kg for 70 kg).
        basal_glucose: ``Gb``, mg/dL, default 110.0.
        basal_insulin: ``Ib``, mU/L, default 15.0.
        bioavailability: ``A_G``, fraction of meal carbohydrate absorbed, default 0.8.
        absorption_time: ``t_G`` of the gut, min, default 40.0.
        insulin_absorption_time: ``t_I`` of the subcutaneous depot, min, default 55.0.
        meal_scale: multiplies every meal's size, default 1.0.
        meal_time_std: standard deviation of meal times, min, default 20.0.
        meal_size_cv: coefficient of variation of meal sizes, default 0.2.
        carb_count_cv: coefficient of variation of the patient's carbohydrate count, default 0.2.
        cgm_noise_std: CGM noise, mg/dL, default 2.0.
    """

    p1: float = 0.01
    p2: float = 0.025
    p3: float = 1.3e-5
    insulin_clearance: float = 0.09
    insulin_volume: float = 12.0
    glucose_volume: float = 117.0
    basal_glucose: float = 110.0
    basal_insulin: float = 15.0
    bioavailability: float = 0.8
    absorption_time: float = 40.0
    insulin_absorption_time: float = 55.0
    meal_scale: float = 1.0
    meal_time_std: float = 20.0
    meal_size_cv: float = 0.2
    carb_count_cv: float = 0.2
    cgm_noise_std: float = 2.0

    def check(self) -> None:
        """Reject constants that make the model meaningless."""
        for name in ("p2", "insulin_clearance", "insulin_volume", "glucose_volume", "basal_glucose",
                     "absorption_time", "insulin_absorption_time"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValidationError(f"params.{name}", f"must be a finite number > 0, got {value}")
        for name in ("p1", "p3", "basal_insulin", "bioavailability", "meal_scale", "meal_time_std", "meal_size_cv",
                     "carb_count_cv", "cgm_noise_std"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValidationError(f"params.{name}", f"must be a finite number >= 0, got {value}")

    def basal_rate(self) -> float:
        """The infusion that holds ``I = Ib`` (and so ``G = Gb``), U/h."""
        return self.insulin_clearance * self.basal_insulin * self.insulin_volume * 60.0 / 1000.0

    def derivatives(self, state: State, infusion: float) -> State:
        """``d/dt`` of ``(G, X, I, S1, S2, D1, D2)`` per minute under a subcutaneous infusion in mU/min."""
        g, x, i, s1, s2, d1, d2 = state
        ti, tg = self.insulin_absorption_time, self.absorption_time
        return (
            -self.p1 * (g - self.basal_glucose) - x * g + d2 / tg / self.glucose_volume,
            -self.p2 * x + self.p3 * (i - self.basal_insulin),
            -self.insulin_clearance * i + s2 / ti / self.insulin_volume,
            infusion - s1 / ti,
            (s1 - s2) / ti,
            -d1 / tg,
            (d1 - d2) / tg,
        )

    def basal_state(self, glucose: float) -> State:
        """The steady state under the basal infusion, at ``glucose`` and with an empty gut."""
        u = self.basal_rate() * 1000.0 / 60.0  # mU/min
        depot = u * self.insulin_absorption_time
        return (glucose, 0.0, self.basal_insulin, depot, depot, 0.0, 0.0)


def dose_units(action: Any) -> float:
    """Insulin units a raw action asks for: 0 at -1, else ``0.1 * 100^a`` (see the module docstring)."""
    a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
    return 0.0 if a <= -1.0 else DOSE_MID * DOSE_RATIO**a


def dose_action(units: float) -> np.ndarray:
    """The action that asks for ``units`` of insulin (the inverse of :func:`dose_units`, clipped to the box)."""
    if units <= 0.0:
        return np.array([-1.0], dtype=np.float32)
    a = math.log(units / DOSE_MID) / math.log(DOSE_RATIO)
    return np.array([min(1.0, max(-1.0, a))], dtype=np.float32)


def risk(glucose: float) -> float:
    """Kovatchev's blood glucose risk at ``glucose`` mg/dL (0 at 112.5, symmetric in the transformed scale)."""
    f = 1.509 * (math.log(max(glucose, 1.0)) ** 1.084 - 5.381)
    return 10.0 * f * f


class GlucoseEnv(gym.Env[np.ndarray, np.ndarray]):
    """The patient as a Gymnasium environment (see the module docstring for the model).

    Args:
        params: patient constants, default :class:`GlucoseParams()`.
        hours: episode length, default 24 (288 steps of 5 minutes from 06:00).
        render_mode: only ``None`` is supported.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - Gymnasium's class attribute

    def __init__(self, params: GlucoseParams | None = None, hours: int = 24, render_mode: str | None = None) -> None:
        self.params = params if params is not None else GlucoseParams()
        self.params.check()
        if hours < 1:
            raise ValidationError("hours", f"must be >= 1, got {hours}")
        self.render_mode = render_mode
        self.horizon = hours * 60 // STEP_MINUTES
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        self._t = 0
        self._state: State = self.params.basal_state(self.params.basal_glucose)
        self._carbs = np.zeros(self.horizon)
        self._announced = np.zeros(self.horizon)
        self._noise = np.zeros(self.horizon + 1)
        self._cgm_prev = self._cgm = self.params.basal_glucose

    def hour(self, step: int | None = None) -> float:
        """Clock time in hours (06:00 is 6.0; past midnight keeps counting: 25.0 is 01:00) at ``step``."""
        return START_HOUR + (self._t if step is None else step) * STEP_MINUTES / 60.0

    def _draw_day(self) -> None:
        p, rng = self.params, self.np_random
        carbs, announced = np.zeros(self.horizon), np.zeros(self.horizon)
        for hour, grams in MEALS:
            minute = (hour - START_HOUR) * 60.0 + rng.normal(0.0, p.meal_time_std)
            size = grams * p.meal_scale * float(np.clip(rng.normal(1.0, p.meal_size_cv), 0.5, 1.5))
            count = size * float(np.clip(rng.normal(1.0, p.carb_count_cv), 0.5, 1.5))
            k = round(minute / STEP_MINUTES)
            if 0 <= k < self.horizon:
                carbs[k] += size
                announced[k] += count
        self._carbs, self._announced = carbs, announced
        self._noise = rng.normal(0.0, p.cgm_noise_std, size=self.horizon + 1)

    def _observation(self) -> np.ndarray:
        p = self.params
        _, x, i, s1, s2, d1, d2 = self._state
        basal_depot = 2.0 * p.basal_rate() * 1000.0 / 60.0 * p.insulin_absorption_time
        angle = 2.0 * math.pi * (self.hour() % 24.0) / 24.0
        announced = self._announced[self._t] if self._t < self.horizon else 0.0
        obs = np.array([
            (self._cgm - GLUCOSE_CENTER) / GLUCOSE_SCALE,
            (self._cgm - self._cgm_prev) / 10.0,
            (s1 + s2 - basal_depot) / 5000.0,
            (i - p.basal_insulin) / (5.0 * max(p.basal_insulin, 1.0)),
            x / 0.01,
            (d1 + d2) / 50_000.0,
            announced / CARB_SCALE,
            math.sin(angle), math.cos(angle),
        ])
        return np.clip(obs, OBS_LOW, OBS_HIGH).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start at 06:00 with glucose in [90, 160] mg/dL, insulin at its basal steady state and an empty gut."""
        super().reset(seed=seed)
        self._draw_day()
        self._t = 0
        self._state = self.params.basal_state(float(self.np_random.uniform(90.0, 160.0)))
        self._cgm_prev = self._cgm = max(0.0, self._state[0] + float(self._noise[0]))
        return self._observation(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        p = self.params
        units = dose_units(action)
        infusion = units * 1000.0 / STEP_MINUTES  # mU/min over the step
        g_before = self._state[0]
        g, x, i, s1, s2, d1, d2 = self._state
        state: State = (g, x, i, s1, s2, d1 + 1000.0 * p.bioavailability * self._carbs[self._t], d2)
        h = STEP_MINUTES / SUBSTEPS
        for _ in range(SUBSTEPS):
            state = _rk4(p, state, infusion, h)
        g = max(state[0], 0.0)
        self._state = (g, *state[1:])  # type: ignore[assignment]
        self._t += 1
        self._cgm_prev, self._cgm = self._cgm, max(0.0, g + float(self._noise[self._t]))
        info = {
            MEAN_GLUCOSE: g,
            TIME_IN_RANGE: 100.0 if RANGE_LOW <= g <= RANGE_HIGH else 0.0,
            HYPO_EVENTS: 1.0 if g < RANGE_LOW <= g_before else 0.0,
            HYPOGLYCEMIA: 1.0 if g < RANGE_LOW else 0.0,
            SEVERE_HYPOGLYCEMIA: 1.0 if g < SEVERE_LOW else 0.0,
            "insulin_units": units,
            "carbs_g": float(self._carbs[self._t - 1]),
        }
        return self._observation(), -risk(g) / 10.0, False, self._t >= self.horizon, info


def _rk4(p: GlucoseParams, state: State, infusion: float, h: float) -> State:
    """One classical Runge-Kutta step of ``h`` minutes."""
    k1 = p.derivatives(state, infusion)
    k2 = p.derivatives(_axpy(state, 0.5 * h, k1), infusion)
    k3 = p.derivatives(_axpy(state, 0.5 * h, k2), infusion)
    k4 = p.derivatives(_axpy(state, h, k3), infusion)
    return tuple(s + h / 6.0 * (a + 2.0 * b + 2.0 * c + d)  # type: ignore[return-value]
                 for s, a, b, c, d in zip(state, k1, k2, k3, k4, strict=True))


def _axpy(state: State, h: float, slope: State) -> State:
    return tuple(s + h * k for s, k in zip(state, slope, strict=True))  # type: ignore[return-value]


class BasalBolus:
    """Basal-bolus therapy: a fixed basal rate every step and ``carbs / carb_ratio`` units at each meal.

    The observation's announced carbohydrate (the patient's count, grams / 100) triggers the bolus, given in the
    same step as the meal.

    Args:
        basal_rate: U/h, default 0.972 (the default patient's rate that holds 110 mg/dL).
        carb_ratio: grams of carbohydrate one unit covers, default 10.0.
    """

    def __init__(self, basal_rate: float = GlucoseParams().basal_rate(), carb_ratio: float = 10.0) -> None:
        if not basal_rate >= 0:
            raise ValidationError("basal_rate", f"must be >= 0 U/h, got {basal_rate}")
        if not carb_ratio > 0:
            raise ValidationError("carb_ratio", f"must be > 0 g/U, got {carb_ratio}")
        self.basal_rate, self.carb_ratio = basal_rate, carb_ratio

    def reset(self, seed: int | None = None) -> None:
        """Stateless: nothing to forget."""

    def act(self, observation: Any) -> np.ndarray:
        carbs = float(np.asarray(observation)[6]) * CARB_SCALE
        units = self.basal_rate * STEP_MINUTES / 60.0 + max(carbs, 0.0) / self.carb_ratio
        return dose_action(units)


def make_env(params: GlucoseParams | None = None, **options: Any) -> GlucoseEnv:
    """Build the environment (the spec's ``env_factory``)."""
    return GlucoseEnv(params=params, **options)


def make_baseline(env: gym.Env[Any, Any]) -> BasalBolus:
    """Basal-bolus therapy prescribed for the default patient (0.97 U/h, 10 g/U)."""
    return BasalBolus()


SPEC = ScenarioSpec(
    id=ENV_ID,
    params_type=GlucoseParams,
    env_factory=make_env,
    kpis=(
        KPI(MEAN_GLUCOSE, Aggregation.MEAN, Better.LOWER, "mg/dL", "mean plasma glucose"),
        KPI(TIME_IN_RANGE, Aggregation.MEAN, Better.HIGHER, "%", "time with glucose in 70-180 mg/dL"),
        KPI(HYPO_EVENTS, Aggregation.SUM, Better.LOWER, "events", "entries into hypoglycaemia (< 70 mg/dL)"),
    ),
    constraints=(HYPOGLYCEMIA, SEVERE_HYPOGLYCEMIA),
    perturbable=("p1", "p2", "p3", "insulin_clearance", "insulin_volume", "glucose_volume", "basal_glucose",
                 "basal_insulin", "bioavailability", "absorption_time", "insulin_absorption_time",
                 "meal_scale", "meal_time_std", "meal_size_cv", "carb_count_cv", "cgm_noise_std"),
    baseline=make_baseline,
    description="A type-1 diabetic patient (Bergman minimal model, Hovorka gut) over one day with three meals; "
                "5-minute insulin doses. Baseline: basal-bolus therapy. A simulator, not medical advice.",
)
