"""Score functions: what a policy ranks actions by, as a function of the encoded context matrix.

An explanation attributes a number to the context's features. That number is a *score*: the value the policy
computes for each action before it turns scores into a choice. :func:`score_function` builds, for every policy kind
rlops has, a :class:`ScoreFunction` mapping an encoded context matrix ``X`` of shape ``(n, schema.width)`` to scores
``(n, K)``, one column per action, together with whatever structure the attribution methods can use:

- ``linear``: the score is affine in ``X`` (``X @ W.T + b``), possibly only inside a box (a standardising
  preprocessor clips its output): exact attributions ``w_j (x_j - b_j)``;
- ``grad``: the gradient of any linear combination of the scores (a vector-Jacobian product): integrated
  gradients;
- neither: model-agnostic Shapley sampling, which only calls ``fn``.

What each policy kind offers (score kinds, the default first; then the structure):

- ``linucb``: expected_reward (linear), ucb (gradient), probability;
- ``linear_thompson``: expected_reward (linear);
- ``epsilon_greedy`` / ``softmax``: expected_reward over a ridge scorer, score over a linear scorer (both linear),
  probability;
- ``mlp``: score (greedy head: Q-values or logits) or logit (softmax head), probability; box: action_mean. The
  gradient is a float64 backward pass in numpy;
- ``sb3``: q_value (DQN), logit (PPO/A2C), probability; box: action_mean (PPO/A2C's Gaussian mean, SAC's and
  TD3/DDPG's deterministic action). The gradient comes from torch autograd;
- ``uniform``: probability (box: action_mean), linear (constant);
- ``rule``, ``vw_cb_adf``: probability (a rule's box: action_mean), model-agnostic only.

A policy behind a preprocessor (:func:`rlops.policies.preprocessed.with_preprocessing`) is composed with the
preprocessing: a linear model behind identity and standardising columns stays linear inside the box where no
column is clipped; otherwise gradients are chained through the transform's derivative.

Per-request candidates are supported for the linear and ridge models (LinUCB, linear Thompson, ridge scorers), VW
and the uniform policy, with the candidate set of the decision held fixed: pass its encoded ``(k, action_width)``
matrix as ``candidates``. Scores are then a function of the context alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from rlops.errors import ValidationError
from rlops.policies.base import BasePolicy, PolicyInput
from rlops.policies.exploration import EpsilonGreedy, Softmax
from rlops.policies.linear import LinearThompson, LinUCB
from rlops.policies.mlp import Head, MLPPolicy
from rlops.policies.preprocessed import Preprocessed
from rlops.policies.preprocessing import Preprocessor, Transform
from rlops.policies.ridge import RidgeModel
from rlops.policies.rule import RulePolicy
from rlops.policies.scorers import LinearScorer, RidgeScorer
from rlops.policies.uniform import UniformRandom
from rlops.policies.vw import VWPolicy
from rlops.schema import (
    BoolFeature,
    BoxActions,
    CandidateActions,
    CategoricalFeature,
    DiscreteActions,
    IntFeature,
    Schema,
    VectorFeature,
)

#: ``(X (n, d), c (K,)) -> (n, d)``: the gradient of ``fn(X) @ c`` with respect to each row of ``X``.
GradFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]


class ScoreKind(StrEnum):
    """What a score means."""

    EXPECTED_REWARD = "expected_reward"  # a reward model's prediction (ridge regression: theta^T [x, 1])
    UCB = "ucb"  # LinUCB's upper confidence bound: mean + alpha * standard deviation
    Q_VALUE = "q_value"  # a value network's estimate of the return (DQN)
    LOGIT = "logit"  # an actor's unnormalised log-probability (PPO/A2C, an MLP's softmax head)
    SCORE = "score"  # what a scorer or a greedy network ranks actions by (no further meaning known)
    PROBABILITY = "probability"  # the probability the policy gives each action
    ACTION_MEAN = "action_mean"  # continuous actions: the noiseless action, one score per dimension


@dataclass(frozen=True)
class FeatureLayout:
    """How encoded columns group into schema features (a categorical's one-hot columns form one feature).

    Attributes:
        columns: the encoded columns' names.
        features: the features' names.
        owner: ``(d,)`` int: the index in :attr:`features` of the feature each column belongs to.
    """

    columns: tuple[str, ...]
    features: tuple[str, ...]
    owner: np.ndarray

    @classmethod
    def of_schema(cls, schema: Schema) -> FeatureLayout:
        owner = np.concatenate([np.full(f.width, i, dtype=np.int64) for i, f in enumerate(schema.features)])
        return cls(tuple(schema.column_names), tuple(f.name for f in schema.features), owner)

    @classmethod
    def of_columns(cls, names: Sequence[str]) -> FeatureLayout:
        """One feature per column (for score functions that do not come from a schema)."""
        return cls(tuple(names), tuple(names), np.arange(len(names), dtype=np.int64))

    @property
    def width(self) -> int:
        return len(self.columns)

    def per_feature(self, per_column: np.ndarray) -> np.ndarray:
        """Sum per-column values into one value per feature."""
        return np.bincount(self.owner, weights=per_column, minlength=len(self.features))


@dataclass(frozen=True)
class LinearForm:
    """``fn(X) = X @ weights.T + bias`` for every ``X`` inside ``[lower, upper]`` (``None``: unbounded).

    Attributes:
        weights: ``(K, d)``.
        bias: ``(K,)``.
        lower: ``(d,)`` lower bounds of the region where the form holds (``-inf`` where unbounded), or ``None``.
        upper: ``(d,)`` upper bounds, or ``None``.
    """

    weights: np.ndarray
    bias: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None

    def holds_at(self, *points: np.ndarray) -> bool:
        """Whether every point lies in the region (the region is a box, so the segment between them does too)."""
        for p in points:
            if self.lower is not None and np.any(p < self.lower):
                return False
            if self.upper is not None and np.any(p > self.upper):
                return False
        return True


@dataclass(frozen=True)
class ScoreFunction:
    """Scores of every action as a function of the encoded context.

    Attributes:
        kind: what the scores mean.
        actions: the scored actions' names (fixed names, the decision's candidate ids, or ``action[i]`` for each
            dimension of a box).
        fn: ``X (n, d) -> (n, K)`` float64.
        layout: the encoded columns and the features they belong to.
        grad: ``(X, c) -> (n, d)``, the gradient of ``fn(X) @ c`` per row; ``None`` when not differentiable here.
        linear: the affine form of ``fn`` (and where it holds); ``None`` when it is not affine.
        reads_contexts: ``fn`` decodes each row back into a context (rule policies read contexts, not ``X``), so a
            baseline must be a valid context: attributions snap it with :func:`snap_to_schema`.
        schema: the policy's schema (``None`` for a score function built by hand).
        description: one line on where the scores come from.
    """

    kind: ScoreKind
    actions: list[str]
    fn: Callable[[np.ndarray], np.ndarray]
    layout: FeatureLayout
    grad: GradFunction | None = None
    linear: LinearForm | None = None
    reads_contexts: bool = False
    schema: Schema | None = field(default=None, compare=False)
    description: str = ""

    @property
    def width(self) -> int:
        return self.layout.width

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Scores ``(n, K)`` of an encoded matrix ``(n, d)`` (a single row ``(d,)`` is taken as one row)."""
        matrix = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if matrix.ndim != 2 or matrix.shape[1] != self.width:
            raise ValidationError("x", f"expected encoded contexts of shape (n, {self.width}), got {matrix.shape}")
        out = np.asarray(self.fn(matrix), dtype=np.float64)
        if out.shape != (matrix.shape[0], len(self.actions)):
            raise ValidationError("score", f"the score function returned shape {out.shape}, expected "
                                           f"({matrix.shape[0]}, {len(self.actions)})")
        return out

    def index(self, action: int | str, field_name: str = "action") -> int:
        """The column of an action given by index or by name."""
        if isinstance(action, str):
            if action not in self.actions:
                raise ValidationError(field_name, f"{action!r} is not one of the scored actions "
                                                  f"{self.actions[:10]}")
            return self.actions.index(action)
        if isinstance(action, bool) or not isinstance(action, int | np.integer) or not (
                0 <= int(action) < len(self.actions)):
            raise ValidationError(field_name, f"expected an action name or an index in [0, {len(self.actions)}), "
                                              f"got {action!r}")
        return int(action)


