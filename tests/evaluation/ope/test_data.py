"""Bad inputs are refused by BanditData with a ValidationError naming the field, before anything is computed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rlops.errors import ValidationError
from rlops.evaluation.ope import IPS, BanditData, CrossFitted, DoublyRobust, IntervalSpec

N, K = 6, 3


def _good() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "action": np.array([0, 1, 2, 0, 1, 2]),
        "reward": rng.random(N),
        "propensity": np.full(N, 1 / 3),
        "pi_e": np.tile([0.5, 0.25, 0.25], (N, 1)),
        "x": rng.normal(size=(N, 2)),
        "pi_b": np.full((N, K), 1 / 3),
    }


def _with(**changes: Any) -> dict[str, Any]:
    args = _good()
    args.update(changes)
    return args


BAD = {
    "missing propensity": (_with(propensity=None), "propensity", "missing"),
    "NaN propensity": (_with(propensity=np.array([1 / 3] * 5 + [np.nan])), "propensity", "row 5"),
    "zero propensity": (_with(propensity=np.array([1 / 3] * 5 + [0.0]), pi_b=None), "propensity", "(0, 1]"),
    "negative propensity": (_with(propensity=np.array([-0.1] + [1 / 3] * 5), pi_b=None), "propensity", "row 0"),
    "propensity above 1": (_with(propensity=np.array([1.5] + [1 / 3] * 5), pi_b=None), "propensity", "row 0"),
    "propensity disagrees with pi_b": (_with(propensity=np.array([0.2] + [1 / 3] * 5)), "propensity", "pi_b"),
    "NaN reward": (_with(reward=np.array([0.0, np.nan, 1.0, 0.0, 1.0, 0.0])), "reward", "row 1"),
    "infinite reward": (_with(reward=np.array([0.0, 1.0, np.inf, 0.0, 1.0, 0.0])), "reward", "row 2"),
    "pi_e row not summing to 1": (_with(pi_e=np.tile([0.5, 0.25, 0.2], (N, 1))), "pi_e", "sum to 1"),
    "negative pi_e": (_with(pi_e=np.tile([1.2, -0.1, -0.1], (N, 1))), "pi_e", "[0, 1]"),
    "NaN pi_e": (_with(pi_e=np.vstack([np.tile([0.5, 0.25, 0.25], (5, 1)), [np.nan, 0.5, 0.5]])), "pi_e", "row 5"),
    "action out of range": (_with(action=np.array([0, 1, 3, 0, 1, 2])), "action", "row 2"),
    "negative action": (_with(action=np.array([0, -1, 2, 0, 1, 2])), "action", "row 1"),
    "float actions": (_with(action=np.array([0.0, 1.0, 2.0, 0.0, 1.0, 2.0])), "action", "integer"),
    "short reward": (_with(reward=np.zeros(N - 1)), "reward", "expected 6 rows"),
    "short action": (_with(action=np.zeros(N - 1, dtype=int)), "action", "expected 6 rows"),
    "short propensity": (_with(propensity=np.full(N - 1, 1 / 3)), "propensity", "expected 6 rows"),
    "2-d reward": (_with(reward=np.zeros((N, 1))), "reward", "1-d"),
    "1-d pi_e": (_with(pi_e=np.full(N, 1.0)), "pi_e", "2-d"),
    "x rows": (_with(x=np.zeros((N - 1, 2))), "x", "expected 6 rows"),
    "NaN x": (_with(x=np.vstack([np.zeros((5, 2)), [0.0, np.nan]])), "x", "row 5"),
    "q_hat shape": (_with(q_hat=np.zeros((N, K + 1))), "q_hat", "shape"),
    "q_hat NaN": (_with(q_hat=np.vstack([np.zeros((5, K)), [0.0, np.nan, 0.0]])), "q_hat", "row 5"),
    "pi_b shape": (_with(pi_b=np.full((N, K + 1), 0.25)), "pi_b", "shape"),
    "reward outside bounds": (_with(reward_bounds=(0.0, 0.5), reward=np.array([0, 0.2, 0.7, 0, 0, 0])), "reward",
                              "reward_bounds"),
    "bounds reversed": (_with(reward_bounds=(1.0, 0.0)), "reward_bounds", "low < high"),
    "text rewards": (_with(reward=np.array(["a"] * N)), "reward", "numbers"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_refused_naming_the_field(name: str) -> None:
    args, field, words = BAD[name]
    with pytest.raises(ValidationError) as err:
        BanditData(**args)
    assert err.value.field == field
    assert words in err.value.rule


def test_good_input_is_converted() -> None:
    data = BanditData(**_with(action=[0, 1, 2, 0, 1, 2], propensity=[1 / 3] * N))
    assert data.action.dtype == np.int64 and data.propensity.dtype == np.float64
    assert data.n == N and data.n_actions == K
    np.testing.assert_allclose(data.weights, [1.5, 0.75, 0.75, 1.5, 0.75, 0.75])


def test_fitting_a_reward_model_needs_x() -> None:
    data = BanditData(**_with(x=None))
    with pytest.raises(ValidationError) as err:
        DoublyRobust(reward_model=CrossFitted(folds=2)).estimate(data)
    assert err.value.field == "x"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"level": 1.0}, "interval.level"),
    ({"n_bootstrap": 1}, "interval.n_bootstrap"),
    ({"truncation": -1.0}, "interval.truncation"),
    ({"holdout": 0.0}, "interval.holdout"),
])
def test_bad_interval_specs_are_refused(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        IntervalSpec(**kwargs)
    assert err.value.field == field


@pytest.mark.parametrize("clip", [-1.0, float("nan"), "3"])
def test_bad_hyperparameters_are_refused(clip: Any) -> None:
    with pytest.raises(ValidationError) as err:
        IPS(clip=clip)
    assert err.value.field == "clip"


def test_reward_model_config_is_checked() -> None:
    with pytest.raises(ValidationError) as err:
        CrossFitted(folds=1)
    assert err.value.field == "reward_model.folds"
    with pytest.raises(ValidationError) as err:
        CrossFitted(regressor=object())
    assert err.value.field == "reward_model.regressor"
