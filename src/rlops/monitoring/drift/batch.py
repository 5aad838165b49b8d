"""Batch drift: a window of live contexts (and actions, rewards) against a policy version's reference profile.

Compute: one pass over the window in blocks of rows locates every numeric value on its column's reference grid
(:mod:`rlops.monitoring.drift.grid`) and sums the one-hot columns of categorical features; the distances follow
from those tallies. Judge: each distance against its :class:`~rlops.monitoring.drift.config.Threshold`. Present:
the typed :class:`~rlops.monitoring.drift.results.BatchDriftReport` and its ``to_dict()``.

Numeric features get PSI and Jensen-Shannon over the reference's quantile bins, the KS statistic and the
Wasserstein distance divided by the reference's standard deviation; categorical ones PSI, Jensen-Shannon and
Cramér's V over categories.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from rlops.errors import ValidationError
from rlops.monitoring.drift.config import DomainClassifier, DriftConfig
from rlops.monitoring.drift.domain import domain_auc
from rlops.monitoring.drift.grid import CellCounts, GridLocator, ks_statistic, wasserstein
from rlops.monitoring.drift.profile import (
    CategoricalProfile,
    FeatureKind,
    NumericProfile,
    ReferenceProfile,
    action_indices,
    action_matrix,
    as_values,
    check_finite_matrix,
    encode_window,
)
from rlops.monitoring.drift.results import BatchDriftReport, DomainDrift, FeatureDrift, Metric, MetricResult
from rlops.monitoring.drift.severity import worst
from rlops.monitoring.drift.statistics import cramers_v, jensen_shannon, psi
from rlops.schema import Schema

#: Rows per block: small enough that a block's temporaries stay in cache.
_BLOCK_ROWS = 65_536


def batch_drift(profile: ReferenceProfile, live: Sequence[Mapping[str, Any]] | npt.ArrayLike, *,
                actions: npt.ArrayLike | None = None, rewards: npt.ArrayLike | None = None,
                schema: Schema | None = None, config: DriftConfig | None = None) -> BatchDriftReport:
    """Compare a live window with ``profile``.

    Args:
        profile: the policy version's reference profile.
        live: raw contexts (with ``schema``) or their encoded matrix, one row per decision.
        actions: the window's chosen actions (indices, or vectors for continuous actions), compared when the
            profile has an action distribution.
        rewards: the window's rewards, compared when the profile has a reward distribution.
        schema: needed only for raw contexts.
        config: thresholds and settings (default :class:`DriftConfig()`).

    Raises:
        ValidationError: naming the argument and the rule: wrong width, non-finite values, too few rows, actions
            or rewards of the wrong length.
    """
    config = config or DriftConfig()
    matrix = encode_window(schema, live, "live", width=len(profile.columns))
    n = matrix.shape[0]
    if n < config.min_rows:
        raise ValidationError("live", f"has {n} rows; drift needs at least {config.min_rows} (config.min_rows)")
    numeric_cols = np.array([f.column for f in profile.numeric], dtype=np.intp)
    categorical_cols = np.array([c for f in profile.categorical for c in f.columns], dtype=np.intp)
    locator = profile.locator
    tallies = locator.tallies()
    sums = np.zeros(categorical_cols.size)
    for start in range(0, n, _BLOCK_ROWS):
        block = matrix[start:start + _BLOCK_ROWS]
        check_finite_matrix(block, "live", profile.columns, start)
        if numeric_cols.size:
            locator.accumulate(block[:, numeric_cols], tallies)
        if categorical_cols.size:
            sums += block[:, categorical_cols].sum(axis=0)
    features: list[FeatureDrift] = []
    for i, numeric in enumerate(profile.numeric):
        features.append(_numeric_drift(numeric, GridLocator.cells(tallies[i]), config))
    offset = 0
    by_name = {}
    for categorical in profile.categorical:
        width = len(categorical.columns)
        counts = categorical.live_counts(sums[offset:offset + width], n)
        offset += width
        by_name[categorical.name] = _categorical_drift(categorical, counts, config)
    ordered = {f.name: f for f in features} | by_name
    feature_results = tuple(ordered[f.name] for f in profile.features)
    action_results = _action_drift(profile, actions, n, config) if actions is not None and profile.actions else ()
    reward_result = None
    if rewards is not None and profile.rewards is not None:
        reward_result = _values_drift(profile.rewards, as_values(rewards, "rewards", n), config)
    multivariate = _domain_drift(profile, matrix, config)
    everything = [*feature_results, *action_results, *([reward_result] if reward_result else [])]
    severity = worst([r.severity for r in everything] + ([multivariate.severity] if multivariate else []))
    return BatchDriftReport(features=feature_results, actions=action_results, rewards=reward_result,
                            multivariate=multivariate, severity=severity, n_live=n)


def _numeric_drift(profile: NumericProfile, cells: CellCounts, config: DriftConfig) -> FeatureDrift:
    n = cells.n
    at_edges = cells.at_or_below(profile.edge_index)
    bins = np.diff(np.concatenate(([0], at_edges, [n])))
    values = {
        Metric.PSI: psi(profile.counts, bins, config.psi_epsilon),
        Metric.KS: ks_statistic(profile.grid, profile.grid_cdf, cells),
        Metric.WASSERSTEIN: wasserstein(profile.grid, profile.grid_cdf, cells) / profile.scale,
        Metric.JENSEN_SHANNON: jensen_shannon(profile.counts, bins),
    }
    return _judged(profile.name, FeatureKind.NUMERIC, values, n, config)


def _categorical_drift(profile: CategoricalProfile, counts: npt.NDArray[np.int64], config: DriftConfig) -> FeatureDrift:
    values = {
        Metric.PSI: psi(profile.counts, counts, config.psi_epsilon),
        Metric.JENSEN_SHANNON: jensen_shannon(profile.counts, counts),
        Metric.CRAMERS_V: cramers_v(profile.counts, counts),
    }
    return _judged(profile.name, FeatureKind.CATEGORICAL, values, int(counts.sum()), config)


def _values_drift(profile: NumericProfile, values: npt.NDArray[np.float64], config: DriftConfig) -> FeatureDrift:
    """Numeric drift of a separate array (a reward, an action dimension)."""
    locator = GridLocator([profile.grid])
    tallies = locator.tallies()
    for start in range(0, values.size, _BLOCK_ROWS):
        locator.accumulate(values[start:start + _BLOCK_ROWS, None], tallies)
    return _numeric_drift(profile, GridLocator.cells(tallies[0]), config)


def _action_drift(profile: ReferenceProfile, actions: npt.ArrayLike, n: int,
                  config: DriftConfig) -> tuple[FeatureDrift, ...]:
    first = profile.actions[0]
    if isinstance(first, CategoricalProfile):
        index = action_indices(actions, len(first.categories), n)
        return (_categorical_drift(first, np.bincount(index, minlength=len(first.categories)), config),)
    matrix = action_matrix(actions, len(profile.actions), n)
    return tuple(_values_drift(p, matrix[:, d], config) for d, p in enumerate(profile.actions)
                 if isinstance(p, NumericProfile))


def _domain_drift(profile: ReferenceProfile, matrix: npt.NDArray[np.float64],
                  config: DriftConfig) -> DomainDrift | None:
    if config.domain_classifier is DomainClassifier.NONE or profile.rows is None or (
            profile.rows.shape[0] < config.domain_folds):
        return None
    rng = np.random.default_rng(config.seed)
    take = min(matrix.shape[0], config.domain_rows)
    sample = matrix[np.sort(rng.permutation(matrix.shape[0])[:take])]
    auc = domain_auc(profile.rows, sample, config.domain_classifier, config.domain_folds, config.seed)
    size = min(profile.rows.shape[0], take)
    return DomainDrift(auc=auc, severity=config.domain_auc.judge(auc), classifier=config.domain_classifier.value,
                       n_reference=size, n_live=size)


def _judged(name: str, kind: FeatureKind, values: Mapping[Metric, float], n: int, config: DriftConfig) -> FeatureDrift:
    thresholds = {Metric.PSI: config.psi, Metric.KS: config.ks, Metric.WASSERSTEIN: config.wasserstein,
                  Metric.JENSEN_SHANNON: config.jensen_shannon, Metric.CRAMERS_V: config.cramers_v}
    results = tuple(MetricResult(metric, value, thresholds[metric].judge(value)) for metric, value in values.items())
    return FeatureDrift(name=name, kind=kind, metrics=results, severity=worst(r.severity for r in results), n_live=n)
