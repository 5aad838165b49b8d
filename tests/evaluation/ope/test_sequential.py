"""Correctness, way 3: sequential estimators against values computed exactly by dynamic programming.

A 3-state, 2-action MDP with random termination (values by backward induction) checks PDIS, WPDIS, PDDR and
FQE with discrete actions; a scalar linear-quadratic system (value in closed form) checks FQE with continuous
actions. FQE runs with tiny budgets: a linear model on one-hot states is exactly tabular.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from rlops.errors import ValidationError
from rlops.evaluation.ope import (
    FQE,
    PDDR,
    PDIS,
    WPDIS,
    EpisodeData,
    Estimator,
    IntervalMethod,
    IntervalSpec,
    Optimizer,
    SupportWarning,
)
from tests.evaluation.ope.mdp import LinearQuadratic, make_mdp

MDP = make_mdp()
TABULAR_FQE = FQE(discount=0.9, hidden=(), optimizer=Optimizer.LBFGS, learning_rate=1.0, iterations=40,
                  steps_per_iteration=10)


def test_dynamic_programming_reference_is_self_consistent() -> None:
    # the DP value of the logging policy equals the mean discounted return of many simulated episodes
    data = MDP.sample(20_000, seed=99)
    g = 0.9 ** data.step
    returns = np.bincount(data.episode_index, weights=g * data.reward)
    assert returns.mean() == pytest.approx(MDP.value(MDP.pi_b), abs=4 * returns.std() / math.sqrt(len(returns)))


def test_importance_sampling_intervals_cover_the_dp_value() -> None:
    truth = MDP.value()
    estimators: dict[str, Estimator[EpisodeData]] = {
        "pdis": PDIS(0.9), "wpdis": WPDIS(0.9), "pddr (exact model)": PDDR(0.9),
    }
    hits = {name: 0 for name in [*estimators, "pddr (zero model)"]}
    seeds = 100
    for seed in range(seeds):
        data = MDP.sample(300, seed=seed)
        exact = MDP.exact_model(data)
        zero = dataclasses.replace(data, q_hat=np.zeros(data.n), v_hat=np.zeros(data.n))
        for name, est in estimators.items():
            hits[name] += est.estimate(exact if "pddr" in name else data).interval.contains(truth)
        hits["pddr (zero model)"] += PDDR(0.9).estimate(zero).interval.contains(truth)
    coverage = {name: h / seeds for name, h in hits.items()}
    print(f"\nDP value {truth:.4f}; coverage over {seeds} seeds, 300 episodes each: "
          + ", ".join(f"{k} {v:.2f}" for k, v in coverage.items()))
    for name, c in coverage.items():
        assert c >= 0.9, f"{name}: coverage {c:.2f}"


def test_pddr_with_a_zero_model_is_pdis() -> None:
    data = MDP.sample(200, seed=3)
    zero = dataclasses.replace(data, q_hat=np.zeros(data.n), v_hat=np.zeros(data.n))
    assert PDDR(0.9).estimate(zero).value == pytest.approx(PDIS(0.9).estimate(data).value, abs=1e-12)


def test_exact_model_shrinks_the_interval() -> None:
    data = MDP.sample(500, seed=4)
    assert PDDR(0.9).estimate(MDP.exact_model(data)).std_error < 0.8 * PDIS(0.9).estimate(data).std_error


def test_on_policy_pdis_is_the_mean_return() -> None:
    on_policy = dataclasses.replace(MDP, pi_e=MDP.pi_b)
    data = on_policy.sample(400, seed=5)
    returns = np.bincount(data.episode_index, weights=0.9 ** data.step * data.reward)
    for est in (PDIS(0.9), WPDIS(0.9)):
        assert est.estimate(data).value == pytest.approx(returns.mean(), abs=1e-12)
        assert est.estimate(data).ess == pytest.approx(data.n_episodes)


def test_fqe_discrete_matches_dynamic_programming() -> None:
    truth = MDP.value()
    data = MDP.sample(3000, seed=6)
    est = TABULAR_FQE.estimate(data)
    assert est.interval.contains(truth)
    assert abs(est.value - truth) < 0.03 * truth
    assert est == TABULAR_FQE.estimate(data)  # seeded
    # the same fit gives Q close to the DP Q for every (state, action)
    q = TABULAR_FQE.fit(data).q_logged(data)
    s = data.state.argmax(axis=1)
    np.testing.assert_allclose(q, MDP.q_values()[0][s, data.action], atol=0.06)


def test_pddr_cross_fits_fqe_by_default() -> None:
    truth = MDP.value()
    data = MDP.sample(1500, seed=7)
    est = PDDR(0.9, model=TABULAR_FQE).estimate(data)
    assert est.interval.contains(truth)
    assert est.std_error < PDIS(0.9).estimate(data).std_error


def test_fqe_leaves_global_torch_state_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    dataclasses.replace(TABULAR_FQE, iterations=2).estimate(MDP.sample(50, seed=8))
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


class Quadratic(torch.nn.Module):
    """``Q(s, u)`` as a linear function of ``[s^2, s u, u^2, s, u]``: the true Q of a linear-quadratic problem."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(5, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, u = x[:, :1], x[:, 1:2]
        return self.linear(torch.cat([s * s, s * u, u * u, s, u], dim=1))


