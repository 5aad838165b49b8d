"""The conformance suite for sequential estimators: the same checks on every one of them."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import pytest

from rlops.evaluation.ope import (
    FQE,
    PDDR,
    PDIS,
    WPDIS,
    EpisodeData,
    Estimate,
    Estimator,
    IntervalMethod,
    IntervalSpec,
    Optimizer,
    SupportWarning,
)
from tests.evaluation.ope.mdp import make_mdp

MDP = make_mdp()
_LBFGS = FQE(discount=0.9, hidden=(), optimizer=Optimizer.LBFGS, learning_rate=1.0, iterations=30,
             steps_per_iteration=10)
_ADAM = FQE(discount=0.9, hidden=(16,), learning_rate=0.01, iterations=30, steps_per_iteration=30, batch_size=256)

CASES: dict[str, Callable[[], Estimator[EpisodeData]]] = {
    "pdis": lambda: PDIS(0.9),
    "wpdis": lambda: WPDIS(0.9),
    "pddr": lambda: PDDR(0.9, model=_LBFGS),
    "fqe-lbfgs": lambda: _LBFGS,
    "fqe-adam-mlp": lambda: _ADAM,
}


@pytest.fixture(scope="module")
def data() -> EpisodeData:
    return MDP.sample(300, seed=21)


@pytest.fixture(params=sorted(CASES))
def make(request: pytest.FixtureRequest) -> Callable[[], Estimator[EpisodeData]]:
    return CASES[request.param]


def test_follows_the_protocol(make: Callable[[], Estimator[EpisodeData]]) -> None:
    assert isinstance(make(), Estimator) and make().name


def test_result_is_typed_and_consistent(make: Callable[[], Estimator[EpisodeData]], data: EpisodeData) -> None:
    est = make().estimate(data)
    assert isinstance(est, Estimate) and est.estimator == make().name
    assert est.n == data.n_episodes
    assert math.isfinite(est.value) and est.std_error > 0
    assert 0 < est.ess <= data.n_episodes + 1e-9 and est.max_weight > 0
    assert all(isinstance(w, SupportWarning) for w in est.warnings)
    assert est.interval.contains(est.value)


def test_deterministic(make: Callable[[], Estimator[EpisodeData]], data: EpisodeData) -> None:
    assert make().estimate(data) == make().estimate(data)


def test_bootstrap_contains_the_estimate(make: Callable[[], Estimator[EpisodeData]], data: EpisodeData) -> None:
    spec = IntervalSpec(method=IntervalMethod.BOOTSTRAP, n_bootstrap=200)
    est = make().estimate(data, spec)
    assert est.interval.method is IntervalMethod.BOOTSTRAP and est.interval.contains(est.value)
    assert est == make().estimate(data, spec)


def test_reward_scale(make: Callable[[], Estimator[EpisodeData]], data: EpisodeData) -> None:
    scaled = dataclasses.replace(data, reward=data.reward * 3.0, reward_bounds=None)
    # FQE fits in float32 on rewards divided by their largest magnitude, so it is scale-free up to rounding
    assert make().estimate(scaled).value == pytest.approx(3.0 * make().estimate(data).value, rel=1e-5)


def test_on_policy_target_recovers_the_mean_return(make: Callable[[], Estimator[EpisodeData]]) -> None:
    on_policy = dataclasses.replace(MDP, pi_e=MDP.pi_b).sample(300, seed=22)
    returns = np.bincount(on_policy.episode_index, weights=0.9 ** on_policy.step * on_policy.reward)
    est = make().estimate(on_policy)
    assert est.ess == pytest.approx(on_policy.n_episodes)
    assert abs(est.value - returns.mean()) < 3 * est.std_error + 1e-12


def test_row_order_does_not_matter(make: Callable[[], Estimator[EpisodeData]], data: EpisodeData) -> None:
    order = np.random.default_rng(1).permutation(data.n)
    assert data.pi_e is not None
    shuffled = EpisodeData(episode=data.episode[order], step=data.step[order], state=data.state[order],
                           action=data.action[order], reward=data.reward[order], propensity=data.propensity[order],
                           pi_e=data.pi_e[order])
    assert make().estimate(shuffled).value == pytest.approx(make().estimate(data).value, abs=1e-9)
