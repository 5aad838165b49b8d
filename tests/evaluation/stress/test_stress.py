"""The stress suite on systems whose answers are known: the optimum wins, stress hurts, results are reproducible."""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from rlops.errors import ConfigError, ValidationError
from rlops.evaluation.stress import StressConfig, episode_seeds, run_stress, spec_for_env
from rlops.evaluation.variations import ActionDelay, ObservationNoise, RareEvents, ShockTarget, Variation
from rlops.scenarios.base import ScenarioSpec
from tests.evaluation.stress.envs import (
    CHAIN,
    LINEAR,
    Constant,
    Feedback,
    LinearSystem,
    NoisyFeedback,
    lqr_gain,
    optimal,
    weak,
)


def _config(*variations: Variation, episodes: int = 20, **settings: Any) -> StressConfig:
    return StressConfig(variations=list(variations), episodes=episodes, **settings)


def test_the_optimal_controller_beats_a_bad_one_and_the_interval_says_so() -> None:
    report = run_stress(LINEAR, optimal, weak, _config(), workers=1, progress=False)
    nominal = report.variation("nominal")
    assert nominal.candidate.mean_return.estimate > nominal.baseline.mean_return.estimate
    assert nominal.difference.low > 0  # the paired 95% interval excludes 0
    assert nominal.difference.estimate == pytest.approx(
        nominal.candidate.mean_return.estimate - nominal.baseline.mean_return.estimate)
    # cost is minus the return here, so the KPI difference mirrors the return difference
    assert nominal.kpi_differences["cost"].estimate == pytest.approx(-nominal.difference.estimate)
    assert nominal.kpi_differences["cost"].high < 0
    assert nominal.candidate.kpis["cost"] == pytest.approx(-nominal.candidate.mean_return.estimate)
    assert nominal.candidate.cvar <= nominal.candidate.mean_return.estimate
    # the LQR controller is better than any other linear gain on average: check two neighbours
    for k in (0.9, 1.3):
        other = run_stress(LINEAR, optimal, Feedback(k), _config(episodes=30), workers=1, progress=False)
        assert other.variation("nominal").difference.estimate > 0


def test_equal_controllers_differ_by_exactly_zero() -> None:
    report = run_stress(LINEAR, optimal, optimal, _config(), workers=1, progress=False)
    d = report.variation("nominal").difference
    assert (d.estimate, d.low, d.high) == (0.0, 0.0, 0.0)


def test_observation_noise_raises_the_optimal_controllers_cost() -> None:
    config = _config(Variation(name="noisy", observation_noise=ObservationNoise(scale=0.3)), episodes=30)
    report = run_stress(LINEAR, optimal, weak, config, workers=1, progress=False)
    clean, noisy = report.variation("nominal").candidate, report.variation("noisy").candidate
    assert noisy.kpis["cost"] > 1.5 * clean.kpis["cost"]
    # paired by episode: the same initial states and plant noise, so the cost rises in nearly every episode
    rises = [n.kpis["cost"] > c.kpis["cost"] for n, c in zip(noisy.episodes, clean.episodes, strict=True)]
    assert sum(rises) >= 25


def test_action_delay_destabilises_the_unstable_system() -> None:
    # with u_t = -K x_{t-1} the closed loop z^2 - a z + b K has |z|^2 = b K = 1.10 > 1: unstable
    assert lqr_gain(1.2, 1.0) > 1.0
    config = _config(Variation(name="late", action_delay=ActionDelay(steps=1)))
    report = run_stress(LINEAR, optimal, weak, config, workers=1, progress=False)
    assert report.variation("nominal").candidate.violation_rate == 0.0
    late = report.variation("late")
    assert late.candidate.violation_rate > 0.2
    assert late.candidate.constraint_rates["out_of_bounds"] == late.candidate.violation_rate
    assert late.violation_rate_difference == late.candidate.violation_rate - late.baseline.violation_rate
    # the sluggish baseline tolerates one step of delay (its delayed loop is stable) and now wins
    assert late.baseline.violation_rate == 0.0
    assert late.difference.high < 0


def test_the_parameter_sweep_hurts_the_fixed_baseline_where_the_plant_gets_less_stable() -> None:
    report = run_stress(LINEAR, optimal, weak, _config(param_sweep=0.2), workers=1, progress=False)
    # a + 20% = 1.44: the baseline's closed loop 1.44 - 0.3 = 1.14 is unstable, its violations soar
    assert report.variation("a+20%").baseline.violation_rate > 0.5
    assert report.variation("a-20%").baseline.violation_rate == 0.0
    assert report.variation("a+20%").baseline.cvar < report.variation("nominal").baseline.cvar


def test_actuator_shocks_cost_more_than_none() -> None:
    config = _config(Variation(name="shocks", rare_events=RareEvents(probability=0.05, target=ShockTarget.ACTUATOR,
                                                                     duration=2)))
    report = run_stress(LINEAR, optimal, weak, config, workers=1, progress=False)
    assert report.variation("shocks").candidate.kpis["peak"] > 2 * report.variation("nominal").candidate.kpis["peak"]


def test_same_seed_same_report_for_any_number_of_workers() -> None:
    config = _config(Variation(name="noisy", observation_noise=ObservationNoise(scale=0.1)),
                     Variation(name="shocks", rare_events=RareEvents(probability=0.05)), episodes=6, seed=7)
    candidate = NoisyFeedback(1.0)  # its own randomness comes from reset(seed)
    one = run_stress(LINEAR, candidate, weak, config, workers=1, progress=False)
    two = run_stress(LINEAR, candidate, weak, config, workers=2, progress=False)
    assert one.to_dict() == two.to_dict()
    again = run_stress(LINEAR, candidate, weak, config, workers=1, progress=False)
    assert again.to_dict() == one.to_dict()
    other_seed = run_stress(LINEAR, candidate, weak, config.model_copy(update={"seed": 8}), workers=1,
                            progress=False)
    assert other_seed.to_dict() != one.to_dict()


