"""The reference scenarios by short name, and their registration with Gymnasium under ``rlops/``.

>>> from rlops.scenarios import get_scenario
>>> spec = get_scenario("hvac")
>>> env = spec.make({"outdoor_offset": 5.0})  # a warmer climate
>>> import gymnasium as gym
>>> env = gym.make("rlops/Hvac-v0")  # the same environment through Gymnasium
"""

from __future__ import annotations

import gymnasium as gym

from rlops.errors import NotFoundError, ValidationError
from rlops.scenarios import glucose, hvac, manufacturing, portfolio, recommendation
from rlops.scenarios.base import ScenarioSpec

#: Every reference scenario by its short name.
SCENARIOS: dict[str, ScenarioSpec] = {
    "hvac": hvac.SPEC,
    "manufacturing": manufacturing.SPEC,
    "portfolio": portfolio.SPEC,
    "glucose": glucose.SPEC,
    "recommendation": recommendation.SPEC,
}


def get_scenario(name: str) -> ScenarioSpec:
    """The scenario called ``name``: a short name (``"hvac"``) or a Gymnasium id (``"rlops/Hvac-v0"``).

    Raises:
        ValidationError: ``name`` is not a non-empty string.
        NotFoundError: no scenario has that name; the message lists the known ones.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("scenario", f"must be a scenario name such as {sorted(SCENARIOS)[0]!r}, got {name!r}")
    key = name.strip()
    if key in SCENARIOS:
        return SCENARIOS[key]
    for spec in SCENARIOS.values():
        if spec.id == key:
            return spec
    raise NotFoundError(f"scenario: {name!r} is not a known scenario; known: {sorted(SCENARIOS)} "
                        f"(or their ids {sorted(s.id for s in SCENARIOS.values())})")


def scenario_name(spec: ScenarioSpec) -> str:
    """The short name of a catalogued scenario (its id if it is not in the catalogue)."""
    for name, known in SCENARIOS.items():
        if known is spec:
            return name
    return spec.id


def register_scenarios() -> None:
    """Register every scenario with Gymnasium (``gym.make("rlops/Hvac-v0")``); calling it again changes nothing."""
    for spec in SCENARIOS.values():
        if spec.id not in gym.registry:
            gym.register(id=spec.id, entry_point=spec.env_factory)
