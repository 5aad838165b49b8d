"""Portfolio: three asset classes whose returns switch between a calm and a turbulent regime.

Daily returns follow a two-state hidden Markov (Markov-switching) model, the model of Hamilton (1989), *A new
approach to the economic analysis of nonstationary time series and the business cycle*, Econometrica 57(2), used
for asset allocation by Ang & Bekaert (2002), *International asset allocation with regime shifts*, Review of
Financial Studies 15(4), and Guidolin & Timmermann (2007), *Asset allocation under multivariate regime switching*,
JEDC 31(11). The hidden regime ``s_t`` is a Markov chain that leaves the calm regime with probability
``1 / calm_days`` and the turbulent one with ``1 / turbulent_days`` per day, and given the regime the simple
returns of equities, bonds and commodities are Gaussian::

    r_t | s_t = s  ~  N(mu_s / 252 * drift_scale,  D_s C_s D_s / 252),   D_s = diag(sigma_s * vol_scale)

with annual means ``mu_s``, volatilities ``sigma_s`` and correlations ``C_s`` in :class:`PortfolioParams`
(illustrative: in the turbulent regime equities fall, volatility more than doubles, and bonds hedge).

Trading is at the open of each day: if the agent rebalances, the portfolio moves to the target weights and pays
``transaction_cost * turnover * wealth`` with ``turnover = sum_i |w_target_i - w_i|``; then the day's returns
apply, ``W <- W (1 + w . r)``, and the weights drift to ``w_i (1 + r_i) / (1 + w . r)``. The portfolio is
long-only and fully invested.

**Action** (``[-1, 1]^4``): three target-weight scores and a rebalance switch. Target weights are
``u_i = (a_i + 1) / 2`` normalised to sum to one (all ``u_i = 0`` means equal weights); the portfolio is rebalanced
to them only when the fourth number is ``> 0``, otherwise it is left to drift (no trade, no cost). A mapping by
normalisation, not softmax, so that corner portfolios (60/40 with no commodities) are reachable exactly.

**Observation** (float32, clipped to the bounds of the observation space): current weights (3); trailing 5-day mean
returns / 1% (3); trailing 21-day mean returns / 0.5% (3); trailing 21-day annualised volatility / 20% (3); the
probability of the turbulent regime from a Hamilton filter that knows the model's constants (the investor's regime
belief from public returns); the current drawdown x 5; and the day within the 21-day month / 21. The regime itself
stays hidden. Returns, regimes and the filter are drawn and computed at reset (63 days of history come first), so
every controller faces the same market on the same seed.

**KPIs**: ``return`` (daily log return of wealth in %, summed: the episode's log return), ``volatility``
(annualised realised volatility so far, ``sqrt(252 mean(r^2))`` in %, its last value is the episode's) and
``drawdown`` (% below the running peak of wealth, its maximum is the episode's maximum drawdown).
**Constraints**: ``drawdown_breached`` (drawdown above ``drawdown_limit``), ``concentration_breached`` (a weight
above ``max_weight`` after trading).

**Reward** (``reward=``, a :class:`PortfolioReward`): ``realized`` (default) is the day's mean-variance utility of
what happened, ``100 * (log(W_t / W_{t-1}) - risk_aversion / 2 * r_t^2)`` with ``r_t`` the portfolio's simple
return (``risk_aversion`` default 5). ``expected`` is the same utility as the investor expects it before the day,
from public information only: with the filter's regime belief carried one day forward, ``pi = [1 - b, b] P``, the
mixture mean ``m`` and covariance ``S`` of tomorrow's returns give ``100 * (w . m - risk_aversion / 2 * w' S w -
cost)`` for the weights ``w`` held after trading and ``cost`` the fraction of wealth paid to trade. Daily returns are
noisy next to their means (a turbulent day's equity mean is a tenth of its standard deviation), so the expected
utility is the same objective with far less variance for training; the KPIs are always the realised ones.

**Baseline**: :class:`PeriodicRebalance`, equal weights rebalanced at the first day and at every month end (every
21st trading day); ``PeriodicRebalance((0.6, 0.4, 0.0))`` is the 60/40 equity/bond variant.

This is a simulator of a stylised market, not investment advice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlops.errors import ValidationError
from rlops.scenarios.base import KPI, Aggregation, Better, ScenarioSpec

ENV_ID = "rlops/Portfolio-v0"
RETURN, VOLATILITY, DRAWDOWN = "return", "volatility", "drawdown"
DRAWDOWN_BREACHED, CONCENTRATION_BREACHED = "drawdown_breached", "concentration_breached"
REGIMES = ("calm", "turbulent")
ASSETS = ("equities", "bonds", "commodities")
TRADING_DAYS = 252
MONTH = 21
HISTORY = 63
#: Bounds of the observation entries (values outside are clipped); see the module docstring for their order.
OBS_LOW = np.array([0.0] * 3 + [-5.0] * 6 + [0.0] * 3 + [0.0, 0.0, 0.0], dtype=np.float32)
OBS_HIGH = np.array([1.0] * 3 + [5.0] * 6 + [5.0] * 3 + [1.0, 5.0, 1.0], dtype=np.float32)


@dataclass(frozen=True)
class PortfolioParams:
    """Constants of the regime-switching market and the trading costs.

    Attributes:
        mu_calm: annual mean simple returns in the calm regime, default ``(0.12, 0.03, 0.05)``.
        sigma_calm: annual volatilities in the calm regime, default ``(0.12, 0.05, 0.15)``.
        corr_calm: correlations (equities-bonds, equities-commodities, bonds-commodities), calm, default
            ``(0.1, 0.2, 0.0)``.
        mu_turbulent: annual means in the turbulent regime, default ``(-0.25, 0.08, -0.10)``.
        sigma_turbulent: annual volatilities in the turbulent regime, default ``(0.30, 0.08, 0.28)``.
        corr_turbulent: correlations in the turbulent regime, default ``(-0.3, 0.4, -0.1)``.
        calm_days: mean length of a calm spell in trading days (> 1), default 100 (``p_calm = 1 - 1/100``).
        turbulent_days: mean length of a turbulent spell (> 1), default 25 (``p_turbulent = 1 - 1/25``).
        drift_scale: multiplies every mean, default 1.0.
        vol_scale: multiplies every volatility, default 1.0.
        transaction_cost: fraction of traded value paid, default 0.001 (10 basis points).
        drawdown_limit: drawdown above which ``drawdown_breached`` is raised, fraction, default 0.15.
        max_weight: weight above which ``concentration_breached`` is raised, default 0.8.
    """

    mu_calm: tuple[float, float, float] = (0.12, 0.03, 0.05)
    sigma_calm: tuple[float, float, float] = (0.12, 0.05, 0.15)
    corr_calm: tuple[float, float, float] = (0.1, 0.2, 0.0)
    mu_turbulent: tuple[float, float, float] = (-0.25, 0.08, -0.10)
    sigma_turbulent: tuple[float, float, float] = (0.30, 0.08, 0.28)
    corr_turbulent: tuple[float, float, float] = (-0.3, 0.4, -0.1)
    calm_days: float = 100.0
    turbulent_days: float = 25.0
    drift_scale: float = 1.0
    vol_scale: float = 1.0
    transaction_cost: float = 0.001
    drawdown_limit: float = 0.15
    max_weight: float = 0.8

    def check(self) -> None:
        """Reject constants that make the model meaningless."""
        for name in ("calm_days", "turbulent_days"):
            value = getattr(self, name)
            if not (value > 1.0 and math.isfinite(value)):
                raise ValidationError(f"params.{name}", f"must be a finite number of days > 1, got {value}")
        for name in ("drift_scale", "vol_scale", "transaction_cost", "drawdown_limit", "max_weight"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValidationError(f"params.{name}", f"must be a finite number >= 0, got {value}")
        for name in ("mu_calm", "sigma_calm", "corr_calm", "mu_turbulent", "sigma_turbulent", "corr_turbulent"):
            if len(getattr(self, name)) != len(ASSETS):
                raise ValidationError(f"params.{name}", f"needs {len(ASSETS)} numbers")
        for regime in REGIMES:
            if np.any(np.linalg.eigvalsh(self.covariance(regime)) <= 0):
                raise ValidationError(f"params.corr_{regime}", "the correlations are not positive definite")

    def mean(self, regime: str) -> np.ndarray:
        """Daily mean returns in ``regime`` (``"calm"`` or ``"turbulent"``)."""
        return np.asarray(getattr(self, f"mu_{regime}")) * self.drift_scale / TRADING_DAYS

    def covariance(self, regime: str) -> np.ndarray:
        """Daily covariance of returns in ``regime``."""
        sigma = np.asarray(getattr(self, f"sigma_{regime}")) * self.vol_scale / math.sqrt(TRADING_DAYS)
        eb, ec, bc = getattr(self, f"corr_{regime}")
        corr = np.array([[1.0, eb, ec], [eb, 1.0, bc], [ec, bc, 1.0]])
        return np.outer(sigma, sigma) * corr  # type: ignore[no-any-return]

    def transition(self) -> np.ndarray:
        """Row-stochastic regime transition matrix (row: today's regime, 0 calm, 1 turbulent)."""
        leave_calm, leave_turbulent = 1.0 / self.calm_days, 1.0 / self.turbulent_days
        return np.array([[1.0 - leave_calm, leave_calm], [leave_turbulent, 1.0 - leave_turbulent]])

    def stationary(self) -> np.ndarray:
        """Long-run probabilities of (calm, turbulent)."""
        total = self.calm_days + self.turbulent_days
        return np.array([self.calm_days / total, self.turbulent_days / total])


class PortfolioReward(StrEnum):
    """What the environment's reward measures (the KPIs are realised either way)."""

    REALIZED = "realized"
    """The day's realised mean-variance utility."""
    EXPECTED = "expected"
    """The investor's expected mean-variance utility of the day, from the filter's belief (less noisy)."""


def target_weights(action: np.ndarray) -> np.ndarray:
    """The long-only, fully invested weights a raw action asks for (first three numbers; see the module doc)."""
    u = (np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[: len(ASSETS)], -1.0, 1.0) + 1.0) / 2.0
    total = u.sum()
    return u / total if total > 0 else np.full(len(ASSETS), 1.0 / len(ASSETS))


