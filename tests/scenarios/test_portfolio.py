"""Portfolio: costs and weight drift by hand, the KPIs from the wealth path, rebalancing dates, perturbations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlops.errors import ValidationError
from rlops.scenarios import evaluate_controller
from rlops.scenarios.portfolio import (
    DRAWDOWN,
    DRAWDOWN_BREACHED,
    RETURN,
    SPEC,
    VOLATILITY,
    PeriodicRebalance,
    PortfolioEnv,
    PortfolioParams,
    PortfolioReward,
    make_sixty_forty,
    target_weights,
    weights_action,
)


def test_action_mapping_and_its_inverse() -> None:
    assert target_weights(np.array([-1.0, -1.0, -1.0, 1.0])) == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    assert target_weights(np.array([1.0, 0.0, -1.0, 1.0])) == pytest.approx([2 / 3, 1 / 3, 0.0])
    for w in ((0.6, 0.4, 0.0), (0.2, 0.3, 0.5), (1.0, 0.0, 0.0)):
        assert target_weights(weights_action(w, True)) == pytest.approx(w, abs=1e-6)
    assert weights_action((0.6, 0.4, 0.0), False)[-1] == -1.0


def test_rebalancing_cost_and_weight_drift_by_hand() -> None:
    env = PortfolioEnv()
    env.reset(seed=0)
    obs, reward, _, _, info = env.step(weights_action((0.6, 0.4, 0.0), True))
    r = np.array(info["asset_returns"])
    turnover = abs(0.6 - 1 / 3) + abs(0.4 - 1 / 3) + abs(0.0 - 1 / 3)
    assert info["turnover"] == pytest.approx(turnover)
    wealth = (1.0 - 0.001 * turnover) * (1.0 + 0.6 * r[0] + 0.4 * r[1])
    assert info["wealth"] == pytest.approx(wealth, rel=1e-8)  # float32 actions: weights exact to ~1e-8
    assert info[RETURN] == pytest.approx(100.0 * math.log(wealth))
    simple = wealth - 1.0
    assert info[VOLATILITY] == pytest.approx(100.0 * math.sqrt(252.0 * simple**2))
    assert reward == pytest.approx(100.0 * (math.log(wealth) - 2.5 * simple**2))
    drifted = np.array([0.6 * (1 + r[0]), 0.4 * (1 + r[1]), 0.0])
    assert obs[:3] == pytest.approx(drifted / drifted.sum(), abs=1e-6)


def test_holding_trades_nothing_and_pays_nothing() -> None:
    held, rebalanced = PortfolioEnv(), PortfolioEnv()
    held.reset(seed=1)
    rebalanced.reset(seed=1)
    a = held.step(weights_action((1 / 3, 1 / 3, 1 / 3), False))[4]
    b = rebalanced.step(weights_action((1 / 3, 1 / 3, 1 / 3), True))[4]  # already equal: zero turnover
    assert a["turnover"] == 0.0 and b["turnover"] == pytest.approx(0.0, abs=1e-6)
    assert a["wealth"] == pytest.approx(b["wealth"], rel=1e-6)


def test_episode_kpis_follow_the_wealth_path() -> None:
    env = SPEC.make()
    controller = PeriodicRebalance()
    obs, _ = env.reset(seed=4)
    wealth = [1.0]
    infos = []
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(controller.act(obs))
        wealth.append(info["wealth"])
        infos.append(info)
        done = terminated or truncated
    w = np.array(wealth)
    simple = w[1:] / w[:-1] - 1.0
    peak = np.maximum.accumulate(w)
    result = evaluate_controller(SPEC, SPEC.baseline, seeds=[4])[0]
    assert result.kpis[RETURN] == pytest.approx(100.0 * math.log(w[-1]))
    assert result.kpis[VOLATILITY] == pytest.approx(100.0 * math.sqrt(252.0 * np.mean(simple**2)))
    assert result.kpis[DRAWDOWN] == pytest.approx(100.0 * np.max(1.0 - w / peak))
    assert result.violations[DRAWDOWN_BREACHED] == sum(1 for i in infos if i[DRAWDOWN] > 15.0)


def test_rebalances_on_the_first_day_and_at_month_ends_only() -> None:
    controller = PeriodicRebalance()
    obs = np.zeros(15, dtype=np.float32)
    days = [d for d in range(252) if controller.act(obs)[-1] > 0]
    assert days == [0, *range(20, 252, 21)]
    controller.reset()
    assert controller.act(obs)[-1] > 0


def test_sixty_forty_targets_equities_and_bonds_only() -> None:
    env = SPEC.make()
    controller = make_sixty_forty(env)
    obs, _ = env.reset(seed=0)
    controller.reset()
    obs, _, _, _, info = env.step(controller.act(obs))
    assert info["turnover"] > 0.0
    assert obs[2] == 0.0  # no commodities after the first rebalance
    for _ in range(19):
        obs, _, _, _, info = env.step(controller.act(obs))
        assert info["turnover"] == 0.0
    _, _, _, _, info = env.step(controller.act(obs))  # day 20: month end
    assert info["turnover"] > 0.0


def test_bad_weights_are_refused() -> None:
    with pytest.raises(ValidationError, match="weights"):
        PeriodicRebalance((0.5, 0.4, 0.0))


def test_filter_belief_tracks_the_hidden_regime() -> None:
    env = PortfolioEnv()
    beliefs: dict[int, list[float]] = {0: [], 1: []}
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        for _ in range(252):
            belief = float(obs[12])
            obs, _, _, _, info = env.step(weights_action((1 / 3, 1 / 3, 1 / 3), False))
            beliefs[info["regime"]].append(belief)  # the belief held before the day's return
    assert np.mean(beliefs[1]) > 0.5 > np.mean(beliefs[0])


def test_higher_volatility_shows_in_the_volatility_kpi() -> None:
    seeds = range(5)
    base = evaluate_controller(SPEC, SPEC.baseline, seeds)
    wild = evaluate_controller(SPEC, SPEC.baseline, seeds, params=SPEC.scaled({"vol_scale": 2.0}))
    for b, w in zip(base, wild, strict=True):
        assert w.kpis[VOLATILITY] > 1.5 * b.kpis[VOLATILITY]


def test_costlier_trading_lowers_the_return_of_a_trader() -> None:
    class DailyFlip:
        def __init__(self) -> None:
            self.day = 0

        def reset(self, seed: int | None = None) -> None:
            self.day = 0

        def act(self, observation: object) -> np.ndarray:
            self.day += 1
            return weights_action((0.8, 0.2, 0.0) if self.day % 2 else (0.2, 0.8, 0.0), True)

    cheap = evaluate_controller(SPEC, DailyFlip(), range(3))
    dear = evaluate_controller(SPEC, DailyFlip(), range(3), params=SPEC.scaled({"transaction_cost": 10.0}))
    for c, d in zip(cheap, dear, strict=True):
        # 252 trades of turnover 1.2 at 10 bp more each: about 0.01 * 1.2 * 252 = 3 of log return, in %: ~ -270
        assert d.kpis[RETURN] < c.kpis[RETURN] - 200.0


def test_longer_turbulent_spells_are_more_turbulent() -> None:
    calm = PortfolioParams()
    stormy = SPEC.scaled({"turbulent_days": 3.0})
    assert stormy.stationary()[1] > calm.stationary()[1]
    assert calm.transition().sum(axis=1) == pytest.approx([1.0, 1.0])


def test_non_positive_definite_correlations_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"params\.corr_calm"):
        PortfolioEnv(params=PortfolioParams(corr_calm=(0.99, -0.99, 0.99)))


def test_expected_reward_is_the_mean_variance_utility_under_the_filter_belief() -> None:
    p = PortfolioParams()
    env = PortfolioEnv(reward=PortfolioReward.EXPECTED)
    obs, _ = env.reset(seed=6)
    belief = float(obs[12])
    _, reward, _, _, info = env.step(weights_action((0.6, 0.4, 0.0), True))
    pi = np.array([1.0 - belief, belief]) @ p.transition()
    means = [p.mean("calm"), p.mean("turbulent")]
    mean = pi[0] * means[0] + pi[1] * means[1]
    second = sum(pi[s] * (p.covariance(name) + np.outer(means[s], means[s]))
                 for s, name in enumerate(("calm", "turbulent")))
    cov = second - np.outer(mean, mean)
    w = np.array([0.6, 0.4, 0.0])
    expected = w @ mean - 2.5 * w @ cov @ w - 0.001 * info["turnover"]
    assert reward == pytest.approx(100.0 * expected, rel=1e-5)  # float32 belief in the observation
    realized = PortfolioEnv()
    realized.reset(seed=6)
    same = realized.step(weights_action((0.6, 0.4, 0.0), True))[4]
    assert same["wealth"] == info["wealth"]  # the reward changes, the market and the KPIs do not


def test_unknown_reward_kinds_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"^reward: "):
        PortfolioEnv(reward="sharpe")
