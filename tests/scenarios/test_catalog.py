"""The catalogue: names, ids, errors that list what exists, idempotent Gymnasium registration."""

from __future__ import annotations

import gymnasium as gym
import pytest

from rlops.errors import NotFoundError, ValidationError
from rlops.scenarios import SCENARIOS, get_scenario, register_scenarios, scenario_name


def test_five_scenarios_by_short_name_with_rlops_ids() -> None:
    assert sorted(SCENARIOS) == ["glucose", "hvac", "manufacturing", "portfolio", "recommendation"]
    assert {s.id for s in SCENARIOS.values()} == {
        "rlops/Hvac-v0", "rlops/ManufacturingLine-v0", "rlops/Portfolio-v0", "rlops/Glucose-v0",
        "rlops/Recommendation-v0"}


def test_lookup_by_name_or_id() -> None:
    assert get_scenario("hvac") is SCENARIOS["hvac"]
    assert get_scenario("rlops/Portfolio-v0") is SCENARIOS["portfolio"]
    assert get_scenario(" glucose ") is SCENARIOS["glucose"]
    assert scenario_name(SCENARIOS["manufacturing"]) == "manufacturing"


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(NotFoundError, match=r"'hvak' is not a known scenario; known: \['glucose', 'hvac'"):
        get_scenario("hvak")


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_non_names_are_refused_by_field(bad: object) -> None:
    with pytest.raises(ValidationError, match=r"^scenario: "):
        get_scenario(bad)  # type: ignore[arg-type]


def test_registration_is_idempotent() -> None:
    before = {k: gym.registry[k] for k in gym.registry if k.startswith("rlops/")}
    register_scenarios()
    register_scenarios()
    after = {k: gym.registry[k] for k in gym.registry if k.startswith("rlops/")}
    assert before == after and len(after) == 5
    assert gym.make("rlops/Hvac-v0").unwrapped.spec.id == "rlops/Hvac-v0"  # type: ignore[union-attr]
