"""Attributions of one context's score to its features, with completeness checked.

An attribution splits ``score(x) - score(baseline)`` into one part per feature. Three methods, each of which
satisfies *completeness* (the parts sum to that difference) within the tolerance it reports:

- :func:`linear_attribution`: exact for an affine score ``w . x + b``: ``w_j (x_j - b_j)``. Tolerance
  ``1e-9 * max(1, |delta|)`` (only rounding separates the parts' sum from the score's own arithmetic).
- :func:`integrated_gradients` (Sundararajan, Taly & Yan, 2017): ``(x_j - b_j)`` times the mean gradient along
  the straight path from the baseline to ``x``, integrated with the trapezoid rule. Steps start at 32 and double
  (each round evaluates only the new midpoints, in one batched call) until
  ``|sum - delta| <= 1e-3 * max(1, |delta|)`` or 4096 steps; the achieved error is reported either way.
- :func:`shapley_sampling` (Castro, Gómez & Tejada, 2009; Strumbelj & Kononenko, 2010): Shapley values over the
  schema's features (a categorical's one-hot columns move together) from random permutations, each permutation
  paired with its reverse (antithetic sampling). Every permutation's marginal contributions telescope to
  ``delta``, so completeness holds exactly by construction, whatever the budget; when every permutation fits in
  the budget they are all enumerated and the values are the exact Shapley values. Model-agnostic: it only calls
  the score function, ``budget`` rows in all, in one batched call.

:func:`attribute` picks the best method a score function allows: exact, else integrated gradients, else Shapley
sampling. Any of them explains a score (``action``) or the difference of two (``action`` minus ``versus``: the
chosen action's advantage over the runner-up), which is again a linear combination of the scores.

Baselines: :func:`baseline_from_profile` (the reference profile's per-column mean, categorical one-hot columns as
category frequencies) or :func:`baseline_from_context` (a context a user chooses).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from rlops.errors import ValidationError
from rlops.explain.scores import ScoreFunction, ScoreKind, as_context_mapping, score_function, snap_to_schema
from rlops.monitoring.drift.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from rlops.policies.base import BasePolicy
from rlops.schema import Schema

#: Completeness tolerances, relative to ``max(1, |score(x) - score(baseline)|)``.
EXACT_RTOL = 1e-9
IG_RTOL = 1e-3
SHAPLEY_RTOL = 1e-9
#: Integrated gradients: first and largest number of trapezoid intervals.
IG_STEPS = 32
IG_MAX_STEPS = 4096
#: Shapley sampling: score evaluations (rows) per attribution.
DEFAULT_BUDGET = 2048


class Method(StrEnum):
    AUTO = "auto"  # exact if linear (where x and the baseline lie), else IG if differentiable, else Shapley
    EXACT = "exact"
    INTEGRATED_GRADIENTS = "integrated_gradients"
    SHAPLEY_SAMPLING = "shapley_sampling"


@dataclass(frozen=True, eq=False)
class Attribution:
    """How much each feature moved one score (or a difference of two) away from its value at the baseline.

    Attributes:
        target: what is explained: an action's name, or ``"a - b"`` for the advantage of ``a`` over ``b``.
        kind: what the scores mean.
        method: how the attributions were computed.
        features: the schema's feature names.
        feature_attributions: ``(F,)`` one per feature (the sum of its encoded columns' attributions).
        columns: the encoded columns' names.
        column_attributions: ``(d,)`` one per encoded column; ``None`` for Shapley sampling, whose players are
            features.
        x: the encoded context ``(d,)``.
        baseline: the encoded baseline ``(d,)`` (snapped to a valid context for policies that read contexts).
        value: the target at ``x``.
        baseline_value: the target at the baseline.
        completeness_error: ``|sum(feature_attributions) - (value - baseline_value)|``.
        tolerance: the bound the method promises for that error.
        steps: integrated gradients: trapezoid intervals used (0 otherwise).
        permutations: Shapley sampling: permutations averaged (0 otherwise).
        exhaustive: Shapley sampling enumerated every permutation: the values are exact Shapley values.
        standard_errors: Shapley sampling: ``(F,)`` standard error of each feature's estimate (zeros when
            exhaustive); ``None`` for the other methods.
    """

    target: str
    kind: ScoreKind
    method: Method
    features: tuple[str, ...]
    feature_attributions: np.ndarray
    columns: tuple[str, ...]
    column_attributions: np.ndarray | None
    x: np.ndarray
    baseline: np.ndarray
    value: float
    baseline_value: float
    completeness_error: float
    tolerance: float
    steps: int = 0
    permutations: int = 0
    exhaustive: bool = False
    standard_errors: np.ndarray | None = None

    @property
    def delta(self) -> float:
        """``value - baseline_value``: what the attributions split."""
        return self.value - self.baseline_value

    @property
    def complete(self) -> bool:
        """Whether completeness holds within the stated tolerance."""
        return self.completeness_error <= self.tolerance

    @property
    def by_feature(self) -> dict[str, float]:
        return dict(zip(self.features, self.feature_attributions.tolist(), strict=True))

    @property
    def by_column(self) -> dict[str, float] | None:
        if self.column_attributions is None:
            return None
        return dict(zip(self.columns, self.column_attributions.tolist(), strict=True))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: numbers as floats, per-feature and per-column attributions by name."""
        return {
            "target": self.target, "kind": self.kind.value, "method": self.method.value,
            "value": self.value, "baseline_value": self.baseline_value, "delta": self.delta,
            "sum": float(self.feature_attributions.sum()), "completeness_error": self.completeness_error,
            "tolerance": self.tolerance, "complete": self.complete,
            "features": self.by_feature, "columns": self.by_column,
            "steps": self.steps, "permutations": self.permutations, "exhaustive": self.exhaustive,
            "standard_errors": None if self.standard_errors is None
            else dict(zip(self.features, self.standard_errors.tolist(), strict=True)),
        }


