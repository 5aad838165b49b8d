"""Bandit policy learning from logs: judged online, on fresh users of the synthetic bandit whose optimum is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from rlops.errors import ValidationError
from rlops.policies import (
    EpsilonGreedy,
    LearningBatch,
    LinearScorer,
    LinUCB,
    PolicyInput,
    UniformRandom,
    load_policy,
    save_policy,
)
from rlops.scenarios import SyntheticBandit
from rlops.schema import Schema
from rlops.training.offline import BanditMethod, fit_bandit_policy, pseudo_rewards, read_logged
from tests.training.offline.logs import bandit_log, interactions, online_value

WORLD = SyntheticBandit(seed=0)


@pytest.fixture(scope="module")
def uniform_log() -> pa.Table:
    return bandit_log(WORLD, UniformRandom(WORLD.schema), 5000, seed=1)


def _optimum(n: int = 20_000, seed: int = 99) -> float:
    batch = PolicyInput.from_contexts(WORLD.schema, WORLD.sample_contexts(n, np.random.default_rng(seed)))
    return WORLD.optimal_value(batch.x)


@pytest.mark.parametrize("method", ["dm", "ips", "dr"])
def test_fitted_policy_beats_uniform_logging_and_nears_the_optimum(uniform_log: pa.Table, method: str) -> None:
    fit = fit_bandit_policy(uniform_log, WORLD.schema, method=method, epsilon=0.05, seed=0)
    logging_value = online_value(WORLD, UniformRandom(WORLD.schema))
    value, optimum = online_value(WORLD, fit.policy), _optimum()
    # measured: logging 0.290, fitted 0.541-0.544 (with 5% exploration), optimum 0.560
    assert value > logging_value + 0.2
    assert value > 0.95 * optimum
    assert fit.diagnostics.method is BanditMethod(method)
    assert fit.diagnostics.n_rows == 5000
    assert fit.diagnostics.logged_value == pytest.approx(float(np.mean(uniform_log["reward"].to_numpy())))


def test_fitted_policy_beats_a_weak_context_blind_logging_policy() -> None:
    # A logging policy that mostly shows one mediocre category to everyone, exploring 30% of the time.
    weights = np.zeros((5, WORLD.schema.width))
    logging = EpsilonGreedy(WORLD.schema, LinearScorer(weights, bias=np.array([0, 0, 1.0, 0, 0])), epsilon=0.3)
    log = bandit_log(WORLD, logging, 8000, seed=2)
    fit = fit_bandit_policy(log, WORLD.schema, method="dr", seed=0)
    logging_value, value = online_value(WORLD, logging), online_value(WORLD, fit.policy)
    assert value > logging_value + 0.1, (value, logging_value)
    assert value > 0.9 * _optimum()


def test_holdout_estimate_covers_the_true_online_value(uniform_log: pa.Table) -> None:
    fit = fit_bandit_policy(uniform_log, WORLD.schema, method="dr", holdout=0.3, seed=0)
    d = fit.diagnostics
    assert not d.in_sample and d.n_rows == 3500 and d.n_eval_rows == 1500
    assert d.estimate is not None
    assert d.estimate.interval.contains(online_value(WORLD, fit.policy))
    # the greedy action is one of 5 logged uniformly: about a fifth of the rows carry the weight
    assert 0.15 * d.n_eval_rows < d.ess < 0.3 * d.n_eval_rows


def test_fitted_policy_saves_loads_and_logs_honest_propensities(uniform_log: pa.Table, tmp_path: Path) -> None:
    fit = fit_bandit_policy(uniform_log, WORLD.schema, method="dr", epsilon=0.1, evaluate=False)
    assert fit.diagnostics.estimate is None
    loaded = load_policy(save_policy(fit.policy, tmp_path / "p"))
    assert loaded.kind == "epsilon_greedy"
    batch = PolicyInput.from_contexts(WORLD.schema, WORLD.sample_contexts(200, np.random.default_rng(5)))
    a, b = fit.policy.act(batch, np.random.default_rng(3)), loaded.act(batch, np.random.default_rng(3))
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_allclose(a.propensity, b.propensity)
    assert isinstance(a.probabilities, np.ndarray)
    assert a.probabilities.min() == pytest.approx(0.1 / 5)
    np.testing.assert_allclose(a.propensity, a.probabilities[np.arange(200), a.action])


# ---- a known case: the direct method is misled, IPS and DR are not -----------------------------------------------

BUMP = Schema.model_validate({
    "features": [{"name": "x", "type": "float", "min": 0, "max": 2}],
    "actions": {"type": "discrete", "names": ["safe", "bump"]},
})


def _bump_log(n: int, seed: int) -> pa.Table:
    """x in {0, 1, 2}; "safe" pays 0.45, "bump" pays 1 at x = 1 and 0 elsewhere (not linear in x). The logger
    shows "bump" with probability 0.9 at x = 1 and 0.1 elsewhere, so its "bump" rows are mostly at x = 1."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, n)
    p_bump = np.where(x == 1, 0.9, 0.1)
    a = (rng.random(n) < p_bump).astype(int)
    reward = np.where(a == 1, (x == 1).astype(float), 0.45)
    return interactions([{"x": float(v)} for v in x], a.tolist(), np.where(a == 1, p_bump, 1 - p_bump).tolist(),
                        reward.tolist(), action_names=["safe", "bump"])


