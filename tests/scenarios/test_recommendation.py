"""Recommendation: click probabilities by hand, common random numbers, the most-popular baseline, perturbations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlops.errors import ValidationError
from rlops.scenarios import evaluate_controller
from rlops.scenarios.recommendation import (
    CLICK_RATE,
    EXPECTED_CLICK_RATE,
    MATURE_TO_MINOR,
    SPEC,
    MostPopular,
    RecommendationEnv,
    RecommendationParams,
)


class Fixed:
    """Always shows the same item."""

    def __init__(self, item: int) -> None:
        self.item = item

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, observation: object) -> int:
        return self.item


def test_click_probability_by_hand() -> None:
    params = RecommendationParams()
    env = RecommendationEnv(params)
    b, v = params.world()
    for item in (0, 3, 9):
        obs, _ = env.reset(seed=0)  # the same first user every time
        _, reward, _, _, info = env.step(item)
        logit = b[item] + 1.5 * float(obs[:6].astype(np.float64) @ v[item])
        assert info[EXPECTED_CLICK_RATE] == pytest.approx(1.0 / (1.0 + math.exp(-logit)), rel=1e-6)
        assert info[CLICK_RATE] in (0.0, 1.0)
        assert reward == info[CLICK_RATE] - info[MATURE_TO_MINOR]


def test_each_step_shows_the_next_user() -> None:
    env = RecommendationEnv(users=3)
    first, _ = env.reset(seed=1)
    second, *_ = env.step(0)
    assert not np.array_equal(first, second)
    params = env.params
    b, v = params.world()
    _, _, _, truncated, info = env.step(4)
    assert info[EXPECTED_CLICK_RATE] == pytest.approx(
        1.0 / (1.0 + math.exp(-(b[4] + 1.5 * float(second[:6].astype(np.float64) @ v[4])))), rel=1e-6)
    assert not truncated
    assert env.step(0)[3]  # the third user ends the episode


def test_common_random_numbers_make_clicks_monotone_in_probability() -> None:
    env = RecommendationEnv()
    by_item = {}
    for item in range(10):
        env.reset(seed=2)
        by_item[item] = [env.step(item)[4] for _ in range(100)]
    for k in range(100):
        steps = sorted((by_item[i][k] for i in range(10)), key=lambda info: info[EXPECTED_CLICK_RATE])
        clicks = [s[CLICK_RATE] for s in steps]
        assert clicks == sorted(clicks)  # if a less likely item was clicked, every likelier one is too


def test_adults_only_items_shown_to_minors_raise_the_constraint_and_cost_reward() -> None:
    env = RecommendationEnv(params=RecommendationParams(minor_share=1.0), mature_penalty=1.0)
    env.reset(seed=3)
    _, reward, _, _, info = env.step(9)  # the last two items are adults-only
    assert info[MATURE_TO_MINOR] == 1.0
    assert reward == info[CLICK_RATE] - 1.0
    _, _, _, _, info = env.step(0)
    assert info[MATURE_TO_MINOR] == 0.0
    adults = RecommendationEnv(params=RecommendationParams(minor_share=0.0))
    adults.reset(seed=3)
    assert adults.step(9)[4][MATURE_TO_MINOR] == 0.0


def test_most_popular_picks_the_top_item_and_skips_adults_only_for_minors() -> None:
    rates = np.array([0.1, 0.2, 0.5, 0.3])
    mature = np.array([False, False, True, False])
    controller = MostPopular(rates, mature)
    assert controller.act(np.array([0.0, 0.0, 0.0])) == 2
    assert controller.act(np.array([0.0, 0.0, 1.0])) == 3
    with pytest.raises(ValidationError, match="click_rates"):
        MostPopular(rates, np.ones(4, dtype=bool))


def test_most_popular_baseline_beats_every_other_fixed_item() -> None:
    seeds = range(20)
    best = evaluate_controller(SPEC, SPEC.baseline, seeds)
    chosen = SPEC.baseline(SPEC.make()).best  # type: ignore[attr-defined]
    rate = np.mean([r.kpis[EXPECTED_CLICK_RATE] for r in best])
    for item in range(10):
        if item != chosen:
            other = evaluate_controller(SPEC, Fixed(item), seeds)
            assert np.mean([r.kpis[EXPECTED_CLICK_RATE] for r in other]) < rate


def test_knowing_the_user_beats_most_popular_by_a_known_margin() -> None:
    env = RecommendationEnv()
    users = env.sample_users(5000, np.random.default_rng(9))
    p = env.click_probabilities(users)
    baseline = SPEC.baseline(env)
    assert p.max(axis=1).mean() > 1.5 * p[:, baseline.best].mean()  # type: ignore[attr-defined]


def test_without_personal_taste_most_popular_is_optimal() -> None:
    env = SPEC.make({"preference_strength": 0.0})
    users = env.unwrapped.sample_users(1000, np.random.default_rng(0))  # type: ignore[attr-defined]
    p = env.unwrapped.click_probabilities(users)  # type: ignore[attr-defined]
    baseline = SPEC.baseline(env)
    assert p[:, baseline.best].mean() == pytest.approx(p.max(axis=1).mean())  # type: ignore[attr-defined]


def test_a_higher_base_rate_clicks_more() -> None:
    seeds = range(5)
    base = evaluate_controller(SPEC, SPEC.baseline, seeds)
    more = evaluate_controller(SPEC, SPEC.baseline, seeds, params={"base_logit": -1.0})
    for b, m in zip(base, more, strict=True):
        assert m.kpis[EXPECTED_CLICK_RATE] > b.kpis[EXPECTED_CLICK_RATE]
        assert m.kpis[CLICK_RATE] >= b.kpis[CLICK_RATE]  # the same draws: clicks can only be added


def test_out_of_range_items_are_refused() -> None:
    env = RecommendationEnv()
    env.reset(seed=0)
    with pytest.raises(ValidationError, match="action"):
        env.step(10)
