"""Bayesian ridge regression shared by the linear bandits and the ridge scorer.

Two layouts:
- *disjoint* (fixed discrete actions, as in Li et al. 2010, LinUCB "disjoint"): one model per action over the
  context features plus an intercept;
- *shared* (per-request candidates): one model over the joint features ``kron([1, x], [1, a])``, so that the
  context, the candidate's features and their interactions all carry weight.
"""

from __future__ import annotations

import numpy as np

from rlops.errors import ConfigError
from rlops.policies.base import LearningBatch, PolicyInput


def joint_features(x: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """``kron([1, x], [1, a])`` for every candidate row ``a``: shape ``(k, (d+1)*(da+1))``."""
    xa = np.concatenate([[1.0], x])
    ca = np.hstack([np.ones((candidates.shape[0], 1)), candidates])
    return (ca[:, None, :] * xa[None, :, None]).reshape(candidates.shape[0], -1)


class RidgeModel:
    """Per-model ``A = l2*I + sum w*phi*phi^T`` and ``b = sum w*y*phi``, with ``A^-1`` and ``theta`` kept current.

    Args:
        dim: feature dimension (intercept included).
        n_models: number of independent models (K actions for disjoint, 1 for shared).
        l2: ridge penalty (the prior precision), default 1.0.
    """

    def __init__(self, dim: int, n_models: int, l2: float = 1.0) -> None:
        if not (l2 > 0 and np.isfinite(l2)):
            raise ConfigError(f"l2 must be > 0, got {l2}")
        self.l2 = l2
        self.A = np.tile(np.eye(dim) * l2, (n_models, 1, 1))
        self.b = np.zeros((n_models, dim))
        self.A_inv = np.tile(np.eye(dim) / l2, (n_models, 1, 1))
        self.theta = np.zeros((n_models, dim))

    @classmethod
    def from_arrays(cls, A: np.ndarray, b: np.ndarray, l2: float) -> RidgeModel:
        model = cls(A.shape[1], A.shape[0], l2)
        model.A, model.b = A.astype(np.float64), b.astype(np.float64)
        model._refresh(range(A.shape[0]))
        return model

    def _refresh(self, models: range | np.ndarray) -> None:
        for m in models:
            self.A_inv[m] = np.linalg.inv(self.A[m])
            self.theta[m] = self.A_inv[m] @ self.b[m]

    def fit_rows(self, model_idx: np.ndarray, phi: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> None:
        """Add rows ``(phi_i, y_i)`` to model ``model_idx[i]`` with weights ``w`` (default 1)."""
        weights = np.ones(len(y)) if w is None else w
        finite = np.isfinite(y) & np.isfinite(weights) & np.all(np.isfinite(phi), axis=1)
        model_idx, phi, y, weights = model_idx[finite], phi[finite], y[finite], weights[finite]
        touched = np.unique(model_idx)
        for m in touched:
            rows = model_idx == m
            p, wy = phi[rows], weights[rows]
            self.A[m] += (p * wy[:, None]).T @ p
            self.b[m] += p.T @ (wy * y[rows])
        self._refresh(touched)

    # ---- the two layouts -----------------------------------------------------------------------------------

    @staticmethod
    def disjoint_phi(x: np.ndarray) -> np.ndarray:
        phi = np.empty((x.shape[0], x.shape[1] + 1))
        phi[:, :-1] = x
        phi[:, -1] = 1.0
        return phi

    def disjoint_moments(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``(n, K)`` and variance ``(n, K)`` of every action's predicted reward."""
        phi = self.disjoint_phi(x)
        mean = phi @ self.theta.T
        if phi.shape[0] == 1:  # one decision: (K, d, d) @ (d,) is several times faster than the einsum
            var = ((self.A_inv @ phi[0]) @ phi[0])[None, :]
        else:
            var = np.einsum("nd,kde,ne->nk", phi, self.A_inv, phi)
        return mean, np.maximum(var, 0.0)

    def shared_moments(self, x: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Joint features ``(k, D)``, mean ``(k,)`` and variance ``(k,)`` for one row's candidates."""
        phi = joint_features(x, candidates)
        mean = phi @ self.theta[0]
        var = np.einsum("kd,de,ke->k", phi, self.A_inv[0], phi)
        return phi, mean, np.maximum(var, 0.0)

    def update_from(self, batch: LearningBatch) -> None:
        """Learn from joined interactions in whichever layout the batch implies."""
        inputs = batch.inputs
        if inputs.candidates is None:
            self.fit_rows(batch.action.astype(np.int64), self.disjoint_phi(inputs.x), batch.reward, batch.weight)
            return
        phi = np.vstack([joint_features(inputs.x[i], inputs.candidates[i])[int(batch.action[i])][None, :]
                         for i in range(inputs.n)])
        self.fit_rows(np.zeros(inputs.n, dtype=np.int64), phi, batch.reward, batch.weight)


def model_dims(width: int, candidate_width: int | None, n_actions: int | None) -> tuple[int, int]:
    """``(dim, n_models)`` for a schema's layout."""
    if candidate_width is not None:
        return (width + 1) * (candidate_width + 1), 1
    return width + 1, int(n_actions or 0)


def check_rows(batch: PolicyInput, n_actions: int | None) -> None:
    if batch.candidates is None and not n_actions:
        raise ConfigError("linear policies need fixed discrete actions or per-request candidates")