def test_episode_seeds_are_shared_by_controllers_and_variations() -> None:
    config = _config(Variation(name="noisy", observation_noise=ObservationNoise(scale=0.5)), episodes=4)
    report = run_stress(LINEAR, Feedback(0.0), Feedback(0.0), config, workers=1, progress=False)
    nominal, noisy = report.variation("nominal"), report.variation("noisy")
    returns = [e.total_return for e in nominal.candidate.episodes]
    assert returns == [e.total_return for e in nominal.baseline.episodes]
    # u = 0 ignores the observation, so the noisy variation replays exactly the nominal plant, episode by episode
    assert returns == [e.total_return for e in noisy.candidate.episodes]
    assert len(set(returns)) == 4  # and the episodes differ from each other
    assert len({episode_seeds(0, e) for e in range(100)}) == 100
    assert episode_seeds(0, 3) == episode_seeds(0, 3) != episode_seeds(1, 3)


def test_report_to_dict_is_json_and_holds_the_numbers() -> None:
    config = _config(Variation(name="late", action_delay=ActionDelay(steps=1)), episodes=4)
    report = run_stress(LINEAR, optimal, weak, config, workers=1, progress=False, candidate_label="lqr",
                        baseline_label="weak")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["scenario"] == "test/Linear-v0" and data["candidate"] == "lqr" and data["baseline"] == "weak"
    assert data["kpi_better"] == {"cost": "lower", "peak": "lower"}
    assert list(data["variations"]) == ["nominal", "late"]
    late = data["variations"]["late"]
    assert late["variation"] == {"name": "late", "action_delay": {"steps": 1}}
    assert late["difference"]["estimate"] == pytest.approx(report.variation("late").difference.estimate)
    assert len(late["candidate"]["episodes"]) == 4
    assert late["candidate"]["episodes"][0]["steps"] == 50
    assert StressConfig.model_validate(data["config"]) == config  # the report says how to reproduce it
    assert "episodes" not in report.to_dict(episodes=False)["variations"]["nominal"]["candidate"]


def test_discrete_chain_and_the_scenario_baseline_by_default() -> None:
    report = run_stress(CHAIN, Constant(1), None, _config(episodes=10), workers=1, progress=False)
    nominal = report.variation("nominal")
    assert report.baseline == "baseline"
    assert nominal.baseline.mean_return.estimate == 0.0  # going left never reaches the goal
    assert nominal.candidate.mean_return.estimate == 1.0  # 30 steps are plenty with 10% slip
    assert nominal.baseline.violation_rate > 0.8  # pressed against the left wall
    assert nominal.candidate.kpis["steps"] < nominal.baseline.kpis["steps"] == 30.0


class _MissingKey(LinearSystem):
    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        info.pop("peak")
        return obs, reward, terminated, truncated, info


def _make_missing_key(params: Any = None, **options: Any) -> gym.Env[Any, Any]:
    return _MissingKey(params, **options)


def test_a_missing_info_key_is_named() -> None:
    spec = ScenarioSpec(id="broken", params_type=LINEAR.params_type, env_factory=_make_missing_key,
                        kpis=LINEAR.kpis, constraints=LINEAR.constraints, perturbable=(), baseline=weak)
    for workers in (1, 2):  # an error in a worker process comes back as the same error
        with pytest.raises(ValidationError, match=r"info\.peak: broken declares KPI 'peak'") as caught:
            run_stress(spec, optimal, None, _config(episodes=2), workers=workers, progress=False)
        assert caught.value.field == "info.peak"


def test_a_bare_environment_factory_works_without_params() -> None:
    spec = spec_for_env(LinearSystem, id="bare", constraints=("out_of_bounds",))
    report = run_stress(spec, optimal, weak, _config(Variation(name="late", action_delay=ActionDelay(steps=1)),
                                                      episodes=5), workers=1, progress=False)
    assert report.variation("late").candidate.violation_rate > 0
    assert report.variation("nominal").candidate.kpis == {}
    with pytest.raises(ConfigError, match="no baseline"):
        run_stress(spec, optimal, None, _config(episodes=2), workers=1, progress=False)


def test_bad_runs_are_refused_clearly() -> None:
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        run_stress(LINEAR, optimal, weak, _config(episodes=2), workers=0, progress=False)
    with pytest.raises(ConfigError, match="must pickle"):
        run_stress(LINEAR, lambda env: Feedback(1.0), weak, _config(episodes=2), workers=2, progress=False)
    with pytest.raises(ConfigError, match="nothing to run"):
        run_stress(LINEAR, optimal, weak, _config(episodes=2, include_nominal=False), workers=1, progress=False)
    with pytest.raises(ConfigError, match="clash"):
        run_stress(LINEAR, optimal, weak, _config(Variation(name="a+20%"), episodes=2, param_sweep=0.2),
                   workers=1, progress=False)


def test_progress_bar_counts_every_episode(capsys: pytest.CaptureFixture[str]) -> None:
    run_stress(LINEAR, optimal, weak, _config(episodes=3), workers=1, progress=True)
    assert "3/3" in capsys.readouterr().out
