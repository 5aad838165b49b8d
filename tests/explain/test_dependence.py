from __future__ import annotations

import numpy as np
import pytest

from rlops.errors import ValidationError
from rlops.explain.dependence import partial_dependence
from tests.explain.closed_form import ACTIONS, COLUMNS, SCHEMA, Counting, contexts, data, linear, weights


def _pd_linear_closed_form(x: np.ndarray, w: np.ndarray, c: np.ndarray, columns: slice | int,
                           encoded_grid: np.ndarray) -> np.ndarray:
    """PD of a linear policy: the grid value's encoding times its weights, plus the mean of everything else."""
    others = x.copy()
    others[:, columns] = 0.0
    rest = (others @ w.T).mean(axis=0) + c  # (K,)
    cols = np.atleast_2d(w[:, columns].T).reshape(encoded_grid.shape[1], -1)  # (width, K)
    return encoded_grid @ cols + rest


def test_linear_policy_pd_and_ice_match_the_closed_form() -> None:
    x = data(300)
    w, c = weights()
    pd = partial_dependence(linear(w, c), ACTIONS, SCHEMA, x, "x1", n_grid=15, n_ice=40)
    grid = np.array(pd.grid)
    expected = _pd_linear_closed_form(x, w, c, slice(0, 1), grid[:, None])
    np.testing.assert_allclose(pd.pd, expected, rtol=0, atol=1e-12)
    # every ICE line is w_a1 * v plus that row's own constant
    for r, row in enumerate(pd.ice_rows):
        rest = x[row] @ w.T + c - x[row, 0] * w[:, 0]
        np.testing.assert_allclose(pd.ice[:, r, :], grid[:, None] * w[:, 0] + rest, rtol=0, atol=1e-12)
    assert pd.ice.shape == (len(pd.grid), 40, 3) and pd.pd.shape == (len(pd.grid), 3)
    assert pd.kind == "float" and pd.n_rows == 300 and pd.actions == ACTIONS


def test_numeric_grid_is_unique_quantiles_inside_the_data() -> None:
    x = data(200)
    pd = partial_dependence(linear(*weights()), ACTIONS, SCHEMA, x, "x2", n_grid=20)
    assert pd.grid == sorted(set(pd.grid)) and len(pd.grid) == 20
    assert pd.grid[0] == x[:, 1].min() and pd.grid[-1] == x[:, 1].max()
    np.testing.assert_allclose(pd.grid[10], np.quantile(x[:, 1], 10 / 19))


def test_int_grid_is_integers_and_bool_grid_is_both_values() -> None:
    x = data(200)
    pd = partial_dependence(linear(*weights()), ACTIONS, SCHEMA, x, "n", n_grid=50)
    assert all(type(v) is int for v in pd.grid) and pd.grid == sorted(set(pd.grid))
    assert pd.grid[0] == x[:, 2].min() and pd.grid[-1] == x[:, 2].max() and len(pd.grid) <= 20
    flag = partial_dependence(linear(*weights()), ACTIONS, SCHEMA, x, "flag")
    assert flag.grid == [False, True] and flag.is_categorical and flag.grid_labels() == ["false", "true"]


def test_categorical_pd_sets_the_whole_one_hot_group() -> None:
    x = data(250)
    w, c = weights()
    seen: list[np.ndarray] = []

    def score(m: np.ndarray) -> np.ndarray:
        seen.append(m[:, COLUMNS["color"]].copy())
        return linear(w, c)(m)

    pd = partial_dependence(score, ACTIONS, SCHEMA, x, "color")
    assert pd.grid == ["red", "green", "blue"] and pd.kind == "categorical"
    np.testing.assert_allclose(pd.pd, _pd_linear_closed_form(x, w, c, COLUMNS["color"], np.eye(3)), atol=1e-12)
    block = seen[0].reshape(3, 250, 3)
    for i in range(3):  # grid value i: every row is exactly one-hot on category i
        np.testing.assert_array_equal(block[i], np.tile(np.eye(3)[i], (250, 1)))


