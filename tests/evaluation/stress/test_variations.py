"""Each variation does what it says, to the step, and its config refuses bad values by name."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from rlops.errors import ConfigError, ValidationError
from rlops.evaluation.stress import StressConfig
from rlops.evaluation.variations import (
    ActionDelay,
    ActuatorShockWrapper,
    MissingFeatures,
    MissingMode,
    NoiseReference,
    ObservationNoise,
    ObservationNoiseWrapper,
    RareEvents,
    SensorShockWrapper,
    ShockTarget,
    Variation,
    parameter_sweep,
)
from rlops.scenarios.base import ScenarioSpec
from tests.evaluation.stress.envs import CHAIN, LINEAR, Echo, LinearParams, make_chain, make_echo

ECHO = ScenarioSpec(id="test/Echo-v0", params_type=LinearParams, env_factory=make_echo, kpis=(), constraints=(),
                    perturbable=(), baseline=lambda env: None)  # type: ignore[arg-type,return-value]


def _observations(variation: Variation, steps: int, seed: int = 0, **options: object) -> np.ndarray:
    env = variation.make(ECHO, seed, **options)
    obs, _ = env.reset(seed=1)
    out = [obs]
    for _ in range(steps):
        obs, *_ = env.step(np.zeros(1, np.float32))
        out.append(obs)
    return np.array(out, dtype=np.float64)


def _clean(steps: int) -> np.ndarray:
    t = np.arange(steps + 1, dtype=np.float64)
    return np.stack([t, 10 + t, 20 + t], axis=1)


def test_nominal_changes_nothing() -> None:
    v = Variation(name="nominal")
    assert v.is_nominal
    np.testing.assert_array_equal(_observations(v, 5), _clean(5))


def test_parameter_perturbation_changes_the_dynamics() -> None:
    # open loop (u = 0), no noise: x_t = a^t x_0, so the ratio of successive states is exactly a
    def ratios(variation: Variation) -> np.ndarray:
        env = variation.make(LINEAR, 0)
        x0, _ = env.reset(seed=3)
        xs = [float(x0[0])]
        for _ in range(3):
            obs, *_ = env.step(np.zeros(1))
            xs.append(float(obs[0]))
        return np.array(xs[1:]) / np.array(xs[:-1])

    quiet = {"noise": 1e-300}  # scaled from the default 0.1: the noise is numerically gone
    np.testing.assert_allclose(ratios(Variation(name="n", params={**quiet})), 1.2, rtol=1e-12)
    np.testing.assert_allclose(ratios(Variation(name="up", params={**quiet, "a": 1.25})), 1.5, rtol=1e-12)
    assert not Variation(name="up", params={"a": 1.25}).is_nominal


def test_parameter_sweep_covers_every_perturbable_constant_both_ways() -> None:
    sweep = parameter_sweep(LINEAR, 0.2)
    assert [v.name for v in sweep] == ["a-20%", "a+20%", "b-20%", "b+20%", "noise-20%", "noise+20%"]
    assert sweep[1].params == {"a": 1.2}
    assert sweep[0].params == {"a": pytest.approx(0.8)}
    assert parameter_sweep(LINEAR, 0.125)[1].name == "a+12p5%"  # no '.': names are dotted-path keys
    with pytest.raises(ConfigError, match="param_sweep"):
        parameter_sweep(LINEAR, 1.5)


def test_a_constant_that_is_not_perturbable_is_refused_by_name() -> None:
    config = StressConfig(variations=[Variation(name="r-up", params={"r": 2.0})])
    with pytest.raises(ValidationError, match=r"variations\[r-up\]\.params\.r: not perturbable"):
        config.expand(LINEAR)
    config = StressConfig(variations=[Variation(name="typo", params={"zz": 2.0})])
    with pytest.raises(ValidationError, match=r"params\.zz: not a constant"):
        config.expand(LINEAR)


def test_absolute_noise_has_the_declared_spread_and_is_reproducible() -> None:
    v = Variation(name="noise", observation_noise=ObservationNoise(scale=0.5, reference=NoiseReference.ABSOLUTE))
    noisy = _observations(v, 4000)
    residual = noisy - _clean(4000)
    assert abs(residual.mean()) < 0.03
    np.testing.assert_allclose(residual.std(axis=0), 0.5, rtol=0.05)
    np.testing.assert_array_equal(noisy, _observations(v, 4000))  # same seed, same draws
    assert not np.array_equal(noisy, _observations(v, 4000, seed=1))


def test_noise_relative_to_bounds_uses_half_the_range() -> None:
    # Echo's observation space is [-100, 100]: half range 100, so 1% noise has standard deviation 1
    v = Variation(name="noise", observation_noise=ObservationNoise(scale=0.01))
    residual = _observations(v, 4000) - _clean(4000)
    np.testing.assert_allclose(residual.std(axis=0), 1.0, rtol=0.05)


def test_noise_relative_to_magnitude_scales_with_the_value() -> None:
    v = Variation(name="noise", observation_noise=ObservationNoise(scale=0.1, reference=NoiseReference.MAGNITUDE))
    obs = _observations(v, 3000)
    clean = _clean(3000)
    assert obs[0, 0] == 0.0  # zero stays zero under multiplicative noise
    ratio = (obs[1:] - clean[1:]) / clean[1:]
    np.testing.assert_allclose(ratio.std(axis=0), 0.1, rtol=0.06)


def test_stale_entries_repeat_the_last_value_shown() -> None:
    v = Variation(name="stale", missing=MissingFeatures(fraction=0.3))
    obs = _observations(v, 2000)
    clean = _clean(2000)
    np.testing.assert_array_equal(obs[0], clean[0])  # the first observation arrives whole
    stale = obs[1:] != clean[1:]
    assert 0.27 < stale.mean() < 0.33
    # every entry shown is a true value of an earlier (or this) step, and a stale one equals the previous shown
    np.testing.assert_array_equal(obs[1:][stale], obs[:-1][stale])
    assert np.all(obs[1:] <= clean[1:])


def test_fill_mode_and_indices() -> None:
    v = Variation(name="fill", missing=MissingFeatures(fraction=1.0, mode=MissingMode.FILL, fill=-7.0, indices=[1]))
    obs = _observations(v, 5)
    np.testing.assert_array_equal(obs[1:, 1], -7.0)
    np.testing.assert_array_equal(obs[:, [0, 2]], _clean(5)[:, [0, 2]])
    with pytest.raises(ConfigError, match=r"missing\.indices"):
        Variation(name="bad", missing=MissingFeatures(fraction=0.5, indices=[3])).make(ECHO, 0)


def test_action_delay_applies_each_action_k_steps_late() -> None:
    env = Variation(name="delay", action_delay=ActionDelay(steps=2)).make(ECHO, 0)
    env.reset(seed=0)
    for a in range(6):
        env.step(np.array([a / 10], np.float32))
    received = [round(float(np.asarray(a)[0]) * 10) for a in env.unwrapped.received]  # type: ignore[attr-defined]
    assert received == [0, 0, 0, 1, 2, 3]  # the first action is held until the queue fills
    env.reset(seed=0)  # a new episode starts with an empty queue
    env.step(np.array([0.5], np.float32))
    assert float(env.unwrapped.received[0][0]) == 0.5  # type: ignore[attr-defined]


def test_sensor_shocks_offset_one_entry_for_their_duration() -> None:
    config = RareEvents(probability=0.05, magnitude=3.0, duration=2, reference=NoiseReference.ABSOLUTE)
    env = Variation(name="shock", rare_events=config).make(ECHO, 4)
    obs, _ = env.reset(seed=0)
    diffs = [obs - _clean(0)[0]]
    for _ in range(2000):
        obs, *_ = env.step(np.zeros(1, np.float32))
        diffs.append(obs)
    residual = np.array(diffs[1:]) - _clean(2000)[1:]
    shocked = np.abs(residual).sum(axis=1) > 0
    wrapper = env
    while not isinstance(wrapper, SensorShockWrapper):
        wrapper = wrapper.env  # type: ignore[attr-defined]
    # a shock lasts 2 steps and none starts during one: about 2000 / (1/0.05 + 1) * 2 shocked steps
    assert 60 < wrapper.shocks < 140
    assert shocked.sum() == 2 * wrapper.shocks
    assert set(np.round(np.abs(residual[shocked]).sum(axis=1), 4)) == {3.0}  # one entry, by exactly 3


def test_actuator_shocks_replace_the_applied_action_with_a_random_one() -> None:
    config = RareEvents(probability=0.1, target=ShockTarget.ACTUATOR, duration=1)
    env = Variation(name="shock", rare_events=config).make(ECHO, 0, discrete=True)
    env.reset(seed=0)
    for _ in range(1000):
        env.step(0)
    received = np.array(env.unwrapped.received)  # type: ignore[attr-defined]
    assert isinstance(env, ActuatorShockWrapper)
    assert 70 < env.shocks < 130
    # a random action is 0 a quarter of the time: about 3/4 of the shocks show as a non-zero action
    assert 0.5 * env.shocks < (received != 0).sum() <= env.shocks


def test_observation_variations_need_a_flat_box() -> None:
    Variation(name="noise", observation_noise=ObservationNoise(scale=0.1)).make(CHAIN, 0)  # a (1,) Box is fine
    env = make_chain()
    env.observation_space = gym.spaces.Discrete(6)  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="observation_noise: needs a flat Box"):
        ObservationNoiseWrapper(env, ObservationNoise(scale=0.1), 0)


def test_a_variations_file_loads_and_bad_values_are_named(tmp_path: Path) -> None:
    path = tmp_path / "variations.yaml"
    path.write_text("episodes: 5\nparam_sweep: 0.1\nvariations:\n"
                    "  - {name: late, action_delay: {steps: 3}}\n"
                    "  - {name: glitch, rare_events: {probability: 0.02, target: actuator}}\n")
    config = StressConfig.load(path)
    assert config.episodes == 5 and config.variations[0].action_delay == ActionDelay(steps=3)
    assert config.variations[1].rare_events is not None
    assert config.variations[1].rare_events.target is ShockTarget.ACTUATOR
    assert [v.name for v in config.expand(LINEAR)][:3] == ["nominal", "a-10%", "a+10%"]
    path.write_text("variations:\n  - {name: x, observation_noise: {scale: -1}}\n")
    with pytest.raises(ConfigError, match=r"variations\.0\.observation_noise\.scale: .*greater than or equal to 0"):
        StressConfig.load(path)
    path.write_text("variations:\n  - {name: x, delay: 2}\n")
    with pytest.raises(ConfigError, match=r"variations\.0\.delay: unknown key"):
        StressConfig.load(path)
    path.write_text("variations:\n  - {name: noise-0.5}\n")
    with pytest.raises(ConfigError, match=r"variations\.0\.name: String should match pattern"):
        StressConfig.load(path)
    path.write_text("variations:\n  - {name: x}\n  - {name: x}\n")
    with pytest.raises(ConfigError, match="duplicate names"):
        StressConfig.load(path)
    with pytest.raises(ConfigError, match="cannot read"):
        StressConfig.load(tmp_path / "absent.yaml")


def test_the_standard_suite_expands_against_a_scenario() -> None:
    names = [v.name for v in StressConfig.standard().expand(CHAIN)]
    assert names == ["nominal", "slip-20%", "slip+20%", "noise-5%", "stale-10%", "delay-1", "sensor-shocks",
                     "actuator-shocks"]


def test_echo_env_is_what_the_tests_think() -> None:
    env = Echo()
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [0, 10, 20])
