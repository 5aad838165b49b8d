"""Partial dependence and ICE curves: how a policy's scores, and its decisions, move with one feature.

For a feature ``j`` and a grid of values ``v``, the individual conditional expectation (ICE) of row ``i`` is the
score of each action when row ``i`` keeps all its other features and ``j`` is set to ``v``; the partial dependence
(PD) is the mean of the ICE curves over the rows (Friedman 2001; Goldstein et al. 2015). Beside the scores, the
result holds the *decision share*: at each grid value, the share of rows whose best-scoring action is each action,
which is how the policy's choice, not only its scores, changes with the feature.

Everything is computed from one stacked matrix: ``n_grid`` copies of the data, each with the feature's encoded
columns overwritten by one grid value's encoding (a categorical sets its one-hot group), scored in a single call.

Example:
    >>> import numpy as np
    >>> from rlops.schema import Schema
    >>> schema = Schema.model_validate({"features": [{"name": "t", "type": "float"}],
    ...                                 "actions": {"type": "discrete", "names": ["off", "heat"]}})
    >>> score = lambda x: np.column_stack([x[:, 0], 10.0 - 4.0 * x[:, 0]])
    >>> pd = partial_dependence(score, ["off", "heat"], schema, np.array([[0.0], [1.0], [2.0]]), "t", n_grid=3)
    >>> pd.grid, pd.pd[:, 1].tolist(), pd.decision_share[:, 1].tolist()
    ([0.0, 1.0, 2.0], [10.0, 6.0, 2.0], [1.0, 1.0, 0.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlops.errors import ValidationError
from rlops.explain._batch import (
    MAX_BATCH_ROWS,
    FeatureColumns,
    ScoreCallable,
    as_matrix,
    check_actions,
    check_count,
    encode_values,
    resolve_feature,
    sample_rows,
    stacked_scores,
)
from rlops.schema import Schema

#: Feature types whose grid is a set of categories rather than points on a line.
CATEGORICAL_KINDS = frozenset({"categorical", "bool", "vector"})


@dataclass(frozen=True, eq=False)
class PartialDependence:
    """Partial dependence, ICE curves and decision shares of one feature, for every action.

    Attributes:
        feature: the feature's name (``name[i]`` for one element of a vector feature).
        kind: the feature's type: ``float``, ``int``, ``bool``, ``categorical`` or ``vector``.
        actions: action names, the order of the last axis of every array.
        grid: the raw feature values the curves are evaluated at (floats, ints, bools, category strings).
        pd: ``(n_grid, K)`` mean score of each action over the rows, at each grid value.
        ice: ``(n_grid, n_ice, K)`` score of each action for each ICE row, at each grid value.
        ice_rows: ``(n_ice,)`` indices, into the data passed in, of the rows drawn for the ICE curves.
        decision_share: ``(n_grid, K)`` share of rows whose highest score is each action (ties go to the first).
        observed: ``(n_rows,)`` the feature's encoded value in each row used (for categoricals, the index of the
            category), so a plot can show where the data lies and where a curve extrapolates.
        n_rows: number of rows averaged into ``pd`` and ``decision_share``.
        score_label: what the scores are (``score``, ``probability``, ``expected reward``), for axis labels.
    """

    feature: str
    kind: str
    actions: list[str]
    grid: list[Any]
    pd: np.ndarray
    ice: np.ndarray
    ice_rows: np.ndarray
    decision_share: np.ndarray
    observed: np.ndarray
    n_rows: int
    score_label: str = "score"

    @property
    def is_categorical(self) -> bool:
        """True when the grid is a set of categories (categorical, bool and whole-vector features)."""
        return self.kind in CATEGORICAL_KINDS

    def action_index(self, action: str) -> int:
        """Position of ``action`` on the last axis of the arrays."""
        if action not in self.actions:
            raise ValidationError("action", f"unknown action {str(action)[:64]!r} (known: {self.actions[:20]})")
        return self.actions.index(action)

    def centered_ice(self, anchor: int = 0) -> np.ndarray:
        """ICE curves shifted to start at zero at grid point ``anchor`` (c-ICE): the effect of the feature alone,
        without each row's level, so heterogeneous slopes stand out."""
        return self.ice - self.ice[anchor][None, :, :]

    def centered_pd(self, anchor: int = 0) -> np.ndarray:
        """The partial dependence shifted to zero at grid point ``anchor`` (the mean of the centered ICE curves
        when ICE covers every row)."""
        return self.pd - self.pd[anchor][None, :]

    def observed_deciles(self) -> list[float]:
        """The deciles (0%, 10%, ..., 100%) of the feature in the data, distinct, for a rug under a numeric plot;
        empty for categorical features."""
        if self.is_categorical or self.observed.size == 0:
            return []
        return [float(v) for v in np.unique(np.quantile(self.observed, np.linspace(0.0, 1.0, 11)))]

    def grid_labels(self) -> list[str]:
        """The grid values as short text (``true``/``false`` for bools)."""
        return [_label(v) for v in self.grid]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content (for the dashboard and ``report.json``)."""
        return {
            "feature": self.feature, "kind": self.kind, "actions": list(self.actions),
            "grid": list(self.grid), "pd": self.pd.tolist(), "ice": self.ice.tolist(),
            "ice_rows": self.ice_rows.tolist(), "decision_share": self.decision_share.tolist(),
            "observed_deciles": self.observed_deciles(), "n_rows": self.n_rows, "score_label": self.score_label,
        }


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        shown = ", ".join(f"{v:.3g}" for v in value[:4])
        return f"[{shown}{', …' if len(value) > 4 else ''}]"
    return str(value)


def default_grid(target: FeatureColumns, x: np.ndarray, n_grid: int) -> list[Any]:
    """Grid values for a feature: quantiles of the data for numbers (unique, inside the observed range), every
    category for categoricals, both values for bools.

    Raises:
        ValidationError: for a whole vector feature, which has no natural grid (pass ``grid`` or name one element
            as ``name[i]``).
    """
    kind = target.kind
    if kind == "bool":
        return [False, True]
    if kind == "categorical":
        return list(target.feature.vocabulary)
    if kind == "vector":
        raise ValidationError("grid", f"vector feature {target.name} has no default grid: pass grid=[...] of "
                                      f"vectors, or explain one element as feature='{target.name}[i]'")
    column = x[:, target.start]
    quantiles = np.quantile(column, np.linspace(0.0, 1.0, n_grid))
    if kind == "int":
        return [int(v) for v in np.unique(np.round(quantiles))]
    return [float(v) for v in np.unique(quantiles)]


def _observed(target: FeatureColumns, x: np.ndarray) -> np.ndarray:
    block = x[:, target.columns]
    if target.kind == "categorical":
        return np.argmax(block, axis=1).astype(np.float64)
    if target.kind == "vector":
        return np.zeros(x.shape[0])
    return block[:, 0].copy()


def partial_dependence(
    score: ScoreCallable,
    actions: Sequence[str],
    schema: Schema,
    data: Any,
    feature: str,
    grid: Sequence[Any] | None = None,
    n_grid: int = 20,
    ice: bool = True,
    sample: int | None = None,
    n_ice: int = 100,
    seed: int = 0,
    score_label: str = "score",
    max_batch_rows: int = MAX_BATCH_ROWS,
) -> PartialDependence:
    """Partial dependence and ICE curves of one feature, for every action, in one vectorised pass.

    Args:
        score: maps an encoded ``(n, schema.width)`` matrix to ``(n, K)`` scores, one column per action.
        actions: the K action names, in the score columns' order.
        schema: the schema ``data`` follows; it says which columns the feature occupies and how values encode.
        data: an encoded ``(n, schema.width)`` matrix, or raw contexts (validated and encoded here).
        feature: a schema feature name, or ``name[i]`` for element ``i`` of a vector feature.
        grid: raw values to evaluate at (each validated like a context value, so out-of-bounds values and unknown
            categories are refused). Default: see :func:`default_grid`.
        n_grid: number of quantiles for a numeric default grid (duplicates are dropped). Default 20.
        ice: keep ICE curves for up to ``n_ice`` rows. Default True; they cost no extra score calls.
        sample: average over at most this many rows, drawn with ``seed`` (default: every row).
        n_ice: at most this many ICE curves. Default 100.
        seed: seeds the row draws; the same seed and data give the same result.
        score_label: what the scores are, for plot axes.
        max_batch_rows: most rows per score call. The default fits 1,000 rows × 250 grid values in one call.

    Returns:
        A :class:`PartialDependence`.

    Raises:
        ValidationError: for an unknown feature or action list, bad data, a grid value the schema refuses, or a
            score function that does not return one finite score per row and action.
    """
    names = check_actions(actions)
    n_grid = check_count("n_grid", n_grid, 1)
    n_ice = check_count("n_ice", n_ice, 1)
    if sample is not None:
        sample = check_count("sample", sample, 1)
    x_all = as_matrix(schema, data, "data")
    target = resolve_feature(schema, feature)
    rng = np.random.default_rng(seed)
    rows = sample_rows(x_all.shape[0], sample, rng)
    x = x_all[rows]
    if grid is None:
        values = default_grid(target, x, n_grid)
    else:
        if isinstance(grid, str | bytes) or not isinstance(grid, Sequence | np.ndarray) or len(grid) == 0:
            raise ValidationError("grid", "expected a non-empty list of feature values")
        values = list(grid)
    values, encoded = encode_values(target, values)
    columns = target.columns

    def fill(b: int, block: np.ndarray) -> None:
        block[:, columns] = encoded[b]

    scores = stacked_scores(score, len(names), len(values), fill, x, max_batch_rows)  # (n_grid, n, K)
    best = np.argmax(scores, axis=2)  # (n_grid, n)
    share = np.stack([(best == k).mean(axis=1) for k in range(len(names))], axis=1)
    picked = sample_rows(x.shape[0], n_ice, rng) if ice else np.arange(0)
    return PartialDependence(
        feature=target.name, kind=target.kind, actions=names, grid=values, pd=scores.mean(axis=1),
        ice=scores[:, picked, :].copy(), ice_rows=rows[picked], decision_share=share,
        observed=_observed(target, x), n_rows=int(x.shape[0]), score_label=score_label,
    )

