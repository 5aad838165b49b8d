"""Feature importance over a dataset: which features the policy's decisions depend on.

Two measures, each per schema feature:

- **Permutation importance on action agreement** (Breiman 2001, with the decision as the target): shuffle one
  feature's encoded columns together across rows (a one-hot group or a whole vector moves as one) and count the
  share of rows whose chosen action, the highest-scoring one, changes. 0 means the decisions ignore the feature;
  0.4 means shuffling it changes 40% of decisions. Repeated ``n_repeats`` times with independent shuffles: the
  mean and the standard deviation are reported. Beside it, the mean absolute change of the originally chosen
  action's score, which still moves when one action dominates every row and no decision flips.
- **Mean absolute attribution**, when the caller supplies per-decision attributions (for example SHAP-style
  values from :mod:`rlops.explain.attributions`): the mean over rows of ``|attribution|`` of each feature.

Every shuffled copy is stacked into one matrix and scored in one call (two calls in all, with the unshuffled data).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from rlops.errors import ValidationError
from rlops.explain._batch import (
    MAX_BATCH_ROWS,
    ScoreCallable,
    as_matrix,
    call_scores,
    check_actions,
    check_count,
    feature_offsets,
    sample_rows,
    stacked_scores,
)
from rlops.schema import Schema

#: Maps an encoded ``(n, schema.width)`` matrix to per-feature attributions of the chosen action: ``(n, F)`` with
#: one column per schema feature in schema order (or ``(n, schema.width)`` per encoded column, summed per feature).
AttributionCallable = Callable[[np.ndarray], np.ndarray]


class ImportanceMetric(StrEnum):
    """What a ranking of features is ordered by."""

    PERMUTATION = "permutation"
    SCORE_SHIFT = "score_shift"
    ATTRIBUTION = "attribution"


@dataclass(frozen=True)
class FeatureImportance:
    """The importance of one schema feature.

    Attributes:
        feature: the feature's name.
        permutation: mean share of decisions that change when the feature is shuffled, in [0, 1].
        permutation_std: standard deviation of that share over the repeats.
        score_shift: mean absolute change of the originally chosen action's score when the feature is shuffled,
            in score units.
        mean_abs_attribution: mean ``|attribution|`` over rows, or ``None`` when no attribution was given.
    """

    feature: str
    permutation: float
    permutation_std: float
    score_shift: float
    mean_abs_attribution: float | None = None

    def value(self, metric: ImportanceMetric | str) -> float:
        metric = ImportanceMetric(metric)
        if metric is ImportanceMetric.PERMUTATION:
            return self.permutation
        if metric is ImportanceMetric.SCORE_SHIFT:
            return self.score_shift
        if self.mean_abs_attribution is None:
            raise ValidationError("metric", "no attributions were computed (pass attribution=...)")
        return self.mean_abs_attribution


@dataclass(frozen=True)
class Importance:
    """Feature importance over a dataset, most important first.

    Attributes:
        features: one entry per feature assessed, ranked by permutation importance, then score shift, then mean
            absolute attribution, then schema order.
        actions: the action names.
        action_share: share of rows whose chosen action (unshuffled) is each action, in ``actions`` order. When
            one action takes every row, shuffling cannot flip a decision: read ``score_shift`` instead.
        n_rows: rows the importance was computed over.
        n_repeats: shuffles per feature.
        seed: the seed of the row sample and the shuffles.
    """

    features: list[FeatureImportance]
    actions: list[str]
    action_share: list[float]
    n_rows: int
    n_repeats: int
    seed: int

    @property
    def has_attribution(self) -> bool:
        return any(f.mean_abs_attribution is not None for f in self.features)

    @property
    def ranking(self) -> list[str]:
        """Feature names, most important first."""
        return [f.feature for f in self.features]

    def ranked(self, by: ImportanceMetric | str = ImportanceMetric.PERMUTATION) -> list[FeatureImportance]:
        """The features ordered by one metric, largest first (stable: ties keep the default ranking)."""
        metric = ImportanceMetric(by)
        return sorted(self.features, key=lambda f: -f.value(metric))

    def get(self, feature: str) -> FeatureImportance:
        for f in self.features:
            if f.feature == feature:
                return f
        raise ValidationError("feature", f"{feature[:64]!r} was not assessed (assessed: {self.ranking[:20]})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content (for the dashboard and ``report.json``)."""
        return {
            "features": [
                {"feature": f.feature, "permutation": f.permutation, "permutation_std": f.permutation_std,
                 "score_shift": f.score_shift, "mean_abs_attribution": f.mean_abs_attribution}
                for f in self.features],
            "actions": list(self.actions), "action_share": list(self.action_share), "n_rows": self.n_rows,
            "n_repeats": self.n_repeats, "seed": self.seed,
        }


