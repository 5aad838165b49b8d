"""Policies against problems with known optima, and exact propensities of the exploration rules."""

from __future__ import annotations

import numpy as np
import pytest

from rlops.errors import ConfigError
from rlops.policies import (
    EpsilonGreedy,
    LearningBatch,
    LinearScorer,
    LinearThompson,
    LinUCB,
    PolicyInput,
    RulePolicy,
    Softmax,
    UniformRandom,
)
from rlops.scenarios import SyntheticBandit
from tests.policies import rules


def _run_online(policy: LinUCB | LinearThompson, steps: int, seed: int) -> tuple[float, float, float]:
    """Learn online one decision at a time; value of the last quarter's choices vs the optimum and uniform."""
    world = SyntheticBandit(seed=0)
    rng = np.random.default_rng(seed)
    batch = PolicyInput.from_contexts(world.schema, world.sample_contexts(steps, rng))
    chosen = np.empty(steps, dtype=np.int64)
    for i in range(steps):
        row = PolicyInput(x=batch.x[i:i + 1], contexts=batch.contexts[i:i + 1])
        result = policy.act(row, rng)
        clicks = world.sample_clicks(row.x, result.action, rng).astype(np.float64)
        policy.update(LearningBatch(row, result.action, clicks, result.propensity))
        chosen[i] = result.action[0]
    tail = slice(steps - steps // 4, steps)
    uniform = float(world.click_probability(batch.x[tail]).mean())
    return world.value_of(batch.x[tail], chosen[tail]), world.optimal_value(batch.x[tail]), uniform


@pytest.mark.slow
@pytest.mark.parametrize("make", [lambda s: LinUCB(s, alpha=0.5), lambda s: LinearThompson(s, v=0.3, n_samples=64)])
def test_linear_bandits_reach_the_optimum(make: object) -> None:
    """After 20,000 seeded steps, the expected click rate of the last 5,000 choices is within 5% of the optimum."""
    policy = make(SyntheticBandit(seed=0).schema)  # type: ignore[operator]
    value, optimum, uniform = _run_online(policy, 20_000, seed=1)
    assert uniform < 0.6 * optimum  # the problem is not trivial: random play is far from the optimum
    assert value >= 0.95 * optimum, (value, optimum)


def test_epsilon_greedy_propensities_are_exact() -> None:
    world = SyntheticBandit(seed=0)
    k = 5
    weights = np.zeros((k, world.schema.width))
    weights[2, 0] = 1.0  # action 2 scores highest whenever age > 0
    policy = EpsilonGreedy(world.schema, LinearScorer(weights), epsilon=0.2)
    batch = PolicyInput.from_contexts(world.schema, world.sample_contexts(2000, np.random.default_rng(0)))
    result = policy.act(batch, np.random.default_rng(1))
    greedy = result.action == 2
    assert np.all(result.propensity[greedy] == 1 - 0.2 + 0.2 / k)  # 0.84, exactly
    assert np.all(result.propensity[~greedy] == 0.2 / k)  # 0.04, exactly
    assert 0.80 < greedy.mean() < 0.88  # and the greedy action is actually taken about 84% of the time


def test_softmax_probabilities_match_closed_form() -> None:
    world = SyntheticBandit(seed=0)
    weights = np.random.default_rng(0).normal(size=(5, world.schema.width))
    policy = Softmax(world.schema, LinearScorer(weights, bias=np.arange(5.0)), temperature=0.5)
    batch = PolicyInput.from_contexts(world.schema, world.sample_contexts(10, np.random.default_rng(1)))
    scores = batch.x @ weights.T + np.arange(5.0)
    expected = np.exp(scores / 0.5) / np.exp(scores / 0.5).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(policy.act(batch, np.random.default_rng(2)).probabilities, expected, rtol=1e-12)


def test_linucb_scores_match_textbook_formula() -> None:
    world = SyntheticBandit(seed=0)
    rng = np.random.default_rng(0)
    batch = PolicyInput.from_contexts(world.schema, world.sample_contexts(50, rng))
    policy = LinUCB(world.schema, alpha=0.7, l2=2.0)
    actions = rng.integers(0, 5, 50)
    rewards = rng.normal(size=50)
    policy.update(LearningBatch(batch, actions, rewards, np.full(50, 0.2)))
    x1 = np.hstack([batch.x, np.ones((50, 1))])
    probe = x1[0]
    ucb = []
    for a in range(5):
        xa, ya = x1[actions == a], rewards[actions == a]
        A = 2.0 * np.eye(x1.shape[1]) + xa.T @ xa
        theta = np.linalg.solve(A, xa.T @ ya)
        ucb.append(probe @ theta + 0.7 * np.sqrt(probe @ np.linalg.solve(A, probe)))
    result = policy.act(PolicyInput(x=batch.x[:1], contexts=batch.contexts[:1]), rng)
    assert result.action[0] == int(np.argmax(ucb))
    assert result.propensity[0] == 1.0


def test_uniform_box_density() -> None:
    from tests.policies.factories import BOX, box_batch

    result = UniformRandom(BOX).act(box_batch(np.random.default_rng(0), 10), np.random.default_rng(0))
    np.testing.assert_allclose(result.propensity, 1 / (2.0 * 1.0))


def test_rule_policy_errors() -> None:
    world = SyntheticBandit(seed=0)
    batch = PolicyInput.from_contexts(world.schema, world.sample_contexts(3, np.random.default_rng(0)))
    with pytest.raises(Exception, match="rule returned 'nope'"):
        RulePolicy(world.schema, lambda c: "nope").act(batch, np.random.default_rng(0))
    with pytest.raises(Exception, match=r"contexts\[0\]: rule .* raised ZeroDivisionError"):
        RulePolicy(world.schema, lambda c: 1 / 0).act(batch, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="must be importable"):
        RulePolicy(world.schema, lambda c: "news").config()
    with pytest.raises(ConfigError, match="cannot be imported"):
        RulePolicy(world.schema, target="tests.policies.rules:missing")
    assert RulePolicy(world.schema, rules.by_age).config()["target"] == "tests.policies.rules:by_age"


@pytest.mark.parametrize("bad", [dict(alpha=-1.0), dict(epsilon=1.0), dict(l2=0.0)])
def test_linucb_rejects_bad_hyperparameters(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        LinUCB(SyntheticBandit(seed=0).schema, **bad)


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.5])
def test_linucb_single_row_path_equals_batch_path(epsilon: float) -> None:
    """Serving one decision at a time must choose, and log, exactly what the batch path would."""
    world = SyntheticBandit(seed=0)
    rng = np.random.default_rng(0)
    batch = PolicyInput.from_contexts(world.schema, world.sample_contexts(300, rng))
    policy = LinUCB(world.schema, alpha=0.5, epsilon=epsilon)
    policy.update(LearningBatch(batch, rng.integers(0, 5, 300), rng.random(300), np.full(300, 0.2)))
    for i in range(300):
        row = PolicyInput(x=batch.x[i:i + 1], contexts=batch.contexts[i:i + 1])
        single = policy.act(row, np.random.default_rng(i))
        doubled = PolicyInput(x=np.repeat(batch.x[i:i + 1], 2, axis=0), contexts=batch.contexts[i:i + 1] * 2)
        pair = policy.act(doubled, np.random.default_rng(i))  # the batch path; its first row uses the same draw
        assert single.action[0] == pair.action[0]
        assert single.propensity[0] == pair.propensity[0]
        np.testing.assert_array_equal(single.probabilities[0], pair.probabilities[0])  # type: ignore[index]