def test_interaction_ice_slopes_are_each_rows_x2_and_pd_slope_is_their_mean() -> None:
    x = data(120)

    def score(m: np.ndarray) -> np.ndarray:
        return np.column_stack([m[:, 0] * m[:, 1], np.zeros(len(m)), np.ones(len(m))])

    pd = partial_dependence(score, ACTIONS, SCHEMA, x, "x1", n_grid=10, n_ice=1000)
    assert pd.ice.shape[1] == 120 and sorted(pd.ice_rows.tolist()) == list(range(120))
    grid = np.array(pd.grid)
    slopes = np.diff(pd.ice[:, :, 0], axis=0) / np.diff(grid)[:, None]  # (n_grid - 1, rows)
    np.testing.assert_allclose(slopes, np.tile(x[pd.ice_rows, 1], (len(grid) - 1, 1)), rtol=1e-9, atol=1e-9)
    pd_slope = np.diff(pd.pd[:, 0]) / np.diff(grid)
    np.testing.assert_allclose(pd_slope, x[:, 1].mean(), rtol=1e-9, atol=1e-9)
    centered = pd.centered_ice()
    np.testing.assert_array_equal(centered[0], 0.0)
    np.testing.assert_allclose(centered[-1, :, 0], (grid[-1] - grid[0]) * x[pd.ice_rows, 1], atol=1e-9)
    np.testing.assert_allclose(pd.centered_pd()[:, 0], centered[:, :, 0].mean(axis=1), atol=1e-12)


def test_decision_share_follows_the_argmax() -> None:
    x = data(100)

    def score(m: np.ndarray) -> np.ndarray:  # a when x1 > 0.5, else b; c never
        return np.column_stack([m[:, 0], np.full(len(m), 0.5), np.full(len(m), -1.0)])

    pd = partial_dependence(score, ACTIONS, SCHEMA, x, "x1", grid=[-1.0, 0.0, 0.4, 0.6, 2.0])
    np.testing.assert_array_equal(pd.decision_share, [[0, 1, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0], [1, 0, 0]])


def test_one_score_call_per_partial_dependence() -> None:
    x = data(500)
    score = Counting(linear(*weights()))
    pd = partial_dependence(score, ACTIONS, SCHEMA, x, "x1", n_grid=20)
    assert score.calls == 1 and score.rows == 500 * len(pd.grid)
    chunked = Counting(linear(*weights()))
    again = partial_dependence(chunked, ACTIONS, SCHEMA, x, "x1", n_grid=20, max_batch_rows=2000)
    assert chunked.calls == 5  # four grid values (2,000 rows) per call
    np.testing.assert_allclose(again.pd, pd.pd, atol=1e-12)
    np.testing.assert_array_equal(again.ice, pd.ice)


def test_vector_features_by_element_or_explicit_grid() -> None:
    x = data(80)
    w, c = weights()
    with pytest.raises(ValidationError, match=r"grid: vector feature emb has no default grid.*emb\[i\]"):
        partial_dependence(linear(w, c), ACTIONS, SCHEMA, x, "emb")
    element = partial_dependence(linear(w, c), ACTIONS, SCHEMA, x, "emb[1]", n_grid=5)
    assert element.kind == "float" and element.feature == "emb[1]"
    np.testing.assert_allclose(element.pd, _pd_linear_closed_form(x, w, c, slice(8, 9),
                                                                  np.array(element.grid)[:, None]), atol=1e-12)
    whole = partial_dependence(linear(w, c), ACTIONS, SCHEMA, x, "emb", grid=[[0, 0], [1, -1]])
    assert whole.grid == [[0.0, 0.0], [1.0, -1.0]] and whole.is_categorical
    np.testing.assert_allclose(whole.pd, _pd_linear_closed_form(x, w, c, COLUMNS["emb"],
                                                                np.array([[0.0, 0.0], [1.0, -1.0]])), atol=1e-12)
    with pytest.raises(ValidationError, match=r"emb\[5\].*2 elements"):
        partial_dependence(linear(w, c), ACTIONS, SCHEMA, x, "emb[5]")


