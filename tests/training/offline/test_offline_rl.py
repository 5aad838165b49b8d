"""Behaviour cloning and CQL on a chain whose optimal policy is known: CQL finds it, cloning copies the mistakes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from rlops.errors import ValidationError
from rlops.policies import PolicyInput, content_hash, load_policy, save_policy
from rlops.schema import Schema
from rlops.training.offline import (
    BCConfig,
    CQLConfig,
    MLPPolicy,
    behaviour_cloning,
    fit_bc,
    fit_cql,
    transitions_from_table,
)
from tests.training.offline.logs import (
    BEHAVIOUR_RIGHT,
    CHAIN_CELLS,
    CHAIN_GAMMA,
    chain_greedy,
    chain_log,
    chain_optimal_q,
    chain_schema,
    interactions,
)

OPTIMAL = [int(a) for a in np.argmax(chain_optimal_q(), axis=1)]  # "right" (1) in every cell
BEHAVIOUR_MODE = [int(p > 0.5) for p in BEHAVIOUR_RIGHT]  # wrong in cells 0 and 2


@pytest.fixture(scope="module")
def chain() -> pa.Table:
    return chain_log(400, seed=0)  # ~1900 decisions


def _q(policy: MLPPolicy) -> np.ndarray:
    return policy.outputs(np.eye(CHAIN_CELLS))


def test_the_chain_is_what_the_tests_claim() -> None:
    assert OPTIMAL == [1, 1, 1, 1]
    assert BEHAVIOUR_MODE == [0, 1, 0, 1]
    np.testing.assert_allclose(chain_optimal_q()[:, 1], [7.29, 8.1, 9.0, 10.0])


def test_cql_learns_the_optimal_policy_in_every_state(chain: pa.Table) -> None:
    transitions = transitions_from_table(chain, chain_schema())
    assert transitions.n_episodes == 400
    fit = fit_cql(transitions, chain_schema(), CQLConfig(gamma=CHAIN_GAMMA, alpha=1.0, steps=2000))
    assert chain_greedy(fit.policy) == OPTIMAL
    # conservative: the learned values lie below the true ones (measured 4.7, 6.6, 7.5, 9.8 against 7.3 ... 10)
    q = _q(fit.policy)
    assert np.all(q[:, 1] <= chain_optimal_q()[:, 1] + 0.1)
    assert fit.losses[-1] < fit.losses[0]


def test_behaviour_cloning_copies_the_behaviours_mistakes(chain: pa.Table) -> None:
    fit = behaviour_cloning(chain, chain_schema(), BCConfig(steps=1000))
    assert chain_greedy(fit.policy) == BEHAVIOUR_MODE
    assert chain_greedy(fit.policy) != OPTIMAL


def test_without_the_penalty_cql_is_offline_dqn_and_recovers_q_star(chain: pa.Table) -> None:
    transitions = transitions_from_table(chain, chain_schema())
    fit = fit_cql(transitions, chain_schema(), CQLConfig(gamma=CHAIN_GAMMA, alpha=0.0, steps=2000))
    np.testing.assert_allclose(_q(fit.policy), chain_optimal_q(), atol=0.25)


def test_cql_avoids_an_action_the_log_never_shows() -> None:
    """In cell 3 the behaviour only ever goes right. Plain offline DQN (alpha = 0) rates "left" there whatever its
    network extrapolates, and with seed 2 it prefers it (measured: 10.5 against 10.0); CQL pushes the
    unseen action well below the logged one for every seed."""
    log = chain_log(300, seed=1, behaviour_right=(0.3, 0.8, 0.3, 1.0))
    transitions = transitions_from_table(log, chain_schema())
    assert not np.any((transitions.state[:, 3] == 1) & (transitions.action == 0))
    for seed in range(3):
        fit = fit_cql(transitions, chain_schema(), CQLConfig(gamma=CHAIN_GAMMA, alpha=1.0, steps=1000, seed=seed))
        q = _q(fit.policy)
        assert q[3, 0] < q[3, 1] - 1.0
        assert chain_greedy(fit.policy) == OPTIMAL
    dqn = fit_cql(transitions, chain_schema(), CQLConfig(gamma=CHAIN_GAMMA, alpha=0.0, steps=1000, seed=2))
    assert chain_greedy(dqn.policy) == [1, 1, 1, 0]  # the same seed and data, without the penalty: "left" in cell 3


def test_fits_are_deterministic_under_a_seed(chain: pa.Table, tmp_path: Path) -> None:
    transitions = transitions_from_table(chain, chain_schema())
    config = CQLConfig(gamma=CHAIN_GAMMA, steps=200)
    a, b = fit_cql(transitions, chain_schema(), config), fit_cql(transitions, chain_schema(), config)
    for key, value in a.policy.state().items():
        np.testing.assert_array_equal(b.policy.state()[key], value)
    other = fit_cql(transitions, chain_schema(), CQLConfig(gamma=CHAIN_GAMMA, steps=200, seed=1))
    assert not np.array_equal(other.policy.state()["w0"], a.policy.state()["w0"])
    bc_a = behaviour_cloning(chain, chain_schema(), BCConfig(steps=100))
    bc_b = behaviour_cloning(chain, chain_schema(), BCConfig(steps=100))
    np.testing.assert_array_equal(bc_a.policy.state()["w1"], bc_b.policy.state()["w1"])
    # and the saved folders are byte-identical
    assert content_hash(save_policy(a.policy, tmp_path / "a")) == content_hash(save_policy(b.policy, tmp_path / "b"))


def test_cql_serves_with_honest_exploration_and_round_trips(chain: pa.Table, tmp_path: Path) -> None:
    transitions = transitions_from_table(chain, chain_schema())
    fit = fit_cql(transitions, chain_schema(), CQLConfig(gamma=CHAIN_GAMMA, steps=300, epsilon=0.1))
    loaded = load_policy(save_policy(fit.policy, tmp_path / "cql"))
    batch = PolicyInput.from_contexts(chain_schema(), [{"cell": f"c{s % 4}"} for s in range(40)])
    a, b = fit.policy.act(batch, np.random.default_rng(1)), loaded.act(batch, np.random.default_rng(1))
    np.testing.assert_array_equal(a.action, b.action)
    assert set(np.round(a.propensity, 12)) <= {0.05, 0.95}


def test_progress_is_reported(chain: pa.Table) -> None:
    calls: list[tuple[int, int]] = []
    transitions = transitions_from_table(chain, chain_schema())
    fit_cql(transitions, chain_schema(), CQLConfig(steps=120), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(50, 120), (100, 120), (120, 120)]


def test_warm_start_continues_from_the_parent(chain: pa.Table) -> None:
    transitions = transitions_from_table(chain, chain_schema())
    parent = fit_cql(transitions, chain_schema(), CQLConfig(gamma=CHAIN_GAMMA, steps=2000)).policy
    child = fit_cql(transitions, chain_schema(), CQLConfig(gamma=CHAIN_GAMMA, steps=100, learning_rate=1e-4),
                    parent=parent)
    assert child.warm_start
    np.testing.assert_allclose(_q(child.policy), _q(parent), atol=0.3)  # 100 small steps barely move it
    np.testing.assert_array_equal(child.policy.x_mean, parent.x_mean)
    with pytest.raises(ValidationError, match=r"^parent: the parent network's layers"):
        fit_cql(transitions, chain_schema(), CQLConfig(hidden=(16,), steps=10), parent=parent)


# ---- behaviour cloning of box actions ------------------------------------------------------------------------------

BOX = Schema.model_validate({
    "features": [{"name": "u", "type": "float", "min": -1, "max": 1}],
    "actions": {"type": "box", "low": [-2.0], "high": [2.0]},
})


def test_cloning_box_actions_learns_the_behaviours_mean() -> None:
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, 2000)
    behaviour = np.clip(1.5 * u + 0.1 * rng.standard_normal(2000), -2, 2)  # mean action 1.5 u
    log = interactions([{"u": float(v)} for v in u], [[float(a)] for a in behaviour], [1.0] * 2000, [0.0] * 2000)
    fit = behaviour_cloning(log, BOX, BCConfig(steps=1500, noise_std=0.05))
    grid = np.linspace(-0.9, 0.9, 19)
    mean = fit.policy.mean_action(grid[:, None])[:, 0]
    np.testing.assert_allclose(mean, 1.5 * grid, atol=0.1)
    result = fit.policy.act(PolicyInput(x=grid[:, None]), np.random.default_rng(1))
    assert np.all(result.propensity > 0) and result.probabilities is None


def test_bc_rejects_bad_settings_and_shapes() -> None:
    with pytest.raises(ValidationError, match=r"^epsilon:"):
        BCConfig(epsilon=0.0)
    with pytest.raises(ValidationError, match=r"^noise_std:"):
        BCConfig(noise_std=0.0)
    with pytest.raises(ValidationError, match=r"^steps:"):
        CQLConfig(steps=0)
    with pytest.raises(ValidationError, match=r"^gamma:"):
        CQLConfig(gamma=1.0)
    with pytest.raises(ValidationError, match=r"^state:"):
        fit_bc(np.zeros((3, 2)), np.zeros(3, dtype=int), chain_schema())
    with pytest.raises(ValidationError, match=r"^schema.actions: CQL here needs fixed discrete"):
        fit_cql(transitions_from_table(chain_log(5, 0), chain_schema()), BOX)