# ---- decoding encoded rows into contexts ---------------------------------------------------------------------------


def decode_rows(schema: Schema, x: np.ndarray) -> list[dict[str, Any]]:
    """The context each encoded row stands for (the inverse of :meth:`Schema.encode` on valid rows).

    Rows that are not encodings of a context (a mean baseline's fractional one-hots, a mean of integers) decode to
    the nearest context: the most likely category (``<other>`` for an ``unknown: other`` column), ``true`` for a
    bool at 0.5 or more, the rounded integer; floats are clipped into their bounds.
    """
    matrix = np.atleast_2d(np.asarray(x, dtype=np.float64))
    rows: list[dict[str, Any]] = [{} for _ in range(matrix.shape[0])]
    start = 0
    for feature in schema.features:
        block = matrix[:, start:start + feature.width]
        start += feature.width
        if isinstance(feature, CategoricalFeature):
            names = [*feature.vocabulary, "<other>"]
            values: list[Any] = [names[int(i)] for i in np.argmax(block, axis=1)]
        elif isinstance(feature, BoolFeature):
            values = (block[:, 0] >= 0.5).tolist()
        elif isinstance(feature, IntFeature):
            lo = -np.inf if feature.min is None else feature.min
            hi = np.inf if feature.max is None else feature.max
            values = [int(v) for v in np.clip(np.rint(block[:, 0]), lo, hi)]
        elif isinstance(feature, VectorFeature):
            lo = -np.inf if feature.min is None else feature.min
            hi = np.inf if feature.max is None else feature.max
            values = np.clip(block, lo, hi).tolist()
        else:
            lo = -np.inf if feature.min is None else feature.min
            hi = np.inf if feature.max is None else feature.max
            values = np.clip(block[:, 0], lo, hi).tolist()
        for row, value in zip(rows, values, strict=True):
            row[feature.name] = value
    return rows


