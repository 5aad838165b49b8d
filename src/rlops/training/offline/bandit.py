"""Contextual-bandit policy learning from logged interactions: direct method, IPS and doubly robust regression.

Every method fits one ridge regression per action on the encoded context (:class:`rlops.policies.RidgeScorer`) and
serves it greedily with epsilon exploration (:class:`rlops.policies.EpsilonGreedy`), an existing kind that saves,
loads, serves and keeps learning online. They differ in the regression targets:

==========  ==========================================================================  ===========================
method      target for action ``a`` on logged row ``i`` (``p_i`` clipped up to            rows per action
            ``min_propensity``)
==========  ==========================================================================  ===========================
``dm``      ``r_i``, on the rows where ``a`` was logged                                    rows logging ``a``
``ips``     ``1{a_i = a} r_i / p_i``                                                     all ``n``
``dr``      ``q(x_i, a) + 1{a_i = a} (r_i - q(x_i, a_i)) / p_i`` with a cross-fitted     all ``n``
            reward model ``q`` (Dudik, Langford & Li 2011)
==========  ==========================================================================  ===========================

Given the context, the IPS and DR targets are unbiased for ``E[r | x, a]`` whatever the logging policy (with exact
propensities and no clipping), so a regression on them is not misled when the logging policy chose actions by
context; the direct method is, when the reward model is misspecified (``tests/training/offline`` has such a case).
DR's targets vary far less than IPS's. Clipping ``p_i`` trades a small bias for bounded targets.

**Fine-tuning** (``parent=...``): a copy of the parent policy continues learning through its own ``update``:

- ``dm``: the logged rows as they are, for any parent with ``update`` (LinUCB, linear Thompson, epsilon-greedy or
  softmax over a ridge scorer, VW, which applies its own contextual-bandit reduction with the logged propensities);
- ``ips`` / ``dr``: the pseudo-reward rows above, for parents that regress rewards with a ridge model (``linucb``,
  ``linear_thompson``, and ``epsilon_greedy`` / ``softmax`` over a ``ridge`` scorer). The ridge then counts ``n``
  pseudo-observations per action, so a UCB or Thompson parent's exploration shrinks as if every action had been
  tried on every context: fine-tune those with ``dm``.

The parent keeps its own kind and exploration settings (``epsilon`` applies to policies fitted from scratch).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import pyarrow as pa

from rlops.errors import ValidationError
from rlops.evaluation.ope import BanditData, CrossFitted, DoublyRobust, Estimate, target_probabilities
from rlops.events.join import JoinResult
from rlops.policies import BasePolicy, EpsilonGreedy, LearningBatch, PolicyInput, RidgeScorer
from rlops.policies.io import load_policy, save_policy
from rlops.schema import DiscreteActions, Schema
from rlops.training.offline.data import LoggedRows, read_logged

#: Fewest rows a bandit fit accepts (the cross-fitted reward model needs a few per fold and action).
MIN_ROWS = 20
#: Parent kinds whose ``update`` is a ridge regression of reward on context (pseudo-rewards are valid for them).
RIDGE_KINDS = frozenset({"linucb", "linear_thompson"})


class BanditMethod(StrEnum):
    """How the regression targets are built (see the module docstring)."""

    DM = "dm"
    IPS = "ips"
    DR = "dr"


@dataclass(frozen=True)
class BanditDiagnostics:
    """What a bandit fit used and what it expects of the new policy; every number is recomputable from the log.

    Attributes:
        method: the regression targets used.
        n_rows: logged rows the policy was fitted on.
        n_eval_rows: rows the estimate is computed on (the held-out rows, or the same rows when ``in_sample``).
        in_sample: the estimate is on the rows the policy was fitted on, so it is optimistic; gates should use
            fresh logs or a holdout.
        clipped: fitted rows whose propensity was raised to ``min_propensity``.
        logged_value: mean logged reward on the evaluation rows (the logging policy's on-policy value).
        logged_std_error: its standard error.
        estimate: doubly robust estimate (95% normal interval) of the new policy's value on the evaluation rows,
            or ``None`` when evaluation was skipped.
        ess: effective sample size of the importance weights ``pi_new / p`` on the evaluation rows (``nan`` when
            evaluation was skipped).
        warm_start: the parent's kind when fine-tuned, else ``None``.
    """

    method: BanditMethod
    n_rows: int
    n_eval_rows: int
    in_sample: bool
    clipped: int
    logged_value: float
    logged_std_error: float
    estimate: Estimate | None
    ess: float
    warm_start: str | None


@dataclass(frozen=True)
class BanditFit:
    """A fitted bandit policy and its diagnostics."""

    policy: BasePolicy
    diagnostics: BanditDiagnostics


def pseudo_rewards(action: np.ndarray, reward: np.ndarray, propensity: np.ndarray, n_actions: int,
                   method: BanditMethod, q_hat: np.ndarray | None = None,
                   min_propensity: float = 0.0) -> np.ndarray:
    """The ``(n, K)`` IPS or DR regression targets of the module docstring.

    Args:
        action: ``(n,)`` logged action indices.
        reward: ``(n,)`` logged rewards.
        propensity: ``(n,)`` logging probabilities of the logged actions, > 0.
        n_actions: ``K``.
        method: ``IPS`` or ``DR``.
        q_hat: ``(n, K)`` reward-model predictions, required for ``DR`` (use out-of-fold predictions).
        min_propensity: propensities below it are raised to it, default 0 (no clipping).
    """
    n = action.shape[0]
    p = np.maximum(propensity, min_propensity)
    rows = np.arange(n)
    if method is BanditMethod.IPS:
        out = np.zeros((n, n_actions))
        out[rows, action] = reward / p
        return out
    if method is BanditMethod.DR:
        if q_hat is None or q_hat.shape != (n, n_actions):
            raise ValidationError("q_hat", f"expected a ({n}, {n_actions}) array of reward predictions for DR")
        out = q_hat.copy()
        out[rows, action] += (reward - q_hat[rows, action]) / p
        return out
    raise ValidationError("method", f"pseudo-rewards exist for 'ips' and 'dr', not {method.value!r}")


def _copy(policy: BasePolicy) -> BasePolicy:
    """An independent copy through the policy's own save/load (works for every kind, keeps preprocessing)."""
    with tempfile.TemporaryDirectory(prefix="rlops-parent-") as tmp:
        return load_policy(save_policy(policy, Path(tmp) / "policy"))


def _learns_ridge(parent: BasePolicy) -> bool:
    if parent.kind in RIDGE_KINDS:
        return True
    scorer = parent.config().get("scorer")
    return isinstance(scorer, dict) and scorer.get("kind") == "ridge"


def _check_parent(parent: BasePolicy, schema: Schema, method: BanditMethod) -> None:
    if list(parent.schema.column_names) != list(schema.column_names) or parent.schema.actions != schema.actions:
        raise ValidationError("parent", f"kind {parent.kind!r} was built for another schema (features or actions "
                                        f"differ); fine-tuning needs the deployment's schema")
    if not callable(getattr(parent, "update", None)):
        raise ValidationError("parent", f"kind {parent.kind!r} has no update, so it cannot be fine-tuned; fit from "
                                        f"scratch (parent=None)")
    if method is not BanditMethod.DM and not _learns_ridge(parent):
        raise ValidationError("method", f"{method.value!r} fine-tuning feeds pseudo-rewards, which only ridge "
                                        f"learners (linucb, linear_thompson, a ridge scorer) regress correctly; use "
                                        f"method='dm' to continue kind {parent.kind!r} on the logged rows")


def _update(policy: BasePolicy, batch: LearningBatch) -> None:
    before = {k: v.copy() for k, v in policy.state().items()}
    policy.update(batch)  # type: ignore[attr-defined]  # checked by _check_parent or built with one
    after = policy.state()
    if before and all(k in after and np.array_equal(v, after[k]) for k, v in before.items()):
        raise ValidationError("parent", f"kind {policy.kind!r} did not change when updated (a fixed scorer?); it "
                                        f"cannot be fine-tuned")


def _expanded(rows: LoggedRows, targets: np.ndarray) -> LearningBatch:
    """One learning row per (logged row, action) with the pseudo-reward as its reward."""
    n, k = targets.shape
    x = np.repeat(rows.inputs.x, k, axis=0)
    contexts = [c for c in rows.inputs.contexts for _ in range(k)]
    return LearningBatch(PolicyInput(x=x, contexts=contexts), np.tile(np.arange(k, dtype=np.int64), n),
                         targets.reshape(-1), np.ones(n * k))


def _subset(rows: LoggedRows, idx: np.ndarray) -> LoggedRows:
    contexts = [rows.inputs.contexts[i] for i in idx] if rows.inputs.contexts else []
    return LoggedRows(PolicyInput(x=rows.inputs.x[idx], contexts=contexts), rows.action[idx], rows.reward[idx],
                      rows.propensity[idx])


def _q_hat(rows: LoggedRows, k: int, seed: int) -> np.ndarray:
    data = BanditData(action=rows.action, reward=rows.reward, propensity=np.minimum(rows.propensity, 1.0),
                      pi_e=np.full((rows.n, k), 1.0 / k), x=rows.inputs.x)
    return CrossFitted(seed=seed).fit_predict(data)


def _evaluate(policy: BasePolicy, rows: LoggedRows, k: int, seed: int) -> tuple[Estimate, float]:
    pi_e = target_probabilities(policy, rows.inputs, seed)
    data = BanditData(action=rows.action, reward=rows.reward, propensity=rows.propensity, pi_e=pi_e,
                      x=rows.inputs.x)
    estimate = DoublyRobust(reward_model=CrossFitted(seed=seed)).estimate(data)
    w = data.weights
    ess = float(w.sum() ** 2 / np.sum(w**2)) if np.any(w > 0) else 0.0
    return estimate, ess


def holdout_split(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row indices ``(fit, evaluate)``: a seeded ``holdout`` fraction of ``n`` rows to evaluate on, the rest
    to fit on; with ``holdout`` 0, every row for both.

    Raises:
        ValidationError: ``holdout`` outside [0, 0.9], or a split that leaves fewer than ``MIN_ROWS`` on a side.
    """
    if not 0.0 <= holdout <= 0.9:
        raise ValidationError("holdout", f"must be in [0, 0.9], got {holdout!r}")
    every = np.arange(n)
    if holdout == 0.0:
        return every, every
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(holdout * n))
    if n - n_test < MIN_ROWS or n_test < MIN_ROWS:
        raise ValidationError("holdout", f"leaves {n - n_test} rows to fit and {n_test} to evaluate; each needs at "
                                         f"least {MIN_ROWS}")
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def fit_bandit_policy(
    interactions: pa.Table | JoinResult | LoggedRows,
    schema: Schema,
    *,
    method: BanditMethod | str = BanditMethod.DR,
    epsilon: float = 0.05,
    l2: float = 1.0,
    min_propensity: float = 0.01,
    parent: BasePolicy | None = None,
    holdout: float = 0.0,
    evaluate: bool = True,
    seed: int = 0,
) -> BanditFit:
    """Fit a contextual-bandit policy from joined interactions.

    Args:
        interactions: joined interactions over fixed discrete actions (:mod:`rlops.training.offline.data`), or
            the rows :func:`~rlops.training.offline.data.read_logged` read from them with this schema.
        schema: the deployment's schema.
        method: ``"dr"`` (default), ``"ips"`` or ``"dm"``; see the module docstring.
        epsilon: exploration of the new epsilon-greedy policy, in (0, 1], default 0.05: the greedy action is logged
            with propensity ``1 - epsilon + epsilon/K`` and every other with ``epsilon/K``, so the new policy's
            logs can evaluate and train the next one. Ignored when fine-tuning (the parent keeps its own).
        l2: ridge penalty of the per-action regressions, default 1.0 (in squared encoded-feature units).
        min_propensity: IPS/DR: logged propensities below it are raised to it, bounding every target's weight by
            ``1 / min_propensity``; default 0.01.
        parent: a policy to fine-tune instead of fitting from scratch (see the module docstring); not modified.
        holdout: fraction of rows, in [0, 0.9], kept out of the fit to estimate the new policy on; default 0
            (fit on everything and estimate in-sample, which is optimistic).
        evaluate: compute the off-policy estimate and ESS, default True.
        seed: seeds the holdout split, the cross-fitting folds and the estimate; default 0.

    Returns:
        The fitted policy (``epsilon_greedy`` over a ``ridge`` scorer, or the parent's kind) and its diagnostics.

    Raises:
        ValidationError: too few rows, a missing column, a missing reward, a propensity not in (0, 1], a box or
            candidate action space, a parent that cannot be fine-tuned, or a setting out of range.

    Example:
        >>> fit = fit_bandit_policy(engine.interactions("news"), schema, method="dr")  # doctest: +SKIP
        >>> save_policy(fit.policy, "candidates/news-dr")  # doctest: +SKIP
    """
    try:
        method = BanditMethod(method)
    except ValueError as e:
        raise ValidationError("method", f"expected one of {[m.value for m in BanditMethod]}, got {method!r}") from e
    if not isinstance(schema.actions, DiscreteActions):
        raise ValidationError("schema.actions", f"bandit retraining needs fixed discrete actions, this schema's are "
                                                f"'{schema.actions.type}' (use behaviour cloning for a box)")
    if not 0.0 < epsilon <= 1.0:
        raise ValidationError("epsilon", f"must be in (0, 1] so that every action keeps a propensity > 0, got "
                                         f"{epsilon!r}")
    if not (l2 > 0 and math.isfinite(l2)):
        raise ValidationError("l2", f"must be a finite number > 0, got {l2!r}")
    if not 0.0 <= min_propensity < 1.0:
        raise ValidationError("min_propensity", f"must be in [0, 1), got {min_propensity!r}")
    if not 0.0 <= holdout <= 0.9:
        raise ValidationError("holdout", f"must be in [0, 0.9], got {holdout!r}")
    if parent is not None:
        _check_parent(parent, schema, method)
    if isinstance(interactions, LoggedRows):
        rows = interactions
        if rows.n < MIN_ROWS:
            raise ValidationError("interactions", f"{rows.n} rows are too few to fit a policy (need at least "
                                                  f"{MIN_ROWS})")
    else:
        rows = read_logged(interactions, schema, min_rows=MIN_ROWS)
    k = schema.actions.n
    train, test = rows, rows
    if holdout > 0.0:
        fit_rows, eval_rows = holdout_split(rows.n, holdout, seed)
        train, test = _subset(rows, fit_rows), _subset(rows, eval_rows)

    policy = _copy(parent) if parent is not None else EpsilonGreedy(
        schema, RidgeScorer.for_schema(schema, {"l2": l2}, {}), epsilon=epsilon)
    if method is BanditMethod.DM:
        batch = LearningBatch(train.inputs, train.action, train.reward, train.propensity)
    else:
        q_hat = _q_hat(train, k, seed) if method is BanditMethod.DR else None
        batch = _expanded(train, pseudo_rewards(train.action, train.reward, train.propensity, k, method, q_hat,
                                                min_propensity))
    _update(policy, batch)

    estimate, ess = None, math.nan
    if evaluate:
        estimate, ess = _evaluate(policy, test, k, seed)
    diagnostics = BanditDiagnostics(
        method=method, n_rows=train.n, n_eval_rows=test.n, in_sample=holdout == 0.0,
        clipped=int(np.sum(train.propensity < min_propensity)) if method is not BanditMethod.DM else 0,
        logged_value=float(test.reward.mean()),
        logged_std_error=float(test.reward.std(ddof=1) / math.sqrt(test.n)) if test.n > 1 else math.nan,
        estimate=estimate, ess=ess, warm_start=None if parent is None else parent.kind)
    return BanditFit(policy=policy, diagnostics=diagnostics)
