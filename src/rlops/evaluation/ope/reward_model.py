"""Cross-fitted reward models ``q(x, a)`` for the direct method and the doubly robust family.

Each row's prediction comes from a model that never saw that row (k-fold cross-fitting, Chernozhukov et al. 2018,
"Double/debiased machine learning"), so the doubly robust correction stays unbiased and its normal interval stays
honest even with a flexible regressor. Any scikit-learn regressor plugs in; the default is a ridge regression per
action on the context features.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import Ridge

from rlops.errors import ValidationError
from rlops.evaluation.ope.data import BanditData


class RewardFeatures(StrEnum):
    """How a regressor sees the action."""

    #: One regressor per action, fitted on that action's rows, with the context features ``x`` as input. Captures
    #: every context-action interaction the regressor can express; the default.
    PER_ACTION = "per_action"
    #: One regressor on ``[x, one_hot(a)]``. Pools data across actions (good when some actions are rare), but a
    #: linear regressor then only learns an additive action effect.
    JOINT = "joint"


@runtime_checkable
class RewardModel(Protocol):
    """Produces out-of-sample reward predictions for every logged context and every action."""

    def fit_predict(self, data: BanditData) -> np.ndarray:
        """``(n, K)`` predictions ``q_hat[i, a]`` of ``E[r | x_i, a]``, each from a model not fitted on row ``i``."""
        ...


@dataclass(frozen=True)
class CrossFitted:
    """k-fold cross-fitted reward model around any scikit-learn regressor.

    Args:
        regressor: an unfitted scikit-learn regressor, cloned for every fit; default ``Ridge(alpha=1.0)``.
        features: :class:`RewardFeatures`; default ``PER_ACTION``.
        folds: number of folds ``k`` (>= 2); default 5. Rows are assigned to folds by a seeded permutation.
        seed: seed of the fold assignment; default 0.

    An action with no training rows in a fold is predicted as the mean training reward. When the data declares
    ``reward_bounds``, predictions are clipped into them.
    """

    regressor: Any = None
    features: RewardFeatures = RewardFeatures.PER_ACTION
    folds: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ValidationError("reward_model.folds", f"must be at least 2, got {self.folds!r}")
        if self.regressor is not None and not (hasattr(self.regressor, "fit") and hasattr(self.regressor, "predict")):
            raise ValidationError("reward_model.regressor", "expected a scikit-learn regressor (fit and predict)")
        if not isinstance(self.features, RewardFeatures):
            raise ValidationError("reward_model.features", f"expected one of {[f.value for f in RewardFeatures]}")

    def _new(self) -> Any:
        return clone(self.regressor) if self.regressor is not None else Ridge(alpha=1.0)

    def fit_predict(self, data: BanditData) -> np.ndarray:
        if data.x is None:
            raise ValidationError("x", "is missing: fitting a reward model needs the context features (or pass q_hat)")
        x, action, reward = data.x, data.action, data.reward
        n, k = data.n, data.n_actions
        if n < self.folds:
            raise ValidationError("reward", f"{n} rows cannot be split into {self.folds} folds")
        fold = np.empty(n, dtype=np.int64)
        fold[np.random.default_rng(self.seed).permutation(n)] = np.arange(n) % self.folds
        q_hat = np.empty((n, k))
        for f in range(self.folds):
            test = fold == f
            train = ~test
            if self.features is RewardFeatures.PER_ACTION:
                self._per_action(x, action, reward, train, test, q_hat, k)
            else:
                self._joint(x, action, reward, train, test, q_hat, k)
        if data.reward_bounds is not None:
            np.clip(q_hat, data.reward_bounds[0], data.reward_bounds[1], out=q_hat)
        return q_hat

    def _per_action(self, x: np.ndarray, action: np.ndarray, reward: np.ndarray, train: np.ndarray,
                    test: np.ndarray, out: np.ndarray, k: int) -> None:
        x_test = x[test]
        fallback = float(reward[train].mean())
        for a in range(k):
            rows = train & (action == a)
            if not rows.any():
                out[test, a] = fallback
                continue
            model = self._new().fit(x[rows], reward[rows])
            out[test, a] = model.predict(x_test)

    def _joint(self, x: np.ndarray, action: np.ndarray, reward: np.ndarray, train: np.ndarray,
               test: np.ndarray, out: np.ndarray, k: int) -> None:
        eye = np.eye(k)
        model = self._new().fit(np.hstack([x[train], eye[action[train]]]), reward[train])
        x_test = x[test]
        for a in range(k):
            design = np.hstack([x_test, np.broadcast_to(eye[a], (x_test.shape[0], k))])
            out[test, a] = model.predict(design)


def cross_fit(data: BanditData, model: RewardModel | None = None) -> BanditData:
    """``data`` with cross-fitted reward predictions attached, so several estimators can share one fit.

    Example:
        >>> # data = cross_fit(data); DoublyRobust().estimate(data); DirectMethod().estimate(data)
    """
    return data.with_q_hat((model or CrossFitted()).fit_predict(data))