# ---- shared checks -------------------------------------------------------------------------------------------------


def _vector(score_fn: ScoreFunction, value: Any, name: str) -> np.ndarray:
    if isinstance(value, Mapping):
        if score_fn.schema is None:
            raise ValidationError(name, "a raw context needs a score function built from a policy (with a schema)")
        return baseline_from_context(score_fn.schema, value, path=name)
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValidationError(name, f"expected an encoded context of {score_fn.width} numbers ({e})") from e
    if v.ndim == 2 and v.shape[0] == 1:
        v = v[0]
    if v.shape != (score_fn.width,):
        raise ValidationError(name, f"expected an encoded context of shape ({score_fn.width},), got {v.shape}")
    if not np.isfinite(v).all():
        raise ValidationError(name, "holds NaN or infinite values")
    return v


def _inputs(score_fn: ScoreFunction, x: Any, baseline: Any) -> tuple[np.ndarray, np.ndarray]:
    xv, bv = _vector(score_fn, x, "x"), _vector(score_fn, baseline, "baseline")
    if score_fn.reads_contexts and score_fn.schema is not None:
        # The policy reads contexts: every point it is asked about must be one, the baseline included.
        xv, bv = snap_to_schema(score_fn.schema, np.stack([xv, bv]))
    return xv, bv


def _target(score_fn: ScoreFunction, action: int | str, versus: int | str | None) -> tuple[np.ndarray, str]:
    """Coefficients ``c`` over the actions (the target is ``scores @ c``) and the target's label."""
    a = score_fn.index(action, "action")
    c = np.zeros(len(score_fn.actions))
    c[a] = 1.0
    if versus is None:
        return c, score_fn.actions[a]
    b = score_fn.index(versus, "versus")
    if b == a:
        raise ValidationError("versus", f"is the explained action itself ({score_fn.actions[a]!r})")
    c[b] = -1.0
    return c, f"{score_fn.actions[a]} - {score_fn.actions[b]}"


