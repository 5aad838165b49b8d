"""The stress suite on the reference scenarios: every variation runs against each scenario's own baseline."""

from __future__ import annotations

import pytest

from rlops.evaluation.stress import StressConfig, run_stress
from rlops.evaluation.variations import (
    ActionDelay,
    MissingFeatures,
    ObservationNoise,
    RareEvents,
    ShockTarget,
    Variation,
)
from rlops.scenarios.catalog import SCENARIOS

CONFIG = StressConfig(episodes=2, variations=[
    Variation(name="noise", observation_noise=ObservationNoise(scale=0.05)),
    Variation(name="stale", missing=MissingFeatures(fraction=0.2)),
    Variation(name="delay", action_delay=ActionDelay(steps=1)),
    Variation(name="sensor", rare_events=RareEvents(probability=0.05)),
    Variation(name="actuator", rare_events=RareEvents(probability=0.05, target=ShockTarget.ACTUATOR)),
])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_variation_runs_on_every_reference_scenario(name: str) -> None:
    spec = SCENARIOS[name]
    config = CONFIG.model_copy(update={"variations": [*CONFIG.variations, *(
        [Variation(name="first+20%", params={spec.perturbable[0]: 1.2})] if spec.perturbable else [])]})
    report = run_stress(spec, spec.baseline, None, config, workers=1, progress=False)
    for v in report.variations:
        # the same controller on the same seeds: a paired difference of exactly zero, and KPIs for every episode
        assert v.difference.estimate == 0.0, v.name
        assert set(v.candidate.kpis) == {k.name for k in spec.kpis}
        assert all(e.steps > 0 for e in v.candidate.episodes)
        assert 0.0 <= v.candidate.violation_rate <= 1.0


@pytest.mark.slow  # spawns worker processes that import the scenarios
def test_reference_scenarios_give_the_same_report_in_worker_processes() -> None:
    spec = SCENARIOS["hvac"]
    one = run_stress(spec, spec.baseline, None, CONFIG, workers=1, progress=False)
    two = run_stress(spec, spec.baseline, None, CONFIG, workers=2, progress=False)
    assert one.to_dict() == two.to_dict()