def _bump_value(policy: object) -> float:
    batch = PolicyInput.from_contexts(BUMP, [{"x": float(v)} for v in (0, 1, 2)])
    probs = policy.act(batch, np.random.default_rng(0)).probabilities  # type: ignore[attr-defined]
    truth = np.array([[0.45, 0.0], [0.45, 1.0], [0.45, 0.0]])
    return float(np.mean(np.sum(probs * truth, axis=1)))


def test_ips_and_dr_are_not_misled_where_the_direct_method_is() -> None:
    # A per-action line through the logged "bump" rows (weights 0.1, 0.9, 0.1 at x = 0, 1, 2) is flat at 0.82, so
    # DM shows "bump" to everyone (true value 1/3). The IPS/DR targets have the true mean at every x, and a line
    # through (0, 0), (1, 1), (2, 0) with equal weights is flat at 1/3 < 0.45: they show "safe" (value 0.45).
    log = _bump_log(6000, seed=3)
    values = {m: _bump_value(fit_bandit_policy(log, BUMP, method=m, epsilon=0.02, evaluate=False).policy)
              for m in ("dm", "ips", "dr")}
    greedy_safe, greedy_bump = 0.98 * 0.45 + 0.01 * (0.45 + 1 / 3), 0.98 / 3 + 0.01 * (0.45 + 1 / 3)
    assert values["dm"] == pytest.approx(greedy_bump, abs=1e-9)
    assert values["ips"] == pytest.approx(greedy_safe, abs=1e-9)
    assert values["dr"] == pytest.approx(greedy_safe, abs=1e-9)


def test_pseudo_rewards_by_hand() -> None:
    action, reward, propensity = np.array([0, 1, 1]), np.array([1.0, 2.0, 0.0]), np.array([0.5, 0.25, 0.005])
    q_hat = np.array([[0.4, 0.6], [0.1, 0.3], [0.2, 0.2]])
    ips = pseudo_rewards(action, reward, propensity, 2, BanditMethod.IPS, min_propensity=0.01)
    np.testing.assert_allclose(ips, [[2.0, 0.0], [0.0, 8.0], [0.0, 0.0]])
    dr = pseudo_rewards(action, reward, propensity, 2, BanditMethod.DR, q_hat, min_propensity=0.01)
    # row 2's propensity 0.005 is clipped to 0.01: 0.2 + (0 - 0.2) / 0.01 = -19.8
    np.testing.assert_allclose(dr, [[0.4 + 0.6 / 0.5, 0.6], [0.1, 0.3 + 1.7 / 0.25], [0.2, 0.2 - 20.0]])
    with pytest.raises(ValidationError, match="q_hat"):
        pseudo_rewards(action, reward, propensity, 2, BanditMethod.DR)


def test_dr_and_ips_recover_action_means_under_a_skewed_logger() -> None:
    """Context-free arms with true means (0.3, 0.5, 0.4), logged 70/10/20: the fitted scores are the means."""
    rng = np.random.default_rng(4)
    n = 30_000
    schema = Schema.model_validate({"features": [{"name": "z", "type": "float", "min": -1, "max": 1}],
                                    "actions": {"type": "discrete", "names": ["a", "b", "c"]}})
    logging = np.array([0.7, 0.1, 0.2])
    a = rng.choice(3, size=n, p=logging)
    reward = (rng.random(n) < np.array([0.3, 0.5, 0.4])[a]).astype(float)
    log = interactions([{"z": float(v)} for v in rng.uniform(-1, 1, n)], a.tolist(), logging[a].tolist(),
                       reward.tolist(), action_names=["a", "b", "c"])
    for method in ("ips", "dr"):
        policy = fit_bandit_policy(log, schema, method=method, evaluate=False).policy
        scores = policy.scorer.scores(PolicyInput.from_contexts(schema, [{"z": 0.0}]))  # type: ignore[attr-defined]
        np.testing.assert_allclose(scores[0], [0.3, 0.5, 0.4], atol=0.03)


# ---- fine-tuning ---------------------------------------------------------------------------------------------------