def test_fqe_continuous_matches_the_closed_form_value() -> None:
    lq = LinearQuadratic()
    data = lq.sample(2000, seed=9)
    fqe = FQE(discount=lq.discount, network=Quadratic, optimizer=Optimizer.LBFGS, learning_rate=1.0, iterations=60,
              steps_per_iteration=10)
    est = fqe.estimate(data)
    truth = lq.value()
    print(f"\nlinear-quadratic: closed-form value {truth:.4f}, FQE {est.value:.4f}")
    assert abs(est.value - truth) < 0.05 * abs(truth)
    assert math.isnan(est.ess) and est.warnings == ()  # a deterministic target has no importance weights


def test_continuous_importance_sampling_needs_target_densities() -> None:
    data = LinearQuadratic().sample(20, seed=1)
    with pytest.raises(ValidationError) as err:
        PDIS(0.95).estimate(data)
    assert err.value.field == "target_density"


def test_bernstein_bound_for_pdis() -> None:
    truth = MDP.value()
    spec = IntervalSpec(method=IntervalMethod.EMPIRICAL_BERNSTEIN)
    for seed in range(10):
        est = PDIS(0.9).estimate(MDP.sample(500, seed=100 + seed), spec)
        assert est.interval.low <= truth and est.interval.high == math.inf
    with pytest.raises(ValidationError):
        WPDIS(0.9).estimate(MDP.sample(50, seed=1), spec)


def test_bootstrap_over_episodes() -> None:
    data = MDP.sample(400, seed=12)
    spec = IntervalSpec(method=IntervalMethod.BOOTSTRAP, n_bootstrap=400)
    for est in (PDIS(0.9), WPDIS(0.9)):
        result = est.estimate(data, spec)
        assert result.interval.contains(result.value)
        assert result.interval.width == pytest.approx(est.estimate(data).interval.width, rel=0.25)


def test_poor_support_is_flagged() -> None:
    greedy = dataclasses.replace(MDP, pi_b=np.array([[0.995, 0.005]] * 3), pi_e=np.array([[0.0, 1.0]] * 3))
    est = PDIS(0.9).estimate(greedy.sample(300, seed=2))
    assert SupportWarning.LOW_PROPENSITY in est.warnings and SupportWarning.LOW_ESS in est.warnings


BAD_EPISODES = {
    "duplicate step": ({"step": [0, 0, 1]}, "step"),
    "gap in steps": ({"step": [0, 2, 0]}, "step"),
    "steps not from 0": ({"step": [1, 2, 0]}, "step"),
    "NaN reward": ({"reward": [0.0, np.nan, 1.0]}, "reward"),
    "zero propensity": ({"propensity": [0.5, 0.0, 0.5]}, "propensity"),
    "missing pi_e": ({"pi_e": None}, "pi_e"),
    "pi_e rows": ({"pi_e": [[0.5, 0.6]] * 3}, "pi_e"),
    "action out of range": ({"action": [0, 2, 1]}, "action"),
    "short state": ({"state": np.zeros((2, 1))}, "state"),
    "q_hat without v_hat": ({"q_hat": [0.0, 0.0, 0.0]}, "v_hat"),
    "bad discount": (None, "discount"),
}


@pytest.mark.parametrize("name", sorted(BAD_EPISODES))
def test_bad_episodes_are_refused_naming_the_field(name: str) -> None:
    changes, field = BAD_EPISODES[name]
    args = {"episode": ["a", "a", "b"], "step": [0, 1, 0], "state": np.zeros((3, 1)), "action": [0, 1, 1],
            "reward": [0.0, 1.0, 1.0], "propensity": [0.5, 0.5, 0.5], "pi_e": [[0.5, 0.5]] * 3}
    with pytest.raises(ValidationError) as err:
        if changes is None:
            PDIS(discount=1.5)
        else:
            args.update(changes)
            EpisodeData(**args)  # type: ignore[arg-type]
    assert err.value.field == field


def test_rows_in_any_order() -> None:
    data = MDP.sample(100, seed=13)
    order = np.random.default_rng(0).permutation(data.n)
    shuffled = EpisodeData(episode=data.episode[order], step=data.step[order], state=data.state[order],
                           action=data.action[order], reward=data.reward[order], propensity=data.propensity[order],
                           pi_e=None if data.pi_e is None else data.pi_e[order])
    assert PDIS(0.9).estimate(shuffled).value == pytest.approx(PDIS(0.9).estimate(data).value, abs=1e-12)
