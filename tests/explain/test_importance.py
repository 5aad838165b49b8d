from __future__ import annotations

import json

import numpy as np
import pytest

from rlops.errors import ValidationError
from rlops.explain.importance import ImportanceMetric, feature_importance
from tests.explain.closed_form import ACTIONS, COLUMNS, SCHEMA, Counting, data, linear, weights


def _sign_of_x1(m: np.ndarray) -> np.ndarray:
    """a when x1 > 0, else b; c never. Every other feature is ignored."""
    return np.column_stack([m[:, 0], np.zeros(len(m)), np.full(len(m), -100.0)])


def test_ignored_features_score_zero_and_the_deciding_one_ranks_first() -> None:
    imp = feature_importance(_sign_of_x1, ACTIONS, SCHEMA, data(2000), n_repeats=4)
    assert imp.ranking[0] == "x1"
    x1 = imp.get("x1")
    # shuffling a symmetric x1 flips the sign of about half the rows
    assert 0.4 < x1.permutation < 0.6 and 0 < x1.permutation_std < 0.05 and x1.score_shift > 0.5
    for name in ("x2", "n", "flag", "color", "emb"):
        f = imp.get(name)
        assert (f.permutation, f.permutation_std, f.score_shift) == (0.0, 0.0, 0.0)
    assert imp.n_rows == 2000 and imp.n_repeats == 4 and not imp.has_attribution
    assert sum(imp.action_share) == pytest.approx(1.0) and imp.action_share[2] == 0.0


def test_two_score_calls_whatever_the_number_of_features() -> None:
    score = Counting(linear(*weights()))
    feature_importance(score, ACTIONS, SCHEMA, data(300), n_repeats=5)
    assert score.calls == 2 and score.rows == 300 + 300 * 6 * 5


def test_a_one_hot_group_is_shuffled_as_a_whole() -> None:
    x = data(400)

    def score(m: np.ndarray) -> np.ndarray:
        block = m[:, COLUMNS["color"]]
        assert np.array_equal(block.sum(axis=1), np.ones(len(m)))  # a shuffled row is still exactly one-hot
        return block  # the colour decides the action: red -> a, green -> b, blue -> c

    imp = feature_importance(score, ACTIONS, SCHEMA, x, n_repeats=3)
    assert imp.ranking[0] == "color"
    shares = np.bincount(np.argmax(x[:, COLUMNS["color"]], axis=1), minlength=3) / len(x)
    # a random other row has a different colour with probability 1 - sum(p_k^2)
    assert imp.get("color").permutation == pytest.approx(1 - (shares**2).sum(), abs=0.06)


def test_mean_absolute_attribution_per_feature_and_per_column() -> None:
    x = data(300)
    w, c = weights()
    score = linear(w, c)
    chosen = np.argmax(score(x), axis=1)
    per_column = w[chosen] * (x - x.mean(axis=0))  # exact attributions of a linear model, per encoded column
    groups = [slice(0, 1), slice(1, 2), slice(2, 3), slice(3, 4), COLUMNS["color"], COLUMNS["emb"]]
    per_feature = np.column_stack([per_column[:, g].sum(axis=1) for g in groups])

    def attribution(m: np.ndarray) -> np.ndarray:
        best = np.argmax(score(m), axis=1)
        cols = w[best] * (m - x.mean(axis=0))
        return np.column_stack([cols[:, g].sum(axis=1) for g in groups])

    imp = feature_importance(score, ACTIONS, SCHEMA, x, attribution=attribution)
    expected = np.abs(per_feature).mean(axis=0)
    for i, f in enumerate(SCHEMA.features):
        assert imp.get(f.name).mean_abs_attribution == pytest.approx(expected[i], abs=1e-12)
    by_column = feature_importance(score, ACTIONS, SCHEMA, x, attribution=lambda m: w[np.argmax(score(m), axis=1)]
                                   * (m - x.mean(axis=0)))
    for i, f in enumerate(SCHEMA.features):
        assert by_column.get(f.name).mean_abs_attribution == pytest.approx(expected[i], abs=1e-12)
    ranked = [f.feature for f in imp.ranked(ImportanceMetric.ATTRIBUTION)]
    assert ranked == [SCHEMA.features[i].name for i in np.argsort(-expected, kind="stable")]
    assert imp.has_attribution


def test_seeded_and_restricted_to_the_features_asked() -> None:
    x = data(500)
    score = linear(*weights())
    a = feature_importance(score, ACTIONS, SCHEMA, x, features=["x2", "x1"], sample=200, seed=5)
    b = feature_importance(score, ACTIONS, SCHEMA, x, features=["x2", "x1"], sample=200, seed=5)
    assert a == b and sorted(a.ranking) == ["x1", "x2"] and a.n_rows == 200
    c = feature_importance(score, ACTIONS, SCHEMA, x, features=["x2", "x1"], sample=200, seed=6)
    assert c.to_dict() != a.to_dict()
    assert json.loads(json.dumps(a.to_dict()))["features"][0]["feature"] == a.ranking[0]
    with pytest.raises(ValidationError, match="no attributions were computed"):
        a.ranked("attribution")


def test_errors_name_the_field() -> None:
    x = data(30)
    score = linear(*weights())
    with pytest.raises(ValidationError, match=r"features\[1\]: unknown feature 'zz'"):
        feature_importance(score, ACTIONS, SCHEMA, x, features=["x1", "zz"])
    with pytest.raises(ValidationError, match="features: expected a non-empty list of distinct"):
        feature_importance(score, ACTIONS, SCHEMA, x, features=["x1", "x1"])
    with pytest.raises(ValidationError, match=r"attribution: returned shape \(30, 2\), expected \(30, 6\)"):
        feature_importance(score, ACTIONS, SCHEMA, x, attribution=lambda m: m[:, :2])
    with pytest.raises(ValidationError, match="n_repeats: expected an integer of at least 1"):
        feature_importance(score, ACTIONS, SCHEMA, x, n_repeats=0)
    with pytest.raises(ValidationError, match="data: permutation importance needs at least 2 rows"):
        feature_importance(score, ACTIONS, SCHEMA, x[:1])
    with pytest.raises(ValidationError, match="feature: 'x9' was not assessed"):
        feature_importance(score, ACTIONS, SCHEMA, x).get("x9")