def snap_to_schema(schema: Schema, x: np.ndarray) -> np.ndarray:
    """``encode(decode(x))``: the encoding of the context nearest to each row (see :func:`decode_rows`)."""
    return schema.encode(decode_rows(schema, x))


# ---- building blocks -----------------------------------------------------------------------------------------------


def _affine(weights: np.ndarray, bias: np.ndarray) -> tuple[Callable[[np.ndarray], np.ndarray], GradFunction]:
    w, b = np.array(weights, dtype=np.float64), np.array(bias, dtype=np.float64)

    def fn(x: np.ndarray) -> np.ndarray:
        return x @ w.T + b  # type: ignore[no-any-return]

    def grad(x: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.broadcast_to(c @ w, x.shape).copy()

    return fn, grad


def _probability_function(policy: BasePolicy, actions: list[str], layout: FeatureLayout,
                          candidates: np.ndarray | None, reads_contexts: bool) -> ScoreFunction:
    """The probability of each action from ``policy.act`` (deterministic given the input for every policy that
    offers it; the action drawn is ignored)."""
    schema = policy.schema

    def fn(x: np.ndarray) -> np.ndarray:
        contexts = decode_rows(schema, x) if reads_contexts else ()
        batch = PolicyInput(x=x, contexts=contexts, candidates=None if candidates is None else [candidates] * len(x))
        probs = policy.act(batch, np.random.default_rng(0)).probabilities
        if probs is None:
            raise ValidationError("kind", f"policy kind '{policy.kind}' gives no action probabilities")
        return np.vstack(probs) if isinstance(probs, list) else np.asarray(probs, dtype=np.float64)

    return ScoreFunction(ScoreKind.PROBABILITY, actions, fn, layout, reads_contexts=reads_contexts, schema=schema,
                         description=f"the probability '{policy.kind}' gives each action")


def _box_names(space: BoxActions) -> list[str]:
    return [f"action[{i}]" for i in range(space.dim)]


# ---- linear and ridge models ---------------------------------------------------------------------------------------


def _ridge_linear(theta: np.ndarray, width: int, candidates: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(W, b)`` of a ridge model's mean: disjoint ``theta (K, d+1)``, or shared ``theta (1, (d+1)(da+1))`` with
    the candidates fixed (``kron([1, x], [1, a]) . theta = [1, x] M [1, a]``, ``M = theta.reshape(d+1, da+1)``)."""
    if candidates is None:
        return theta[:, :width].copy(), theta[:, width].copy()
    ca = np.hstack([np.ones((candidates.shape[0], 1)), candidates])
    g = theta[0].reshape(width + 1, ca.shape[1]) @ ca.T  # (d+1, k)
    return g[1:].T.copy(), g[0].copy()


def _joint_phi(x: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """:func:`rlops.policies.ridge.joint_features` of every row at once: ``(n, k, (d+1)(da+1))``."""
    xa = np.hstack([np.ones((x.shape[0], 1)), x])
    ca = np.hstack([np.ones((candidates.shape[0], 1)), candidates])
    return (ca[None, :, None, :] * xa[:, None, :, None]).reshape(x.shape[0], ca.shape[0], -1)


def _ridge_mean_fn(theta: np.ndarray, candidates: np.ndarray | None) -> Callable[[np.ndarray], np.ndarray]:
    """The model's own arithmetic for its mean (features times theta, not the linear form), so that completeness
    checks the form."""

    def fn(x: np.ndarray) -> np.ndarray:
        if candidates is None:
            return RidgeModel.disjoint_phi(x) @ theta.T  # type: ignore[no-any-return]
        return _joint_phi(x, candidates) @ theta[0]  # type: ignore[no-any-return]

    return fn


def _ucb_function(theta: np.ndarray, a_inv: np.ndarray, alpha: float, width: int,
                  candidates: np.ndarray | None) -> tuple[Callable[[np.ndarray], np.ndarray], GradFunction]:
    """LinUCB's ``mean + alpha * sqrt(phi^T A^-1 phi)`` and its gradient in ``x``."""
    if candidates is None:
        def moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            phi = RidgeModel.disjoint_phi(x)
            v = np.einsum("kde,ne->nkd", a_inv, phi)  # A_k^-1 phi, (n, K, d+1)
            var = np.maximum(np.einsum("nkd,nd->nk", v, phi), 1e-300)
            return phi @ theta.T, var, v

        def fn(x: np.ndarray) -> np.ndarray:
            mean, var, _ = moments(x)
            return mean + alpha * np.sqrt(var)  # type: ignore[no-any-return]

        def grad(x: np.ndarray, c: np.ndarray) -> np.ndarray:
            _, var, v = moments(x)
            # d sqrt(phi A phi) / dx = (A phi)[:d] / sqrt(var)  (A^-1 symmetric)
            per_action = theta[None, :, :width] + alpha * v[:, :, :width] / np.sqrt(var)[:, :, None]
            return np.einsum("k,nkd->nd", c, per_action)  # type: ignore[no-any-return]

        return fn, grad

    ca = np.hstack([np.ones((candidates.shape[0], 1)), candidates])  # (k, da+1)
    m = theta[0].reshape(width + 1, ca.shape[1])
    inv = a_inv[0]

    def shared(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        phi = _joint_phi(x, candidates)  # (n, k, D)
        v = phi @ inv  # (n, k, D), A^-1 symmetric
        var = np.maximum(np.einsum("nkD,nkD->nk", v, phi), 1e-300)
        return phi @ theta[0], var, v

    def fn_shared(x: np.ndarray) -> np.ndarray:
        mean, var, _ = shared(x)
        return mean + alpha * np.sqrt(var)  # type: ignore[no-any-return]

    def grad_shared(x: np.ndarray, c: np.ndarray) -> np.ndarray:
        _, var, v = shared(x)
        n, k = var.shape
        # d var / d xa = 2 (A^-1 phi) reshaped (d+1, da+1) times [1, a]; d sqrt(var) = d var / (2 sqrt(var))
        dvar = np.einsum("nkij,kj->nki", v.reshape(n, k, width + 1, ca.shape[1]), ca)  # half of d var / d xa
        per_action = (m @ ca.T).T[None, :, :] + alpha * dvar / np.sqrt(var)[:, :, None]  # (n, k, d+1)
        return np.einsum("k,nki->ni", c, per_action)[:, 1:]  # type: ignore[no-any-return]

    return fn_shared, grad_shared


def _ridge_scores(policy: BasePolicy, model: RidgeModel, kind: ScoreKind, actions: list[str], layout: FeatureLayout,
                  candidates: np.ndarray | None, description: str) -> ScoreFunction:
    theta = model.theta.copy()  # a snapshot: an online learner may update the live model meanwhile
    weights, bias = _ridge_linear(theta, layout.width, candidates)
    _, grad = _affine(weights, bias)
    return ScoreFunction(kind, actions, _ridge_mean_fn(theta, candidates), layout, grad=grad,
                         linear=LinearForm(weights, bias), schema=policy.schema, description=description)


def _linear_bandit(policy: LinUCB | LinearThompson, chosen: ScoreKind, actions: list[str],
                   layout: FeatureLayout, candidates: np.ndarray | None) -> ScoreFunction:
    if chosen is ScoreKind.EXPECTED_REWARD:
        return _ridge_scores(policy, policy.model, chosen, actions, layout, candidates,
                             "the ridge model's posterior mean reward theta^T [x, 1]")
    if chosen is ScoreKind.PROBABILITY:
        return _probability_function(policy, actions, layout, candidates, reads_contexts=False)
    assert isinstance(policy, LinUCB)
    fn, grad = _ucb_function(policy.model.theta.copy(), policy.model.A_inv.copy(), policy.alpha, layout.width,
                             candidates)
    return ScoreFunction(chosen, actions, fn, layout, grad=grad, schema=policy.schema,
                         description=f"the upper confidence bound mean + {policy.alpha:g} * std")


def _scorer_policy(policy: EpsilonGreedy | Softmax, chosen: ScoreKind, actions: list[str],
                   layout: FeatureLayout, candidates: np.ndarray | None) -> ScoreFunction:
    scorer = policy.scorer
    if chosen is ScoreKind.PROBABILITY:
        return _probability_function(policy, actions, layout, candidates, reads_contexts=False)
    if isinstance(scorer, RidgeScorer):
        return _ridge_scores(policy, scorer.model, chosen, actions, layout, candidates,
                             "the ridge scorer's predicted reward theta^T [x, 1]")
    if isinstance(scorer, LinearScorer):
        if candidates is not None:
            raise ValidationError("candidates", "the linear scorer has fixed discrete actions, not candidates")
        weights, bias = scorer.weights.copy(), scorer.bias.copy()

        def linear_fn(x: np.ndarray) -> np.ndarray:
            return np.asarray(scorer.scores(PolicyInput(x=x)), dtype=np.float64)

        _, grad = _affine(weights, bias)
        return ScoreFunction(chosen, actions, linear_fn, layout, grad=grad, linear=LinearForm(weights, bias),
                             schema=policy.schema, description="the linear scorer's x @ weights.T + bias")

    def other_fn(x: np.ndarray) -> np.ndarray:  # a scorer kind added later: model-agnostic
        batch = PolicyInput(x=x, candidates=None if candidates is None else [candidates] * len(x))
        scores = scorer.scores(batch)
        return np.vstack(scores) if isinstance(scores, list) else np.asarray(scores, dtype=np.float64)

    return ScoreFunction(chosen, actions, other_fn, layout, schema=policy.schema,
                         description=f"the '{scorer.kind}' scorer's scores")


# ---- networks ------------------------------------------------------------------------------------------------------


def _mlp(policy: MLPPolicy, chosen: ScoreKind, actions: list[str], layout: FeatureLayout) -> ScoreFunction:
    space = policy.schema.actions
    box = isinstance(space, BoxActions)
    if chosen is ScoreKind.PROBABILITY:
        return _probability_function(policy, actions, layout, None, reads_contexts=False)
    weights = [w.copy() for w in policy.weights]
    biases = [b.copy() for b in policy.biases]
    x_mean, x_scale = policy.x_mean.copy(), policy.x_scale.copy()
    low = np.asarray(space.low if isinstance(space, BoxActions) else [0.0], dtype=np.float64)
    high = np.asarray(space.high if isinstance(space, BoxActions) else [0.0], dtype=np.float64)

    def forward(x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        h = (x - x_mean) / x_scale
        pre: list[np.ndarray] = []
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            z = h @ w.T + b
            if i < len(weights) - 1:
                pre.append(z)
                h = np.maximum(z, 0.0)
            else:
                h = z
        return h, pre

    def fn(x: np.ndarray) -> np.ndarray:
        return policy.mean_action(x) if box else policy.outputs(x)

    def grad(x: np.ndarray, c: np.ndarray) -> np.ndarray:
        out, pre = forward(x)
        g = np.broadcast_to(c, out.shape).astype(np.float64)
        if box:
            g = g * (1.0 - np.tanh(out) ** 2) * (high - low) / 2.0
        for i in range(len(weights) - 1, -1, -1):
            g = g @ weights[i]
            if i > 0:
                g = g * (pre[i - 1] > 0.0)
        return g / x_scale  # type: ignore[no-any-return]

    meaning = {ScoreKind.ACTION_MEAN: "the network's noiseless action low + (tanh(out) + 1) (high - low) / 2",
               ScoreKind.LOGIT: "the network's outputs (logits of its softmax head)",
               ScoreKind.SCORE: "the network's outputs its greedy head ranks actions by (Q-values or logits)"}
    return ScoreFunction(chosen, actions, fn, layout, grad=grad, schema=policy.schema, description=meaning[chosen])


def _sb3(policy: Any, chosen: ScoreKind, actions: list[str], layout: FeatureLayout) -> ScoreFunction:
    import torch
    from stable_baselines3.common.preprocessing import preprocess_obs

    model = policy.model
    algo = policy.algo
    space = policy.schema.actions
    obs_shape = tuple(int(d) for d in model.observation_space.shape)
    if chosen is ScoreKind.PROBABILITY:
        return _probability_function(policy, actions, layout, None, reads_contexts=False)
    low = torch.as_tensor(np.asarray(space.low if isinstance(space, BoxActions) else [0.0]), dtype=torch.float32)
    high = torch.as_tensor(np.asarray(space.high if isinstance(space, BoxActions) else [0.0]), dtype=torch.float32)

    def forward(obs: Any) -> Any:
        n = obs.shape[0]
        if algo == "DQN":
            return model.q_net(obs)
        if algo in ("PPO", "A2C"):
            net = model.policy
            features = net.pi_features_extractor(preprocess_obs(obs, net.observation_space,
                                                                normalize_images=net.normalize_images))
            return net.action_net(net.mlp_extractor.forward_actor(features)).reshape(n, -1)  # logits or the mean
        if algo == "SAC":
            mean, _, _ = model.actor.get_action_dist_params(obs)
            return low + (torch.tanh(mean.reshape(n, -1)) + 1.0) * (high - low) / 2.0
        return low + (model.actor(obs).reshape(n, -1) + 1.0) * (high - low) / 2.0  # TD3 / DDPG: tanh-squashed

    def tensor(x: np.ndarray, requires_grad: bool) -> Any:
        obs = torch.as_tensor(x.astype(np.float32).reshape((x.shape[0], *obs_shape)), device=model.device)
        return obs.requires_grad_(requires_grad)

    def fn(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return forward(tensor(x, False)).cpu().numpy().astype(np.float64)  # type: ignore[no-any-return]

    def grad(x: np.ndarray, c: np.ndarray) -> np.ndarray:
        obs = tensor(x, True)
        with torch.enable_grad():
            out = forward(obs)
            weights = torch.as_tensor(c, dtype=out.dtype, device=out.device)
            # autograd.grad, not backward(): nothing is accumulated into the model's parameters' .grad
            (g,) = torch.autograd.grad((out * weights).sum(), obs)
        return g.reshape(x.shape[0], -1).cpu().numpy().astype(np.float64)  # type: ignore[no-any-return]

    meaning = {ScoreKind.Q_VALUE: "DQN's Q-values", ScoreKind.LOGIT: f"{algo}'s action logits (before the softmax)",
               ScoreKind.ACTION_MEAN: f"{algo}'s mean action (PPO/A2C: the Gaussian's mean before clipping)"}
    return ScoreFunction(chosen, actions, fn, layout, grad=grad, schema=policy.schema, description=meaning[chosen])


# ---- preprocessing -------------------------------------------------------------------------------------------------


def _transform_parts(pre: Preprocessor) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(affine, shift, scale, lower, upper)``: whether every column is identity or standardise, and the affine
    map ``(x - shift) / scale`` with the box where no column is clipped."""
    d = pre.width
    shift, scale = np.zeros(d), np.ones(d)
    lower, upper = np.full(d, -np.inf), np.full(d, np.inf)
    affine = True
    for j, c in enumerate(pre.columns):
        if c.transform is Transform.IDENTITY:
            continue
        if c.transform is Transform.BOXCOX:
            affine = False
            continue
        shift[j], scale[j] = c.mean, c.std
        if pre.clip is not None:
            lower[j], upper[j] = c.mean - pre.clip * c.std, c.mean + pre.clip * c.std
    return affine, shift, scale, lower, upper


def _transform_derivative(pre: Preprocessor, x: np.ndarray) -> np.ndarray:
    """``d transform(x)_j / d x_j`` for each entry (the transform acts column by column); 0 where clipped."""
    out = np.ones_like(x)
    for j, c in enumerate(pre.columns):
        if c.transform is Transform.IDENTITY:
            continue
        col = x[:, j]
        if c.transform is Transform.BOXCOX:
            raised = np.maximum(col, c.floor)
            inner = raised ** (c.lmbda - 1.0) if c.lmbda != 0.0 else 1.0 / raised
            deriv = np.where(col > c.floor, inner, 0.0) / c.std
            y = ((np.log(raised) if c.lmbda == 0.0 else (raised**c.lmbda - 1.0) / c.lmbda) - c.mean) / c.std
        else:
            deriv = np.full(col.shape, 1.0 / c.std)
            y = (col - c.mean) / c.std
        if pre.clip is not None:
            deriv = np.where(np.abs(y) < pre.clip, deriv, 0.0)
        out[:, j] = deriv
    return out


def _preprocessed(policy: Preprocessed, inner: ScoreFunction) -> ScoreFunction:
    if inner.reads_contexts:
        return inner  # the inner policy reads contexts, which preprocessing leaves alone
    pre = policy.preprocessor
    inner_fn, inner_grad = inner.fn, inner.grad

    def fn(x: np.ndarray) -> np.ndarray:
        return inner_fn(pre.transform(x))

    grad: GradFunction | None = None
    if inner_grad is not None:
        def chained(x: np.ndarray, c: np.ndarray) -> np.ndarray:
            return inner_grad(pre.transform(x), c) * _transform_derivative(pre, x)

        grad = chained
    linear = None
    affine, shift, scale, lower, upper = _transform_parts(pre)
    if inner.linear is not None and affine and inner.linear.lower is None and inner.linear.upper is None:
        w = inner.linear.weights / scale
        linear = LinearForm(w, inner.linear.bias - w @ shift, lower, upper)
    return ScoreFunction(inner.kind, inner.actions, fn, inner.layout, grad=grad, linear=linear,
                         reads_contexts=False, schema=policy.schema,
                         description=f"{inner.description}, after the policy's preprocessing")


# ---- the entry point -----------------------------------------------------------------------------------------------


def _actions(schema: Schema, candidates: np.ndarray | None, candidate_ids: Sequence[str] | None) -> list[str]:
    space = schema.actions
    if isinstance(space, DiscreteActions):
        if candidates is not None:
            raise ValidationError("candidates", "this schema has fixed discrete actions, not per-request candidates")
        return list(space.names)
    if isinstance(space, BoxActions):
        return _box_names(space)
    if candidates is None:
        raise ValidationError("candidates", "a candidate action space is scored with the decision's candidate set "
                                            "held fixed: pass its encoded (k, action_width) matrix")
    if candidates.ndim != 2 or candidates.shape[0] < 1 or candidates.shape[1] != space.width:
        raise ValidationError("candidates", f"expected shape (k >= 1, {space.width}), got {candidates.shape}")
    if candidate_ids is not None and len(candidate_ids) != candidates.shape[0]:
        raise ValidationError("candidate_ids", f"{len(candidate_ids)} ids for {candidates.shape[0]} candidates")
    return list(candidate_ids) if candidate_ids is not None else [f"candidate[{i}]" for i in range(len(candidates))]


def score_kinds(policy: BasePolicy) -> list[ScoreKind]:
    """The score kinds :func:`score_function` offers for ``policy``, the default first."""
    target = policy.inner if isinstance(policy, Preprocessed) else policy
    box = isinstance(target.schema.actions, BoxActions)
    if isinstance(target, LinUCB):
        return [ScoreKind.EXPECTED_REWARD, ScoreKind.UCB, ScoreKind.PROBABILITY]
    if isinstance(target, LinearThompson):
        return [ScoreKind.EXPECTED_REWARD]
    if isinstance(target, EpsilonGreedy | Softmax):
        main = ScoreKind.EXPECTED_REWARD if isinstance(target.scorer, RidgeScorer) else ScoreKind.SCORE
        return [main, ScoreKind.PROBABILITY]
    if isinstance(target, MLPPolicy):
        if box:
            return [ScoreKind.ACTION_MEAN]
        return [ScoreKind.LOGIT if target.head is Head.SOFTMAX else ScoreKind.SCORE, ScoreKind.PROBABILITY]
    if target.kind == "sb3":
        if box:
            return [ScoreKind.ACTION_MEAN]
        return [ScoreKind.Q_VALUE if getattr(target, "algo", "") == "DQN" else ScoreKind.LOGIT,
                ScoreKind.PROBABILITY]
    return [ScoreKind.ACTION_MEAN if box else ScoreKind.PROBABILITY]


def score_function(policy: BasePolicy, *, kind: ScoreKind | str | None = None, candidates: np.ndarray | None = None,
                   candidate_ids: Sequence[str] | None = None) -> ScoreFunction:
    """The score function of a policy (see the module docstring for what each kind offers).

    Learned state is copied when the function is built: later online updates of the policy do not change it.

    Args:
        policy: any rlops policy (a preprocessed one included).
        kind: which score (default: the first of :func:`score_kinds`).
        candidates: candidate action spaces: the decision's encoded candidates ``(k, action_width)``, held fixed.
        candidate_ids: their ids (the scored actions' names; default ``candidate[i]``).

    Raises:
        ValidationError: a kind the policy does not offer, candidates missing for (or given to) a schema, or a
            policy that cannot be scored with a candidate set (MLP and SB3 have fixed actions).
    """
    if kind is not None:
        try:
            kind = ScoreKind(kind)
        except ValueError as e:
            raise ValidationError("kind", f"{kind!r} is not a score kind (one of "
                                          f"{[k.value for k in ScoreKind]})") from e
    schema = policy.schema
    actions = _actions(schema, None if candidates is None else np.asarray(candidates, dtype=np.float64),
                       candidate_ids)
    cands = None if candidates is None else np.asarray(candidates, dtype=np.float64)
    layout = FeatureLayout.of_schema(schema)
    if isinstance(policy, Preprocessed):
        if kind is ScoreKind.PROBABILITY:  # the wrapper acts on raw features itself
            return _probability_function(policy, actions, layout, cands,
                                         reads_contexts=isinstance(policy.inner, RulePolicy))
        return _preprocessed(policy, score_function(policy.inner, kind=kind, candidates=cands,
                                                    candidate_ids=candidate_ids))
    offered = score_kinds(policy)
    chosen = kind or offered[0]
    if chosen not in offered:
        raise ValidationError("kind", f"policy kind '{policy.kind}' has no '{chosen.value}' score; it offers "
                                      f"{[k.value for k in offered]}")
    if isinstance(policy, LinUCB | LinearThompson):
        return _linear_bandit(policy, chosen, actions, layout, cands)
    if isinstance(policy, EpsilonGreedy | Softmax):
        return _scorer_policy(policy, chosen, actions, layout, cands)
    if isinstance(policy, MLPPolicy):
        return _mlp(policy, chosen, actions, layout)
    if policy.kind == "sb3":
        return _sb3(policy, chosen, actions, layout)
    space = schema.actions
    if isinstance(policy, UniformRandom):
        k = len(actions)
        constant = ((np.asarray(space.low) + np.asarray(space.high)) / 2.0 if isinstance(space, BoxActions)
                    else np.full(k, 1.0 / k))
        zeros = np.zeros((k, layout.width))
        fn, grad = _affine(zeros, constant)
        return ScoreFunction(chosen, actions, fn, layout, grad=grad, linear=LinearForm(zeros, constant),
                             schema=schema, description="uniform: the same for every context")
    if isinstance(schema.actions, CandidateActions) and not isinstance(policy, VWPolicy):
        raise ValidationError("candidates", f"policy kind '{policy.kind}' cannot be scored over a candidate set")
    reads_contexts = not isinstance(policy, VWPolicy)  # rules (and kinds unknown here) may read the context
    if chosen is ScoreKind.ACTION_MEAN:
        if not isinstance(policy, RulePolicy):
            raise ValidationError("kind", f"policy kind '{policy.kind}' samples box actions; it has no "
                                          "deterministic action to explain")

        def action_fn(x: np.ndarray) -> np.ndarray:
            batch = PolicyInput(x=x, contexts=decode_rows(schema, x))
            return np.asarray(policy.act(batch, np.random.default_rng(0)).action, dtype=np.float64)

        return ScoreFunction(chosen, actions, action_fn, layout, reads_contexts=True, schema=schema,
                             description="the rule's action")
    return _probability_function(policy, actions, layout, cands, reads_contexts)


def as_context_mapping(schema: Schema, context: Mapping[str, Any], path: str = "context") -> dict[str, Any]:
    """A raw context validated against ``schema``, keeping only its features (PII fields are not features: they
    are dropped, as are fields the schema does not know)."""
    if not isinstance(context, Mapping):
        raise ValidationError(path, f"expected an object of features, got {type(context).__name__}")
    names = {f.name for f in schema.features}
    features_only = {k: v for k, v in context.items() if k in names or k not in schema.pii}
    valid = schema.validate_context(features_only, path)
    return {k: v for k, v in valid.items() if k in names}