def weights_action(weights: np.ndarray | tuple[float, ...], rebalance: bool) -> np.ndarray:
    """The action that asks for ``weights`` (summing to one) and rebalances or not: the inverse of the mapping."""
    w = np.asarray(weights, dtype=np.float64)
    scores = 2.0 * w / w.max() - 1.0
    return np.append(scores, 1.0 if rebalance else -1.0).astype(np.float32)


class PortfolioEnv(gym.Env[np.ndarray, np.ndarray]):
    """The market as a Gymnasium environment (see the module docstring for the model).

    Args:
        params: market constants, default :class:`PortfolioParams()`.
        days: episode length in trading days, default 252 (a year).
        risk_aversion: the reward's penalty on squared daily returns, default 5.0.
        reward: realised (default) or expected utility, see the module docstring.
        render_mode: only ``None`` is supported.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - Gymnasium's class attribute

    def __init__(self, params: PortfolioParams | None = None, days: int = TRADING_DAYS, risk_aversion: float = 5.0,
                 reward: PortfolioReward | str = PortfolioReward.REALIZED, render_mode: str | None = None) -> None:
        self.params = params if params is not None else PortfolioParams()
        self.params.check()
        if days < 1:
            raise ValidationError("days", f"must be >= 1, got {days}")
        if not risk_aversion >= 0:
            raise ValidationError("risk_aversion", f"must be >= 0, got {risk_aversion}")
        self.render_mode = render_mode
        self.horizon, self.risk_aversion = days, float(risk_aversion)
        try:
            self.reward_kind = PortfolioReward(reward)
        except ValueError as e:
            known = [r.value for r in PortfolioReward]
            raise ValidationError("reward", f"must be one of {known}, got {reward!r}") from e
        means = [self.params.mean(name) for name in REGIMES]
        self._means = np.stack(means)
        self._second_moments = np.stack([self.params.covariance(name) + np.outer(m, m)
                                         for name, m in zip(REGIMES, means, strict=True)])
        n = len(ASSETS)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(n + 1,), dtype=np.float32)
        self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        self._t = 0
        self._weights = np.full(n, 1.0 / n)
        self._wealth = self._peak = 1.0
        self._sum_sq = 0.0
        self._returns = np.zeros((HISTORY + days, n))
        self._regimes = np.zeros(HISTORY + days, dtype=np.int64)
        self._belief = np.zeros(HISTORY + days)

    def _draw_market(self) -> None:
        p, rng, n = self.params, self.np_random, len(ASSETS)
        total = HISTORY + self.horizon
        trans = p.transition()
        regimes = np.empty(total, dtype=np.int64)
        regimes[0] = int(rng.random() < p.stationary()[1])
        draws = rng.random(total)
        for k in range(1, total):
            regimes[k] = int(draws[k] < trans[regimes[k - 1], 1])
        z = rng.standard_normal((total, n))
        returns = np.empty((total, n))
        for s, name in enumerate(REGIMES):
            chol = np.linalg.cholesky(p.covariance(name))
            rows = regimes == s
            returns[rows] = p.mean(name) + z[rows] @ chol.T
        self._regimes, self._returns = regimes, np.maximum(returns, -0.99)
        self._belief = self._filter(self._returns)

    def _filter(self, returns: np.ndarray) -> np.ndarray:
        """Hamilton filter: ``P(turbulent on day k | returns up to day k)`` for every day."""
        p = self.params
        trans = p.transition()
        log_lik = np.empty((len(returns), 2))
        for s, name in enumerate(REGIMES):
            cov = p.covariance(name)
            inv = np.linalg.inv(cov)
            _, logdet = np.linalg.slogdet(cov)
            d = returns - p.mean(name)
            log_lik[:, s] = -0.5 * (np.einsum("ij,jk,ik->i", d, inv, d) + logdet)
        belief = np.empty(len(returns))
        post = p.stationary()
        for k in range(len(returns)):
            prior = post @ trans
            lik = np.exp(log_lik[k] - log_lik[k].max())
            post = prior * lik
            post /= post.sum()
            belief[k] = post[1]
        return belief

    def _expected_utility(self, weights: np.ndarray) -> float:
        """Mean-variance utility of holding ``weights`` today, under yesterday's belief carried forward."""
        belief = self._belief[HISTORY + self._t - 1]
        pi = np.array([1.0 - belief, belief]) @ self.params.transition()
        mean = pi @ self._means
        cov = np.tensordot(pi, self._second_moments, axes=1) - np.outer(mean, mean)
        return float(weights @ mean - 0.5 * self.risk_aversion * weights @ cov @ weights)

    def _observation(self) -> np.ndarray:
        k = HISTORY + self._t  # today's index: the last return seen is k - 1
        past5, past21 = self._returns[k - 5:k], self._returns[k - MONTH:k]
        vol = np.sqrt(TRADING_DAYS * (past21**2).mean(axis=0))
        drawdown = 1.0 - self._wealth / self._peak
        obs = np.concatenate([self._weights, past5.mean(axis=0) / 0.01, past21.mean(axis=0) / 0.005, vol / 0.2,
                              [self._belief[k - 1], 5.0 * drawdown, (self._t % MONTH) / MONTH]])
        return np.clip(obs, OBS_LOW, OBS_HIGH).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw a new market path; start fully invested in equal weights with wealth 1."""
        super().reset(seed=seed)
        self._draw_market()
        self._t = 0
        self._weights = np.full(len(ASSETS), 1.0 / len(ASSETS))
        self._wealth = self._peak = 1.0
        self._sum_sq = 0.0
        return self._observation(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        p = self.params
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        before = self._wealth
        turnover = 0.0
        if a[-1] > 0.0:
            target = target_weights(a)
            turnover = float(np.abs(target - self._weights).sum())
            self._wealth -= p.transaction_cost * turnover * self._wealth
            self._weights = target
        concentrated = float(self._weights.max() > p.max_weight)
        expected = self._expected_utility(self._weights) - p.transaction_cost * turnover
        r = self._returns[HISTORY + self._t]
        growth = float(self._weights @ r)
        self._wealth *= 1.0 + growth
        self._weights = self._weights * (1.0 + r) / (1.0 + growth)
        self._peak = max(self._peak, self._wealth)
        self._t += 1
        log_return = math.log(self._wealth / before)
        simple = self._wealth / before - 1.0
        self._sum_sq += simple**2
        drawdown = 1.0 - self._wealth / self._peak
        info = {
            RETURN: 100.0 * log_return,
            VOLATILITY: 100.0 * math.sqrt(TRADING_DAYS * self._sum_sq / self._t),
            DRAWDOWN: 100.0 * drawdown,
            DRAWDOWN_BREACHED: 1.0 if drawdown > p.drawdown_limit else 0.0,
            CONCENTRATION_BREACHED: concentrated,
            "turnover": turnover,
            "wealth": self._wealth,
            "asset_returns": r.tolist(),
            "regime": int(self._regimes[HISTORY + self._t - 1]),
        }
        if self.reward_kind is PortfolioReward.EXPECTED:
            reward = 100.0 * expected
        else:
            reward = 100.0 * (log_return - 0.5 * self.risk_aversion * simple**2)
        return self._observation(), reward, False, self._t >= self.horizon, info


class PeriodicRebalance:
    """Rebalance to fixed weights on the first day and at every month end (each 21st trading day), else hold.

    Args:
        weights: target weights (equities, bonds, commodities), summing to one; default equal weights.
        period: trading days between rebalances, default 21 (a month).
    """

    def __init__(self, weights: tuple[float, ...] | None = None, period: int = MONTH) -> None:
        w = np.asarray(weights if weights is not None else (1.0 / len(ASSETS),) * len(ASSETS), dtype=np.float64)
        if w.shape != (len(ASSETS),) or np.any(w < 0) or not math.isclose(float(w.sum()), 1.0, abs_tol=1e-9):
            raise ValidationError("weights", f"needs {len(ASSETS)} non-negative weights summing to 1, got {weights}")
        if period < 1:
            raise ValidationError("period", f"must be >= 1 day, got {period}")
        self.weights, self.period = w, period
        self.day = 0

    def reset(self, seed: int | None = None) -> None:
        self.day = 0

    def act(self, observation: Any) -> np.ndarray:
        rebalance = self.day == 0 or self.day % self.period == self.period - 1
        self.day += 1
        return weights_action(self.weights, rebalance)


def make_env(params: PortfolioParams | None = None, **options: Any) -> PortfolioEnv:
    """Build the environment (the spec's ``env_factory``)."""
    return PortfolioEnv(params=params, **options)


def make_baseline(env: gym.Env[Any, Any]) -> PeriodicRebalance:
    """Equal weights rebalanced monthly."""
    return PeriodicRebalance()


def make_sixty_forty(env: gym.Env[Any, Any]) -> PeriodicRebalance:
    """The 60/40 equity/bond variant of the baseline."""
    return PeriodicRebalance((0.6, 0.4, 0.0))


SPEC = ScenarioSpec(
    id=ENV_ID,
    params_type=PortfolioParams,
    env_factory=make_env,
    kpis=(
        KPI(RETURN, Aggregation.SUM, Better.HIGHER, "%", "log return of wealth over the episode"),
        KPI(VOLATILITY, Aggregation.LAST, Better.LOWER, "%", "annualised realised volatility of daily returns"),
        KPI(DRAWDOWN, Aggregation.MAX, Better.LOWER, "%", "maximum drawdown from the running peak"),
    ),
    constraints=(DRAWDOWN_BREACHED, CONCENTRATION_BREACHED),
    perturbable=("calm_days", "turbulent_days", "drift_scale", "vol_scale", "transaction_cost"),
    baseline=make_baseline,
    description="Equities, bonds and commodities with two-regime (hidden Markov) returns and 10 bp transaction "
                "costs; one year of daily steps. Baseline: equal weights rebalanced monthly.",
    extra={"baselines": {"60/40": make_sixty_forty}},
)