def test_fine_tuning_a_linucb_parent_continues_its_ridge_exactly(uniform_log: pa.Table) -> None:
    first, second = uniform_log.slice(0, 2500), uniform_log.slice(2500)
    parent = LinUCB(WORLD.schema, alpha=0.5, epsilon=0.05)
    rows = read_logged(first, WORLD.schema)
    parent.update(LearningBatch(rows.inputs, rows.action, rows.reward, rows.propensity))
    before = {k: v.copy() for k, v in parent.state().items()}
    fit = fit_bandit_policy(second, WORLD.schema, method="dm", parent=parent, evaluate=False)
    assert fit.policy.kind == "linucb" and fit.diagnostics.warm_start == "linucb"
    everything = LinUCB(WORLD.schema, alpha=0.5, epsilon=0.05)
    rows = read_logged(uniform_log, WORLD.schema)
    everything.update(LearningBatch(rows.inputs, rows.action, rows.reward, rows.propensity))
    for key, value in everything.state().items():
        np.testing.assert_allclose(fit.policy.state()[key], value, rtol=1e-9)
    for key, value in before.items():  # the parent itself is untouched
        np.testing.assert_array_equal(parent.state()[key], value)


def test_fine_tuning_with_dr_warm_starts_a_ridge_scorer(uniform_log: pa.Table) -> None:
    parent = fit_bandit_policy(uniform_log.slice(0, 1000), WORLD.schema, method="dr", evaluate=False).policy
    fit = fit_bandit_policy(uniform_log.slice(1000), WORLD.schema, method="dr", parent=parent, evaluate=False)
    assert fit.diagnostics.warm_start == "epsilon_greedy"
    assert online_value(WORLD, fit.policy) > online_value(WORLD, parent)


def test_parents_that_cannot_be_fine_tuned_are_refused(uniform_log: pa.Table) -> None:
    with pytest.raises(ValidationError, match="parent: kind 'uniform' has no update"):
        fit_bandit_policy(uniform_log, WORLD.schema, parent=UniformRandom(WORLD.schema))
    fixed = EpsilonGreedy(WORLD.schema, LinearScorer(np.zeros((5, WORLD.schema.width))), epsilon=0.1)
    with pytest.raises(ValidationError, match="method: 'dr' fine-tuning"):
        fit_bandit_policy(uniform_log, WORLD.schema, method="dr", parent=fixed)
    with pytest.raises(ValidationError, match="did not change"):
        fit_bandit_policy(uniform_log, WORLD.schema, method="dm", parent=fixed)
    with pytest.raises(ValidationError, match=r"parent: .*another schema"):
        fit_bandit_policy(uniform_log, WORLD.schema, parent=LinUCB(BUMP))


# ---- bad input -----------------------------------------------------------------------------------------------------


def test_bad_logs_get_errors_that_name_the_field(uniform_log: pa.Table) -> None:
    with pytest.raises(ValidationError, match=r"^reward: column is missing"):
        fit_bandit_policy(uniform_log.drop_columns(["reward"]), WORLD.schema)
    props = uniform_log["propensity"].to_numpy().copy()
    props[7] = 0.0
    zero = uniform_log.set_column(uniform_log.schema.get_field_index("propensity"), "propensity", pa.array(props))
    with pytest.raises(ValidationError, match=r"^propensity: row 7 is 0.0"):
        fit_bandit_policy(zero, WORLD.schema)
    with pytest.raises(ValidationError, match=r"^interactions: 5 rows are too few"):
        fit_bandit_policy(uniform_log.slice(0, 5), WORLD.schema)
    rewards = pa.array([None] + [1.0] * (uniform_log.num_rows - 1), type=pa.float64())
    missing = uniform_log.set_column(uniform_log.schema.get_field_index("reward"), "reward", rewards)
    with pytest.raises(ValidationError, match=r"^reward: is missing in row 0"):
        fit_bandit_policy(missing, WORLD.schema)
    contexts = uniform_log["context"].to_pylist()
    contexts[3] = json.dumps({**json.loads(contexts[3]), "age": 300})
    bad_ctx = uniform_log.set_column(uniform_log.schema.get_field_index("context"), "context", pa.array(contexts))
    with pytest.raises(ValidationError, match=r"^contexts\[3\].age"):
        fit_bandit_policy(bad_ctx, WORLD.schema)
    with pytest.raises(ValidationError, match=r"^method:"):
        fit_bandit_policy(uniform_log, WORLD.schema, method="magic")
    with pytest.raises(ValidationError, match=r"^epsilon:"):
        fit_bandit_policy(uniform_log, WORLD.schema, epsilon=0.0)
    box = Schema.model_validate({"features": [{"name": "x", "type": "float"}],
                                 "actions": {"type": "box", "low": [0], "high": [1]}})
    with pytest.raises(ValidationError, match=r"^schema.actions: bandit retraining needs fixed discrete"):
        fit_bandit_policy(uniform_log, box)