def _attribution_per_feature(
    attribution: AttributionCallable, x: np.ndarray, schema: Schema
) -> np.ndarray:
    try:
        values = np.asarray(attribution(x), dtype=np.float64)
    except (TypeError, ValueError) as e:
        if isinstance(e, ValidationError):
            raise
        raise ValidationError("attribution", f"the attribution function failed: {e}") from e
    n_features = len(schema.features)
    if values.ndim == 2 and values.shape == (x.shape[0], schema.width) and schema.width != n_features:
        # One attribution per encoded column: a feature's attribution is the sum over its columns (additivity).
        offsets = feature_offsets(schema)
        values = np.column_stack([values[:, a:b].sum(axis=1) for a, b in offsets.values()])
    if values.shape != (x.shape[0], n_features):
        raise ValidationError("attribution", f"returned shape {values.shape}, expected ({x.shape[0]}, "
                                             f"{n_features}): one attribution per row and schema feature")
    if not np.isfinite(values).all():
        raise ValidationError("attribution", "returned NaN or infinite attributions")
    return values


def feature_importance(
    score: ScoreCallable,
    actions: Sequence[str],
    schema: Schema,
    data: Any,
    attribution: AttributionCallable | None = None,
    features: Sequence[str] | None = None,
    n_repeats: int = 5,
    sample: int | None = None,
    seed: int = 0,
    max_batch_rows: int = MAX_BATCH_ROWS,
) -> Importance:
    """Permutation importance on action agreement, and mean absolute attribution, of schema features.

    Args:
        score: maps an encoded ``(n, schema.width)`` matrix to ``(n, K)`` scores; the chosen action is the argmax.
        actions: the K action names, in the score columns' order.
        schema: the schema ``data`` follows.
        data: an encoded ``(n, schema.width)`` matrix, or raw contexts (validated and encoded here).
        attribution: optional ``X -> (n, F)`` attributions of the chosen action per schema feature (or per encoded
            column, summed per feature); adds ``mean_abs_attribution``.
        features: the schema features to assess (default: all).
        n_repeats: shuffles per feature. Default 5.
        sample: use at most this many rows, drawn with ``seed`` (default: every row). Needs at least 2 rows.
        seed: seeds the row draw and the shuffles; the same seed and data give the same result.
        max_batch_rows: most rows per score call.

    Raises:
        ValidationError: for unknown features, bad data, or score/attribution functions returning the wrong shape
            or non-finite values.
    """
    names = check_actions(actions)
    n_repeats = check_count("n_repeats", n_repeats, 1)
    if sample is not None:
        sample = check_count("sample", sample, 2)
    x_all = as_matrix(schema, data, "data")
    offsets = feature_offsets(schema)
    chosen = list(offsets) if features is None else list(features)
    for i, name in enumerate(chosen):
        if name not in offsets:
            raise ValidationError(f"features[{i}]", f"unknown feature {str(name)[:64]!r} (known: "
                                                    f"{list(offsets)[:20]})")
    if not chosen or len(set(chosen)) != len(chosen):
        raise ValidationError("features", "expected a non-empty list of distinct feature names")
    rng = np.random.default_rng(seed)
    x = x_all[sample_rows(x_all.shape[0], sample, rng)]
    n = x.shape[0]
    if n < 2:
        raise ValidationError("data", "permutation importance needs at least 2 rows")

    base = call_scores(score, x, len(names))
    best = np.argmax(base, axis=1)
    best_score = base[np.arange(n), best]
    perms = [[rng.permutation(n) for _ in range(n_repeats)] for _ in chosen]

    def fill(b: int, block: np.ndarray) -> None:
        f, r = divmod(b, n_repeats)
        start, stop = offsets[chosen[f]]
        block[:, start:stop] = x[perms[f][r], start:stop]

    shuffled = stacked_scores(score, len(names), len(chosen) * n_repeats, fill, x, max_batch_rows)
    shuffled = shuffled.reshape(len(chosen), n_repeats, n, len(names))
    changed = (np.argmax(shuffled, axis=3) != best[None, None, :]).mean(axis=2)  # (F, repeats)
    shift = np.abs(shuffled[:, :, np.arange(n), best] - best_score[None, None, :]).mean(axis=(1, 2))  # (F,)

    attr_mean: list[float | None] = [None] * len(chosen)
    if attribution is not None:
        values = np.abs(_attribution_per_feature(attribution, x, schema)).mean(axis=0)
        position = {name: i for i, name in enumerate(offsets)}
        attr_mean = [float(values[position[name]]) for name in chosen]

    items = [
        FeatureImportance(feature=name, permutation=float(changed[i].mean()), permutation_std=float(changed[i].std()),
                          score_shift=float(shift[i]), mean_abs_attribution=attr_mean[i])
        for i, name in enumerate(chosen)
    ]
    order = sorted(range(len(items)), key=lambda i: (-items[i].permutation, -items[i].score_shift,
                                                     -(items[i].mean_abs_attribution or 0.0), i))
    share = [float((best == k).mean()) for k in range(len(names))]
    return Importance(features=[items[i] for i in order], actions=names, action_share=share, n_rows=n,
                      n_repeats=n_repeats, seed=seed)
