"""The conformance suite: the same checks on every bandit estimator (as river's check_estimator does).

A new estimator joins by adding a case to ``CASES``; ``shift_exact`` says whether adding a constant to every reward
(and to ``q_hat``) shifts its estimate by exactly that constant, which holds for every estimator whose weights
enter normalised or only through the residual ``r - q``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from rlops.errors import ValidationError
from rlops.evaluation.ope import (
    IPS,
    SNIPS,
    BanditData,
    DirectMethod,
    DoublyRobust,
    DRos,
    Estimate,
    Estimator,
    IntervalMethod,
    IntervalSpec,
    SelfNormalizedDR,
    SupportWarning,
    SwitchDR,
    cross_fit,
)
from tests.evaluation.ope.synthetic import make_bandit


@dataclass(frozen=True)
class Case:
    make: Callable[[], Estimator[BanditData]]
    shift_exact: bool
    bernstein: bool = False
    clip: float = math.inf  # IPS's clipping: a reward shift c moves IPS by c * mean(min(w, clip))


CASES: dict[str, Case] = {
    "ips": Case(IPS, shift_exact=False, bernstein=True),
    "ips-clipped": Case(lambda: IPS(clip=3.0), shift_exact=False, bernstein=True, clip=3.0),
    "snips": Case(SNIPS, shift_exact=True),
    "dm": Case(DirectMethod, shift_exact=True),
    "dr": Case(DoublyRobust, shift_exact=True),
    "dr-clipped": Case(lambda: DoublyRobust(clip=3.0), shift_exact=True),
    "sndr": Case(SelfNormalizedDR, shift_exact=True),
    "switch-dr": Case(SwitchDR, shift_exact=True),
    "switch-dr-2": Case(lambda: SwitchDR(lambda_=2.0), shift_exact=True),
    "dros": Case(DRos, shift_exact=True),
    "dros-5": Case(lambda: DRos(lambda_=5.0), shift_exact=True),
}
PROBLEM = make_bandit()


@pytest.fixture(scope="module")
def data() -> BanditData:
    return cross_fit(PROBLEM.sample(2000, seed=7))


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


def test_follows_the_protocol(case: Case) -> None:
    estimator = case.make()
    assert isinstance(estimator, Estimator)
    assert isinstance(estimator.name, str) and estimator.name


def test_result_is_typed_and_consistent(case: Case, data: BanditData) -> None:
    est = case.make().estimate(data)
    assert isinstance(est, Estimate)
    assert est.estimator == case.make().name
    assert math.isfinite(est.value) and math.isfinite(est.std_error) and est.std_error > 0
    assert est.n == data.n
    assert 0 < est.ess <= data.n + 1e-9
    assert est.max_weight == pytest.approx(float(data.weights.max()))
    assert all(isinstance(w, SupportWarning) for w in est.warnings)
    assert est.interval.method is IntervalMethod.NORMAL and est.interval.level == 0.95
    assert est.interval.contains(est.value)
    assert est.interval.high - est.interval.low == pytest.approx(2 * 1.959963984540054 * est.std_error)


def test_bootstrap_interval_contains_the_estimate_and_is_seeded(case: Case, data: BanditData) -> None:
    spec = IntervalSpec(method=IntervalMethod.BOOTSTRAP, n_bootstrap=300, seed=3)
    a, b = case.make().estimate(data, spec), case.make().estimate(data, spec)
    assert a == b
    assert a.interval.method is IntervalMethod.BOOTSTRAP and a.interval.contains(a.value)
    other = case.make().estimate(data, dataclasses.replace(spec, seed=4))
    assert other.interval != a.interval and other.value == a.value
    # the bootstrap and the normal interval describe the same spread
    assert a.interval.width == pytest.approx(case.make().estimate(data).interval.width, rel=0.25)


def test_deterministic(case: Case, data: BanditData) -> None:
    assert case.make().estimate(data) == case.make().estimate(data)


def test_fits_its_own_reward_model_deterministically(case: Case, data: BanditData) -> None:
    bare = dataclasses.replace(data, q_hat=None)
    first, second = case.make().estimate(bare), case.make().estimate(bare)
    assert first == second
    assert first.value == pytest.approx(case.make().estimate(data).value, abs=1e-12)  # same default cross-fit


def test_on_policy_target_recovers_the_logged_mean(case: Case) -> None:
    on_policy = cross_fit(PROBLEM.sample(2000, seed=11, target=PROBLEM.pi_b))
    est = case.make().estimate(on_policy)
    assert est.ess == pytest.approx(on_policy.n)
    mean = float(on_policy.reward.mean())
    if case.make().name in {"ips", "snips"}:
        assert est.value == pytest.approx(mean, abs=1e-12)  # every weight is 1
    else:
        assert abs(est.value - mean) < 3 * est.std_error


def test_reward_shift(case: Case, data: BanditData) -> None:
    c = 2.5
    assert data.q_hat is not None
    shifted = dataclasses.replace(data, reward=data.reward + c, q_hat=data.q_hat + c, reward_bounds=None)
    base, moved = case.make().estimate(data), case.make().estimate(shifted)
    if case.shift_exact:
        assert moved.value == pytest.approx(base.value + c, abs=1e-9)
        assert moved.std_error == pytest.approx(base.std_error, rel=1e-6)
    else:  # IPS shifts by c * mean(w), which is 1 only in expectation
        assert moved.value == pytest.approx(base.value + c * float(np.minimum(data.weights, case.clip).mean()))


def test_reward_scale(case: Case, data: BanditData) -> None:
    s = 3.0
    assert data.q_hat is not None
    scaled = dataclasses.replace(data, reward=data.reward * s, q_hat=data.q_hat * s, reward_bounds=None)
    base, moved = case.make().estimate(data), case.make().estimate(scaled)
    assert moved.value == pytest.approx(base.value * s, rel=1e-9)
    assert moved.std_error == pytest.approx(base.std_error * s, rel=1e-6)


def test_row_order_does_not_matter(case: Case, data: BanditData) -> None:
    order = np.random.default_rng(0).permutation(data.n)
    assert data.x is not None and data.q_hat is not None and data.pi_b is not None
    shuffled = BanditData(action=data.action[order], reward=data.reward[order], propensity=data.propensity[order],
                          pi_e=data.pi_e[order], x=data.x[order], q_hat=data.q_hat[order], pi_b=data.pi_b[order],
                          reward_bounds=data.reward_bounds)
    assert case.make().estimate(shuffled).value == pytest.approx(case.make().estimate(data).value, abs=1e-12)


def test_empirical_bernstein_bound_or_a_clear_refusal(case: Case, data: BanditData) -> None:
    spec = IntervalSpec(method=IntervalMethod.EMPIRICAL_BERNSTEIN)
    if not case.bernstein:
        with pytest.raises(ValidationError) as refused:
            case.make().estimate(data, spec)
        assert refused.value.field == "interval.method"
        return
    est = case.make().estimate(data, spec)
    assert est.interval.method is IntervalMethod.EMPIRICAL_BERNSTEIN and est.interval.high == math.inf
    assert est.interval.low < est.value
    assert est.interval.low < est.interval.low + 4 * est.std_error  # a finite, usable bound
    assert est == case.make().estimate(data, spec)  # the holdout split is seeded
    without_bounds = dataclasses.replace(data, reward_bounds=None)
    with pytest.raises(ValidationError) as refused:
        case.make().estimate(without_bounds, spec)
    assert refused.value.field == "interval.method"


def test_warns_when_the_target_leaves_the_logging_support(case: Case) -> None:
    problem = dataclasses.replace(PROBLEM, pi_b=np.where(np.arange(5) == 4, 0.001, 0.999 / 4) * np.ones((4, 1)))
    target = np.zeros((4, 5))
    target[:, 4] = 1.0  # always the action the logger almost never takes
    poor = cross_fit(problem.sample(2000, seed=5, target=target))
    est = case.make().estimate(poor)
    assert SupportWarning.LOW_PROPENSITY in est.warnings or est.ess == 0
    assert SupportWarning.UNSUPPORTED_ACTIONS in est.warnings
    assert SupportWarning.LOW_ESS in est.warnings
    good = case.make().estimate(cross_fit(PROBLEM.sample(2000, seed=5)))
    assert good.warnings == ()