def _endpoints(score_fn: ScoreFunction, x: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    values = score_fn(np.stack([x, b])) @ c
    if not np.isfinite(values).all():
        raise ValidationError("score", "the score is not finite at x or at the baseline")
    return float(values[0]), float(values[1])


def _result(score_fn: ScoreFunction, label: str, method: Method, x: np.ndarray, b: np.ndarray, fx: float,
            fb: float, per_feature: np.ndarray, per_column: np.ndarray | None, rtol: float,
            **extra: Any) -> Attribution:
    delta = fx - fb
    error = abs(float(per_feature.sum()) - delta)
    return Attribution(target=label, kind=score_fn.kind, method=method, features=score_fn.layout.features,
                       feature_attributions=per_feature, columns=score_fn.layout.columns,
                       column_attributions=per_column, x=x, baseline=b, value=fx, baseline_value=fb,
                       completeness_error=error, tolerance=rtol * max(1.0, abs(delta)), **extra)


# ---- the three methods ---------------------------------------------------------------------------------------------


def linear_attribution(score_fn: ScoreFunction, x: Any, baseline: Any, action: int | str, *,
                       versus: int | str | None = None) -> Attribution:
    """Exact attributions of an affine score: ``w_j (x_j - b_j)`` for each encoded column ``j``.

    ``w`` is the explained action's coefficient row (for an advantage, the difference of the two rows). The
    scores at ``x`` and at the baseline come from the policy's own arithmetic, so the reported completeness error
    also checks the linear form.

    Raises:
        ValidationError: the score function is not affine, or not where ``x`` or the baseline lies (a
            standardising preprocessor clips beyond ``clip`` standard deviations).
    """
    xv, bv = _inputs(score_fn, x, baseline)
    c, label = _target(score_fn, action, versus)
    form = score_fn.linear
    if form is None:
        raise ValidationError("method", f"the {score_fn.kind.value} score is not linear in the context; use "
                                        "integrated_gradients or shapley_sampling")
    if not form.holds_at(xv, bv):
        raise ValidationError("method", "the score is linear only where the policy's preprocessing clips no "
                                        "column, and x or the baseline lies outside; use integrated_gradients")
    w = c @ form.weights
    per_column = w * (xv - bv)
    fx, fb = _endpoints(score_fn, xv, bv, c)
    return _result(score_fn, label, Method.EXACT, xv, bv, fx, fb, score_fn.layout.per_feature(per_column),
                   per_column, EXACT_RTOL)


def integrated_gradients(score_fn: ScoreFunction, x: Any, baseline: Any, action: int | str, *,
                         versus: int | str | None = None, steps: int = IG_STEPS, max_steps: int = IG_MAX_STEPS,
                         rtol: float = IG_RTOL) -> Attribution:
    """Integrated gradients along the straight path from the baseline to ``x`` (trapezoid rule, adaptive).

    Args:
        score_fn: a score function with a gradient.
        x: the encoded context ``(d,)`` (or a raw context).
        baseline: the encoded baseline ``(d,)`` (or a raw context).
        action: the explained action (index or name).
        versus: explain ``score[action] - score[versus]`` instead.
        steps: first number of intervals, >= 1 (default 32).
        max_steps: the doubling stops here (default 4096); the error reached is reported either way.
        rtol: completeness target, relative to ``max(1, |delta|)`` (default 1e-3).

    Raises:
        ValidationError: the score function has no gradient, or a setting is out of range.
    """
    if score_fn.grad is None:
        raise ValidationError("method", f"the {score_fn.kind.value} score has no gradient here; use "
                                        "shapley_sampling")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1 or max_steps < steps:
        raise ValidationError("steps", f"expected 1 <= steps <= max_steps, got {steps} and {max_steps}")
    if not rtol > 0:
        raise ValidationError("rtol", f"must be > 0, got {rtol}")
    grad = score_fn.grad
    xv, bv = _inputs(score_fn, x, baseline)
    c, label = _target(score_fn, action, versus)
    fx, fb = _endpoints(score_fn, xv, bv, c)
    diff = xv - bv
    tolerance = rtol * max(1.0, abs(fx - fb))

    def grads(t: np.ndarray) -> np.ndarray:
        g = np.asarray(grad(bv[None, :] + t[:, None] * diff[None, :], c), dtype=np.float64)
        if g.shape != (len(t), len(xv)) or not np.isfinite(g).all():
            raise ValidationError("score", "the score's gradient is not finite along the path")
        return g

    n = steps
    g = grads(np.linspace(0.0, 1.0, n + 1))
    ends, inner = (g[0] + g[-1]) / 2.0, g[1:-1].sum(axis=0)
    while True:
        per_column = diff * (ends + inner) / n
        error = abs(float(per_column.sum()) - (fx - fb))
        if error <= tolerance or 2 * n > max_steps:
            break
        inner = inner + grads((np.arange(n) + 0.5) / n).sum(axis=0)  # the new midpoints only
        n *= 2
    return _result(score_fn, label, Method.INTEGRATED_GRADIENTS, xv, bv, fx, fb,
                   score_fn.layout.per_feature(per_column), per_column, rtol, steps=n)


def shapley_sampling(score_fn: ScoreFunction, x: Any, baseline: Any, action: int | str, *,
                     versus: int | str | None = None, budget: int = DEFAULT_BUDGET, seed: int = 0) -> Attribution:
    """Shapley values over the schema's features, from antithetic permutation sampling.

    A coalition's value is the score at ``x`` with the coalition's features taken from ``x`` and every other
    feature from the baseline. Each permutation adds features one at a time from the baseline to ``x``; a
    feature's estimate is the mean of its marginal contributions. ``x`` and the baseline are scored once; each
    permutation costs ``F - 1`` rows, so ``budget // (F - 1)`` permutations are drawn (at least 2, an even number:
    each with its reverse), or every permutation when ``F! * (F - 1) <= budget`` (then the values are exact).

    Args:
        score_fn: any score function (only ``fn`` is called).
        x: the encoded context ``(d,)`` (or a raw context).
        baseline: the encoded baseline ``(d,)`` (or a raw context).
        action: the explained action (index or name).
        versus: explain ``score[action] - score[versus]`` instead.
        budget: score evaluations (rows), >= 1 (default 2048).
        seed: seed of the permutations.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValidationError("budget", f"expected a number of score evaluations >= 1, got {budget!r}")
    xv, bv = _inputs(score_fn, x, baseline)
    c, label = _target(score_fn, action, versus)
    fx, fb = _endpoints(score_fn, xv, bv, c)
    layout = score_fn.layout
    n_features = len(layout.features)
    if n_features == 1:
        return _result(score_fn, label, Method.SHAPLEY_SAMPLING, xv, bv, fx, fb, np.array([fx - fb]), None,
                       SHAPLEY_RTOL, permutations=1, exhaustive=True, standard_errors=np.zeros(1))
    interior = n_features - 1
    exhaustive = math.factorial(n_features) * interior <= budget
    if exhaustive:
        perms = np.array(list(itertools.permutations(range(n_features))), dtype=np.int64)
    else:
        half = max(1, budget // interior // 2)
        drawn = np.random.default_rng(seed).permuted(np.tile(np.arange(n_features), (half, 1)), axis=1)
        perms = np.vstack([drawn, drawn[:, ::-1]])
    m = perms.shape[0]
    rank = np.argsort(perms, axis=1)  # rank[p, f]: where feature f comes in permutation p
    on = rank[:, None, :] < np.arange(1, n_features)[None, :, None]  # (m, F-1, F): taken from x at that step
    points = np.where(on[:, :, layout.owner], xv, bv)  # (m, F-1, d)
    values = score_fn(points.reshape(-1, layout.width)) @ c
    path = np.empty((m, n_features + 1))
    path[:, 0], path[:, -1] = fb, fx
    path[:, 1:-1] = values.reshape(m, interior)
    contributions = np.zeros((m, n_features))
    contributions[np.arange(m)[:, None], perms] = np.diff(path, axis=1)
    estimate = contributions.mean(axis=0)
    if exhaustive:
        errors = np.zeros(n_features)
    else:
        pairs = (contributions[: m // 2] + contributions[m // 2:]) / 2.0  # a permutation and its reverse
        errors = pairs.std(axis=0, ddof=1) / math.sqrt(len(pairs)) if len(pairs) > 1 else np.full(n_features,
                                                                                                  np.nan)
    return _result(score_fn, label, Method.SHAPLEY_SAMPLING, xv, bv, fx, fb, estimate, None, SHAPLEY_RTOL,
                   permutations=m, exhaustive=exhaustive, standard_errors=errors)


def resolve_method(score_fn: ScoreFunction, x: np.ndarray, baseline: np.ndarray,
                   method: Method | str = Method.AUTO) -> Method:
    """The method :func:`attribute` uses: ``auto`` picks exact > integrated gradients > Shapley sampling."""
    try:
        chosen = Method(method)
    except ValueError as e:
        raise ValidationError("method", f"{method!r} is not a method (one of {[m.value for m in Method]})") from e
    if chosen is not Method.AUTO:
        return chosen
    if score_fn.linear is not None and score_fn.linear.holds_at(x, baseline):
        return Method.EXACT
    if score_fn.grad is not None:
        return Method.INTEGRATED_GRADIENTS
    return Method.SHAPLEY_SAMPLING


def attribute(target: BasePolicy | ScoreFunction, x: Any, baseline: Any, action: int | str, *,
              versus: int | str | None = None, method: Method | str = Method.AUTO,
              kind: ScoreKind | str | None = None, candidates: np.ndarray | None = None,
              budget: int = DEFAULT_BUDGET, seed: int = 0) -> Attribution:
    """Attribute a policy's (or a score function's) score of ``action`` at ``x`` relative to ``baseline``.

    Args:
        target: a policy (its :func:`~rlops.explain.scores.score_function` of ``kind`` is used) or a score function.
        x: the encoded context ``(d,)``, or a raw context.
        baseline: the encoded baseline ``(d,)``, or a raw context.
        action: the explained action (index or name).
        versus: explain the advantage ``score[action] - score[versus]`` instead.
        method: ``auto`` (default: exact > integrated gradients > Shapley sampling; integrated gradients that
            miss their tolerance at the step cap fall back to Shapley sampling), or one of them.
        kind: the score kind, for a policy (default: its first).
        candidates: a candidate action space's encoded candidates, for a policy.
        budget: Shapley sampling's score evaluations (default 2048).
        seed: Shapley sampling's seed.
    """
    score_fn = target if isinstance(target, ScoreFunction) else score_function(target, kind=kind,
                                                                               candidates=candidates)
    xv, bv = _inputs(score_fn, x, baseline)
    chosen = resolve_method(score_fn, xv, bv, method)
    if chosen is Method.EXACT:
        return linear_attribution(score_fn, xv, bv, action, versus=versus)
    if chosen is Method.INTEGRATED_GRADIENTS:
        result = integrated_gradients(score_fn, xv, bv, action, versus=versus)
        if result.complete or Method(method) is not Method.AUTO:
            return result
        # auto promises completeness: a score too rough for IG at the step cap falls back to Shapley sampling
    return shapley_sampling(score_fn, xv, bv, action, versus=versus, budget=budget, seed=seed)


# ---- baselines -----------------------------------------------------------------------------------------------------


def baseline_from_profile(profile: ReferenceProfile, schema: Schema) -> np.ndarray:
    """The reference profile's mean of every encoded column: a numeric column's mean, a categorical's category
    frequencies (its one-hot columns' means), a bool's share of ``true``.

    Raises:
        ValidationError: the profile's columns are not the schema's.
    """
    if tuple(profile.columns) != tuple(schema.column_names):
        raise ValidationError("baseline", f"the reference profile's columns {list(profile.columns)[:6]} are not the "
                                          f"schema's {list(schema.column_names)[:6]}")
    out = np.full(schema.width, np.nan)
    for f in profile.features:
        if isinstance(f, NumericProfile):
            out[f.column] = f.mean
        elif isinstance(f, CategoricalProfile):
            total = float(f.counts.sum())
            if total <= 0:
                continue
            if f.is_bool:
                out[f.columns[0]] = float(f.counts[1]) / total
            else:
                out[list(f.columns)] = f.counts / total
    missing = [schema.column_names[j] for j in np.flatnonzero(~np.isfinite(out))]
    if missing:
        raise ValidationError("baseline", f"the reference profile has no mean for columns {missing[:6]}")
    return out


def baseline_from_context(schema: Schema, context: Mapping[str, Any], path: str = "baseline") -> np.ndarray:
    """A user-chosen baseline: a raw context, validated against the schema and encoded (PII fields ignored)."""
    return schema.encode([as_context_mapping(schema, context, path)])[0]
