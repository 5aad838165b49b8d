"""Recommendation: a contextual bandit of users and items with a hidden logistic preference model.

Each step one user arrives; the controller shows one of ``n_items`` items and the user clicks or not. The click
probability is logistic in a popularity term and the match between the user's and the item's features, the
bilinear-logistic click model of contextual-bandit recommendation (Li et al., 2010, *A contextual-bandit approach
to personalized news article recommendation*, WWW; Chapelle & Li, 2011, *An empirical evaluation of Thompson
sampling*, NeurIPS)::

    P(click | user x, item j) = sigmoid(b_j + preference_strength * x . v_j)
    b_j ~ N(base_logit, popularity_std^2),   v_j ~ N(0, I / d),   x ~ N(user_shift, I)   (d = n_features)

The items (``b``, ``v``) are the *world*, drawn once from ``world_seed``; users are drawn per episode from the
episode's seed. A share ``minor_share`` of users are minors, and the last ``mature_items`` items are for adults
only. Because popularity differs between items while tastes differ between users, showing everyone the most popular
item leaves clicks on the table, and the gap is known exactly (:meth:`RecommendationEnv.click_probabilities`).

An episode is ``users`` arrivals (default 100). Users and the uniform numbers that decide clicks are drawn at reset
(common random numbers: a user clicks item ``j`` when ``U < P(click | x, j)``, the same ``U`` whatever is shown).

**Action**: ``Discrete(n_items)``, the item shown. **Observation** (float32, clipped to ``[-5, 5]``): the user's
features and the minor flag (0/1).

**KPIs**: ``click_rate`` (clicks per user shown) and ``expected_click_rate`` (the true click probability of the
item shown, averaged: the same target as ``click_rate`` without the sampling noise of the clicks).
**Constraint**: ``mature_to_minor`` (an adults-only item shown to a minor).

**Reward**: the click (1 or 0), minus ``mature_penalty`` (default 1.0) when an adults-only item is shown to a minor.

**Baseline**: :class:`MostPopular`, the item with the highest click rate over the whole user population (as
measured from past traffic; here computed from the world on 20,000 users), skipping adults-only items for minors.
This is its own world rather than a wrapper of :class:`rlops.scenarios.SyntheticBandit` (the schema-based world of
the serving demo, which has no item features); that class is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlops.errors import ValidationError
from rlops.scenarios.base import KPI, Aggregation, Better, ScenarioSpec

ENV_ID = "rlops/Recommendation-v0"
CLICK_RATE, EXPECTED_CLICK_RATE = "click_rate", "expected_click_rate"
MATURE_TO_MINOR = "mature_to_minor"
OBS_LIMIT = 5.0
POPULARITY_SAMPLE = 20_000


@dataclass(frozen=True)
class RecommendationParams:
    """The item world and the user population.

    Attributes:
        n_items: number of items (actions), default 10.
        n_features: dimension ``d`` of user and item features, default 6.
        world_seed: seeds the items' popularity and features, default 0.
        base_logit: mean popularity logit, default -2.0 (about 12% clicks).
        popularity_std: spread of item popularity logits, default 0.5.
        preference_strength: weight of the user-item match in the logit, default 1.5.
        user_shift: mean of every user feature, default 0.0 (shift the population with it).
        minor_share: fraction of users who are minors, default 0.1.
        mature_items: how many items (the last ones) are adults-only, default 2.
    """

    n_items: int = 10
    n_features: int = 6
    world_seed: int = 0
    base_logit: float = -2.0
    popularity_std: float = 0.5
    preference_strength: float = 1.5
    user_shift: float = 0.0
    minor_share: float = 0.1
    mature_items: int = 2

    def check(self) -> None:
        """Reject constants that make the model meaningless."""
        if self.n_items < 2:
            raise ValidationError("params.n_items", f"needs at least 2 items, got {self.n_items}")
        if self.n_features < 1:
            raise ValidationError("params.n_features", f"must be >= 1, got {self.n_features}")
        if not 0 <= self.mature_items < self.n_items:
            raise ValidationError("params.mature_items", f"must be in [0, n_items), got {self.mature_items}")
        if not 0.0 <= self.minor_share <= 1.0:
            raise ValidationError("params.minor_share", f"must be in [0, 1], got {self.minor_share}")
        for name in ("base_logit", "popularity_std", "preference_strength", "user_shift"):
            if not math.isfinite(getattr(self, name)):
                raise ValidationError(f"params.{name}", "must be finite")
        if self.popularity_std < 0:
            raise ValidationError("params.popularity_std", f"must be >= 0, got {self.popularity_std}")

    def world(self) -> tuple[np.ndarray, np.ndarray]:
        """``(b, V)``: item popularity logits ``(n_items,)`` and features ``(n_items, n_features)``."""
        rng = np.random.default_rng(self.world_seed)
        features = rng.normal(0.0, 1.0 / math.sqrt(self.n_features), size=(self.n_items, self.n_features))
        # Popularity is drawn as a standard normal and scaled, so that perturbing the spread keeps the order.
        popularity = self.base_logit + self.popularity_std * rng.standard_normal(self.n_items)
        return popularity, features

    def mature(self) -> np.ndarray:
        """Boolean mask of the adults-only items."""
        mask = np.zeros(self.n_items, dtype=bool)
        if self.mature_items:
            mask[-self.mature_items:] = True
        return mask


class RecommendationEnv(gym.Env[np.ndarray, np.integer[Any]]):
    """Users arriving one per step (see the module docstring for the click model).

    Args:
        params: world and population constants, default :class:`RecommendationParams()`.
        users: users per episode, default 100.
        mature_penalty: reward subtracted for an adults-only item shown to a minor, default 1.0.
        render_mode: only ``None`` is supported.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - Gymnasium's class attribute

    def __init__(self, params: RecommendationParams | None = None, users: int = 100, mature_penalty: float = 1.0,
                 render_mode: str | None = None) -> None:
        self.params = params if params is not None else RecommendationParams()
        self.params.check()
        if users < 1:
            raise ValidationError("users", f"must be >= 1, got {users}")
        if not mature_penalty >= 0:
            raise ValidationError("mature_penalty", f"must be >= 0, got {mature_penalty}")
        self.render_mode = render_mode
        self.horizon, self.mature_penalty = users, float(mature_penalty)
        self._popularity, self._features = self.params.world()
        self._mature = self.params.mature()
        d = self.params.n_features
        self.action_space = spaces.Discrete(self.params.n_items)
        low = np.append(np.full(d, -OBS_LIMIT), 0.0).astype(np.float32)
        high = np.append(np.full(d, OBS_LIMIT), 1.0).astype(np.float32)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self._t = 0
        self._users = np.zeros((users, d + 1))
        self._uniforms = np.zeros(users)

    def click_probabilities(self, users: np.ndarray) -> np.ndarray:
        """True click probability of every item, ``(n, n_items)``, for user rows as observed (features, minor)."""
        x = np.asarray(users, dtype=np.float64)[:, : self.params.n_features]
        logits = self._popularity + self.params.preference_strength * x @ self._features.T
        return 1.0 / (1.0 + np.exp(-logits))  # type: ignore[no-any-return]

    def sample_users(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` user rows (features, minor flag) as the observation shows them."""
        p = self.params
        x = np.clip(rng.normal(p.user_shift, 1.0, size=(n, p.n_features)), -OBS_LIMIT, OBS_LIMIT)
        minor = (rng.random(n) < p.minor_share).astype(float)
        return np.column_stack([x, minor])

    def mature_items(self) -> np.ndarray:
        """Boolean mask of the adults-only items."""
        return self._mature.copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw this episode's users and click draws."""
        super().reset(seed=seed)
        self._t = 0
        self._users = self.sample_users(self.horizon, self.np_random)
        self._uniforms = self.np_random.random(self.horizon)
        return self._users[0].astype(np.float32), {}

    def step(self, action: np.integer[Any] | int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        item = int(action)
        if not 0 <= item < self.params.n_items:
            raise ValidationError("action", f"must be an item index in [0, {self.params.n_items}), got {item}")
        user = self._users[self._t]
        p = float(self.click_probabilities(user[None, :])[0, item])
        click = 1.0 if self._uniforms[self._t] < p else 0.0
        violated = 1.0 if user[-1] > 0.5 and self._mature[item] else 0.0
        self._t += 1
        info = {CLICK_RATE: click, EXPECTED_CLICK_RATE: p, MATURE_TO_MINOR: violated, "item": item}
        truncated = self._t >= self.horizon
        obs = self._users[min(self._t, self.horizon - 1)].astype(np.float32)
        return obs, click - self.mature_penalty * violated, False, truncated, info


class MostPopular:
    """Show every user the item with the highest population click rate (adults-only items skipped for minors).

    Args:
        click_rates: each item's click rate over the user population, ``(n_items,)``.
        mature: boolean mask of the adults-only items, default none.
    """

    def __init__(self, click_rates: np.ndarray, mature: np.ndarray | None = None) -> None:
        rates = np.asarray(click_rates, dtype=np.float64)
        self.mature = np.zeros(rates.shape, dtype=bool) if mature is None else np.asarray(mature, dtype=bool)
        if rates.ndim != 1 or self.mature.shape != rates.shape or self.mature.all():
            raise ValidationError("click_rates", "needs one rate per item, and at least one item for everyone")
        order = np.argsort(-rates, kind="stable")
        self.best = int(order[0])
        self.best_for_minors = int(next(j for j in order if not self.mature[j]))

    def reset(self, seed: int | None = None) -> None:
        """Stateless: nothing to forget."""

    def act(self, observation: Any) -> int:
        minor = float(np.asarray(observation)[-1]) > 0.5
        return self.best_for_minors if minor else self.best


def make_env(params: RecommendationParams | None = None, **options: Any) -> RecommendationEnv:
    """Build the environment (the spec's ``env_factory``)."""
    return RecommendationEnv(params=params, **options)


def make_baseline(env: gym.Env[Any, Any]) -> MostPopular:
    """Most-popular by the population click rates of the environment's world (20,000 users, fixed seed)."""
    world = env.unwrapped
    if not isinstance(world, RecommendationEnv):
        raise ValidationError("env", f"the most-popular baseline needs a RecommendationEnv, got {type(world)}")
    users = world.sample_users(POPULARITY_SAMPLE, np.random.default_rng(0))
    return MostPopular(world.click_probabilities(users).mean(axis=0), world.mature_items())


SPEC = ScenarioSpec(
    id=ENV_ID,
    params_type=RecommendationParams,
    env_factory=make_env,
    kpis=(
        KPI(CLICK_RATE, Aggregation.MEAN, Better.HIGHER, "clicks/user", "observed click rate"),
        KPI(EXPECTED_CLICK_RATE, Aggregation.MEAN, Better.HIGHER, "clicks/user",
            "true click probability of the items shown"),
    ),
    constraints=(MATURE_TO_MINOR,),
    perturbable=("base_logit", "popularity_std", "preference_strength", "user_shift", "minor_share"),
    baseline=make_baseline,
    description="Users with features choosing among 10 items under a hidden logistic preference model; 100 users "
                "per episode. Baseline: most popular item.",
)