def test_raw_contexts_give_the_same_result_as_their_encoding() -> None:
    raw = contexts(60)
    score = linear(*weights())
    a = partial_dependence(score, ACTIONS, SCHEMA, raw, "x2", n_grid=7)
    b = partial_dependence(score, ACTIONS, SCHEMA, data(60), "x2", n_grid=7)
    assert a.grid == b.grid
    np.testing.assert_array_equal(a.pd, b.pd)
    np.testing.assert_array_equal(a.ice, b.ice)


def test_sampling_and_ice_rows_are_seeded() -> None:
    x = data(400)
    score = linear(*weights())
    a = partial_dependence(score, ACTIONS, SCHEMA, x, "x1", sample=150, n_ice=30, seed=3)
    b = partial_dependence(score, ACTIONS, SCHEMA, x, "x1", sample=150, n_ice=30, seed=3)
    c = partial_dependence(score, ACTIONS, SCHEMA, x, "x1", sample=150, n_ice=30, seed=4)
    assert a.n_rows == 150 and a.ice.shape[1] == 30
    np.testing.assert_array_equal(a.ice_rows, b.ice_rows)
    np.testing.assert_array_equal(a.pd, b.pd)
    assert not np.array_equal(a.ice_rows, c.ice_rows)
    none = partial_dependence(score, ACTIONS, SCHEMA, x, "x1", ice=False)
    assert none.ice.shape == (len(none.grid), 0, 3)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"feature": "nope"}, r"feature: unknown feature 'nope'"),
    ({"feature": "x1", "grid": [0.0, 11.0]}, r"grid\[1\]: 11.0 is above the maximum 10.0"),
    ({"feature": "color", "grid": ["red", "purple"]}, r"grid\[1\]: 'purple' is not in the vocabulary"),
    ({"feature": "flag", "grid": [1]}, r"grid\[0\]: expected true or false"),
    ({"feature": "x1", "grid": []}, r"grid: expected a non-empty list"),
    ({"feature": "x1", "n_grid": 0}, r"n_grid: expected an integer of at least 1"),
])
def test_bad_arguments_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        partial_dependence(linear(*weights()), ACTIONS, SCHEMA, data(20), **kwargs)  # type: ignore[arg-type]


def test_bad_data_and_scores_are_refused_clearly() -> None:
    x = data(20)
    score = linear(*weights())
    with pytest.raises(ValidationError, match=r"data: expected an encoded matrix of shape \(n, 9\)"):
        partial_dependence(score, ACTIONS, SCHEMA, x[:, :5], "x1")
    bad = x.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValidationError, match="data: the encoded matrix holds NaN"):
        partial_dependence(score, ACTIONS, SCHEMA, bad, "x1")
    with pytest.raises(ValidationError, match=r"data\[0\].x1: 99.0 is above the maximum"):
        partial_dependence(score, ACTIONS, SCHEMA, [{**contexts(1)[0], "x1": 99.0}], "x1")
    with pytest.raises(ValidationError, match=r"score: returned shape \(\d+, 2\), expected \(\d+, 3\)"):
        partial_dependence(lambda m: m[:, :2], ACTIONS, SCHEMA, x, "x1")
    with pytest.raises(ValidationError, match="score: returned NaN or infinite"):
        partial_dependence(lambda m: np.full((len(m), 3), np.inf), ACTIONS, SCHEMA, x, "x1")
    with pytest.raises(ValidationError, match="actions: action names must be unique"):
        partial_dependence(score, ["a", "a", "b"], SCHEMA, x, "x1")
    with pytest.raises(ValidationError, match="action: unknown action 'z'"):
        partial_dependence(score, ACTIONS, SCHEMA, x, "x1").action_index("z")


def test_to_dict_is_json_ready() -> None:
    import json

    pd = partial_dependence(linear(*weights()), ACTIONS, SCHEMA, data(30), "color", n_ice=5)
    back = json.loads(json.dumps(pd.to_dict()))
    assert back["grid"] == ["red", "green", "blue"] and len(back["ice"][0]) == 5 and back["actions"] == ACTIONS
    assert back["observed_deciles"] == []
    x = data(30)
    numeric = json.loads(json.dumps(partial_dependence(linear(*weights()), ACTIONS, SCHEMA, x, "x1").to_dict()))
    assert numeric["observed_deciles"][0] == x[:, 0].min() and numeric["observed_deciles"][-1] == x[:, 0].max()
