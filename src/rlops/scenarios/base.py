"""What every reference scenario declares: its KPIs, its constraint signals, its perturbable constants, its baseline.

A scenario is a Gymnasium environment plus a :class:`ScenarioSpec`. The environment puts, at every step, each KPI's
per-step value and each constraint signal into ``info`` under the names the spec declares; the spec says how a KPI
aggregates over an episode and which direction is better. The stress suite (``rlops.evaluation``) builds perturbed
environments through :meth:`ScenarioSpec.make` with ``params`` overrides (for example ``{"thermal_resistance": 1.2 *
default}``) and never reaches into an environment's private fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from rlops.errors import ValidationError


class Aggregation(StrEnum):
    """How a KPI's per-step values become one number per episode."""

    SUM = "sum"
    MEAN = "mean"
    MAX = "max"
    LAST = "last"


class Better(StrEnum):
    """Which direction of a KPI is an improvement."""

    HIGHER = "higher"
    LOWER = "lower"


@dataclass(frozen=True)
class KPI:
    """One key performance indicator of a scenario.

    Attributes:
        name: the key in ``info`` holding the per-step value (and the KPI's name in reports).
        aggregation: how per-step values become an episode value.
        better: which direction is an improvement.
        unit: for reports, e.g. ``"kWh"`` or ``"mg/dL"``.
        description: one line for docs and reports.
    """

    name: str
    aggregation: Aggregation
    better: Better
    unit: str = ""
    description: str = ""

    def episode_value(self, per_step: Sequence[float]) -> float:
        """Aggregate one episode's per-step values."""
        values = np.asarray(per_step, dtype=float)
        if values.size == 0:
            return float("nan")
        match self.aggregation:
            case Aggregation.SUM:
                return float(values.sum())
            case Aggregation.MEAN:
                return float(values.mean())
            case Aggregation.MAX:
                return float(values.max())
            case Aggregation.LAST:
                return float(values[-1])


@runtime_checkable
class Controller(Protocol):
    """A policy over raw observations: the baselines, and trained agents wrapped the same way."""

    def reset(self, seed: int | None = None) -> None:
        """Forget any episode state (called after every ``env.reset``)."""

    def act(self, observation: Any) -> Any:
        """The action to take for this observation (an element of the environment's action space)."""


@dataclass(frozen=True)
class ScenarioSpec:
    """A reference scenario: how to build it, what it measures, what may be perturbed, and its baseline.

    Attributes:
        id: the Gymnasium id, registered under ``rlops/`` (e.g. ``"rlops/Hvac-v0"``).
        params_type: the frozen dataclass of the environment's dynamics constants (its defaults are the
            published model's); the environment takes an instance as ``params=``.
        env_factory: builds the environment from ``params`` and keyword options.
        kpis: the KPIs the environment reports in ``info`` every step.
        constraints: ``info`` keys that are 1.0 on a step that violates a constraint, else 0.0.
        perturbable: names of ``params_type`` float fields the stress suite may scale.
        baseline: builds the standard baseline controller for a given environment.
        description: one paragraph for docs and reports.
    """

    id: str
    params_type: type[Any]
    env_factory: Callable[..., gym.Env[Any, Any]]
    kpis: tuple[KPI, ...]
    constraints: tuple[str, ...]
    perturbable: tuple[str, ...]
    baseline: Callable[[gym.Env[Any, Any]], Controller]
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def default_params(self) -> Any:
        return self.params_type()

    def params(self, overrides: Mapping[str, float] | None = None) -> Any:
        """The default constants with ``overrides`` applied; unknown or non-perturbable names are rejected."""
        base = self.default_params()
        if not overrides:
            return base
        known = {f.name for f in fields(base)}
        for name in overrides:
            if name not in known:
                raise ValidationError(f"params.{name}", f"not a constant of {self.id}; known: {sorted(known)}")
            if name not in self.perturbable:
                raise ValidationError(f"params.{name}", f"not perturbable; perturbable: {list(self.perturbable)}")
        return replace(base, **{k: float(v) for k, v in overrides.items()})

    def scaled(self, factors: Mapping[str, float]) -> Any:
        """The default constants with each named one multiplied by its factor (e.g. ``{"r": 1.2}`` is +20%)."""
        self.params({k: 1.0 for k in factors})  # names checked first: unknown ones are a ValidationError
        base = self.default_params()
        return self.params({k: getattr(base, k) * f for k, f in factors.items()})

    def make(self, params: Any | None = None, **options: Any) -> gym.Env[Any, Any]:
        """Build the environment (``params`` may be a ``params_type`` instance or a mapping of overrides)."""
        if params is None or isinstance(params, Mapping):
            params = self.params(params)
        return self.env_factory(params=params, **options)

    def kpi(self, name: str) -> KPI:
        for k in self.kpis:
            if k.name == name:
                return k
        raise ValidationError("kpi", f"{self.id} has no KPI {name!r}; known: {[k.name for k in self.kpis]}")
