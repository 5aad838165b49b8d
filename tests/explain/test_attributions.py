"""Attributions: exact for linear scores, integrated gradients and Shapley sampling, completeness for every method
on every policy kind, and the baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlops.errors import ValidationError
from rlops.explain.attributions import (
    EXACT_RTOL,
    IG_RTOL,
    Method,
    attribute,
    baseline_from_context,
    baseline_from_profile,
    integrated_gradients,
    linear_attribution,
    resolve_method,
    shapley_sampling,
)
from rlops.explain.scores import FeatureLayout, ScoreFunction, ScoreKind, score_function, score_kinds
from rlops.monitoring.drift.profile import ReferenceProfile
from rlops.policies import EpsilonGreedy, LearningBatch, LinearScorer, LinUCB, RulePolicy
from rlops.schema import Schema
from tests.explain.cases import CASES, build
from tests.policies import rules
from tests.policies.factories import BANDIT, bandit_batch

USER = {"age": 52.0, "device": "tablet", "returning": True, "activity": 0.8, "taste": [0.5, -0.2, 0.1, 0.9]}
OTHER = {"age": 25.0, "device": "mobile", "returning": False, "activity": 0.1, "taste": [0.0, 0.3, -0.4, 0.2]}


def _encode(context: dict[str, object]) -> np.ndarray:
    return BANDIT.schema.encode([BANDIT.schema.validate_context(context)])[0]


def _methods(sf: ScoreFunction, x: np.ndarray, b: np.ndarray) -> list[Method]:
    methods = [Method.SHAPLEY_SAMPLING]
    if sf.grad is not None:
        methods.append(Method.INTEGRATED_GRADIENTS)
    if sf.linear is not None and sf.linear.holds_at(x, b):
        methods.append(Method.EXACT)
    return methods


def _conformance_cases() -> list[tuple[str, ScoreKind, Method]]:
    out = []
    for name in sorted(CASES):
        case = build(name)
        for kind in score_kinds(case.policy):
            sf = score_function(case.policy, kind=kind, candidates=case.candidates)
            out.extend((name, kind, m) for m in _methods(sf, case.x, case.baseline))
    return out


@pytest.mark.parametrize(("name", "kind", "method"), _conformance_cases())
def test_completeness_holds_for_every_method_on_every_policy_kind(name: str, kind: ScoreKind,
                                                                  method: Method) -> None:
    case = build(name)
    sf = score_function(case.policy, kind=kind, candidates=case.candidates)
    targets: list[tuple[int, int | None]] = [(0, None)]
    if len(sf.actions) > 1:
        targets.append((len(sf.actions) - 1, 0))  # an advantage: score[K-1] - score[0]
    for action, versus in targets:
        a = attribute(sf, case.x, case.baseline, action, versus=versus, method=method, budget=64, seed=1)
        assert a.method is method
        scores = sf(np.stack([a.x, a.baseline]))
        expected = scores[:, action] - (0.0 if versus is None else scores[:, versus])
        assert a.value == pytest.approx(expected[0], rel=1e-12, abs=1e-12)
        assert a.baseline_value == pytest.approx(expected[1], rel=1e-12, abs=1e-12)
        total = float(a.feature_attributions.sum())
        assert abs(total - (a.value - a.baseline_value)) == pytest.approx(a.completeness_error, abs=1e-15)
        assert a.complete, (f"{name}/{kind}/{method}: |{total} - {a.delta}| = {a.completeness_error} > "
                            f"{a.tolerance}")
        assert len(a.feature_attributions) == len(sf.layout.features)
        if a.column_attributions is not None:
            np.testing.assert_allclose(sf.layout.per_feature(a.column_attributions), a.feature_attributions,
                                       rtol=1e-12, atol=1e-15)
        changed = {sf.layout.features[o] for o in sf.layout.owner[a.x != a.baseline]}
        for feature, value in a.by_feature.items():
            if feature not in changed:
                assert value == 0.0, f"{feature} equals its baseline but got {value}"


def _linucb_trained() -> LinUCB:
    policy = LinUCB(BANDIT.schema, alpha=0.5)
    rng = np.random.default_rng(7)
    for _ in range(3):  # a few updates
        batch = bandit_batch(rng, 40)
        action = rng.integers(0, 5, 40)
        policy.update(LearningBatch(batch, action, rng.normal(size=40) + batch.x[:, 4], np.full(40, 0.2)))
    return policy


def test_linucb_attributions_are_its_coefficients_times_the_difference() -> None:
    policy = _linucb_trained()
    x, b = _encode(USER), _encode(OTHER)
    d = BANDIT.schema.width
    theta = policy.model.theta
    for action in range(5):
        a = attribute(policy, x, b, action)
        assert a.method is Method.EXACT and a.kind is ScoreKind.EXPECTED_REWARD
        np.testing.assert_allclose(a.column_attributions, theta[action, :d] * (x - b), rtol=0, atol=1e-12)
        assert a.tolerance == EXACT_RTOL * max(1.0, abs(a.delta)) and a.complete
    adv = attribute(policy, x, b, "sports", versus="news")
    names = list(BANDIT.schema.actions.names)  # type: ignore[union-attr]
    w = theta[names.index("sports"), :d] - theta[names.index("news"), :d]
    np.testing.assert_allclose(adv.column_attributions, w * (x - b), rtol=0, atol=1e-12)
    assert adv.target == "sports - news"


def test_linear_scorer_attributions_are_its_weights_times_the_difference() -> None:
    rng = np.random.default_rng(2)
    weights, bias = rng.normal(size=(5, BANDIT.schema.width)), rng.normal(size=5)
    policy = EpsilonGreedy(BANDIT.schema, LinearScorer(weights, bias), epsilon=0.1)
    x, b = _encode(USER), _encode(OTHER)
    for action in range(5):
        a = linear_attribution(score_function(policy), x, b, action)
        np.testing.assert_allclose(a.column_attributions, weights[action] * (x - b), rtol=0, atol=1e-12)
        assert a.by_feature["device"] == pytest.approx(float(weights[action, 1:4] @ (x - b)[1:4]), abs=1e-12)


def test_integrated_gradients_agree_with_the_exact_linear_attribution() -> None:
    policy = _linucb_trained()
    sf = score_function(policy)
    x, b = _encode(USER), _encode(OTHER)
    exact = linear_attribution(sf, x, b, 2, versus=4)
    ig = integrated_gradients(sf, x, b, 2, versus=4)
    assert ig.method is Method.INTEGRATED_GRADIENTS and ig.steps == 32
    np.testing.assert_allclose(ig.column_attributions, exact.column_attributions, rtol=1e-10, atol=1e-12)


def test_integrated_gradients_refine_until_the_tolerance_and_report_what_they_reached() -> None:
    # a sharp step at x0 = 0: the first rounds miss it, the doubling finds it
    def fn(x: np.ndarray) -> np.ndarray:
        return np.tanh(30.0 * x[:, :1]) + x[:, 1:2] ** 2

    def grad(x: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.column_stack([30.0 / np.cosh(30.0 * x[:, 0]) ** 2, 2 * x[:, 1]]) * c[0]

    sf = ScoreFunction(ScoreKind.SCORE, ["f"], fn, FeatureLayout.of_columns(["x0", "x1"]), grad=grad)
    x, b = np.array([1.3, 2.0]), np.array([-1.0, 0.0])
    ig = integrated_gradients(sf, x, b, 0)
    assert ig.complete and ig.steps > 32
    assert ig.completeness_error <= IG_RTOL * max(1.0, abs(ig.delta))
    capped = integrated_gradients(sf, x, b, 0, steps=2, max_steps=2)
    assert capped.steps == 2 and not capped.complete  # reported, not hidden
    assert capped.completeness_error == pytest.approx(abs(capped.feature_attributions.sum() - capped.delta))


def test_auto_falls_back_to_shapley_when_integrated_gradients_miss_at_the_cap() -> None:
    def fn(x: np.ndarray) -> np.ndarray:
        return np.tanh(1e5 * x[:, :1])

    def grad(x: np.ndarray, c: np.ndarray) -> np.ndarray:
        return 1e5 * (1.0 - np.tanh(1e5 * x[:, :1]) ** 2) * c[0]

    sf = ScoreFunction(ScoreKind.SCORE, ["f"], fn, FeatureLayout.of_columns(["x0"]), grad=grad)
    x, b = np.array([1.3]), np.array([-1.0])
    assert not integrated_gradients(sf, x, b, 0).complete
    a = attribute(sf, x, b, 0)
    assert a.method is Method.SHAPLEY_SAMPLING and a.complete
    assert attribute(sf, x, b, 0, method="integrated_gradients").method is Method.INTEGRATED_GRADIENTS


def _product(x1_index: int = 0, x2_index: int = 1, linear: np.ndarray | None = None, width: int = 2
             ) -> ScoreFunction:
    w = np.zeros(width) if linear is None else linear

    def fn(x: np.ndarray) -> np.ndarray:
        return (x[:, x1_index] * x[:, x2_index] + x @ w)[:, None]

    return ScoreFunction(ScoreKind.SCORE, ["f"], fn, FeatureLayout.of_columns([f"x{i}" for i in range(width)]))


def test_shapley_values_of_a_product_are_the_known_ones() -> None:
    x, b = np.array([3.0, -2.0]), np.array([1.0, 0.5])
    a = shapley_sampling(_product(), x, b, 0)
    assert a.exhaustive and a.permutations == 2
    # phi_1 = (x1 - b1)(x2 + b2) / 2, phi_2 = (x2 - b2)(x1 + b1) / 2
    np.testing.assert_allclose(a.feature_attributions, [(3 - 1) * (-2 + 0.5) / 2, (-2 - 0.5) * (3 + 1) / 2],
                               rtol=1e-14)
    assert a.completeness_error <= 1e-14 and a.column_attributions is None


def test_sampled_shapley_values_are_unbiased_and_exactly_complete() -> None:
    rng = np.random.default_rng(5)
    width = 8  # 8! * 7 evaluations would exceed the budget: sampled
    w = rng.normal(size=width)
    sf = _product(2, 5, w, width)
    x, b = rng.normal(size=width), rng.normal(size=width)
    expected = w * (x - b)
    expected[2] += (x[2] - b[2]) * (x[5] + b[5]) / 2
    expected[5] += (x[5] - b[5]) * (x[2] + b[2]) / 2
    a = shapley_sampling(sf, x, b, 0, budget=2048, seed=3)
    assert not a.exhaustive and a.permutations == 2 * (2048 // 7 // 2)
    assert a.completeness_error <= 1e-12
    assert a.standard_errors is not None
    assert np.all(np.abs(a.feature_attributions - expected) <= 4 * a.standard_errors + 1e-12)
    # additive features have no interaction: every permutation gives them their exact value
    np.testing.assert_allclose(np.delete(a.feature_attributions, [2, 5]), np.delete(expected, [2, 5]), rtol=1e-12)
    again = shapley_sampling(sf, x, b, 0, budget=2048, seed=3)
    np.testing.assert_array_equal(again.feature_attributions, a.feature_attributions)
    other = shapley_sampling(sf, x, b, 0, budget=2048, seed=4)
    assert not np.array_equal(other.feature_attributions, a.feature_attributions)


def test_shapley_players_are_features_so_one_hot_columns_move_together() -> None:
    # A rule over a categorical: a column-level method could set two devices at once; features cannot.
    policy = RulePolicy(BANDIT.schema, rules.by_age)
    sf = score_function(policy)
    x, b = _encode(USER), _encode(OTHER)
    a = attribute(policy, x, b, "news")
    assert a.method is Method.SHAPLEY_SAMPLING and a.exhaustive  # 5 features: 5! * 4 = 480 <= 2048
    assert a.by_feature["age"] == pytest.approx(1.0) and a.completeness_error == 0.0
    assert sum(abs(v) for k, v in a.by_feature.items() if k != "age") == 0.0
    assert sf(np.stack([x]))[0, sf.index("news")] == 1.0


def test_a_rules_mean_baseline_is_snapped_to_a_context() -> None:
    policy = RulePolicy(BANDIT.schema, rules.by_age)
    x = _encode(USER)
    mean = np.stack([_encode(USER), _encode(OTHER), _encode(OTHER)]).mean(axis=0)
    a = attribute(policy, x, mean, "news")
    assert set(a.baseline[1:4].tolist()) == {0.0, 1.0} and a.baseline[4] in (0.0, 1.0)
    assert a.baseline[0] == pytest.approx(mean[0])


def test_exact_on_a_standardised_model_only_inside_the_clip_box() -> None:
    case = build("preprocessed_linucb")
    sf = score_function(case.policy)
    a = attribute(case.policy, case.x, case.baseline, 1)
    assert a.method is Method.EXACT and a.complete
    age = case.policy.preprocessor.columns[0]  # type: ignore[attr-defined]
    far = case.x.copy()
    far[0] = age.mean + 10 * age.std  # clipped at 6 standard deviations by the preprocessor
    assert resolve_method(sf, far, case.baseline) is Method.INTEGRATED_GRADIENTS
    with pytest.raises(ValidationError, match="method: the score is linear only where the policy's preprocessing"):
        linear_attribution(sf, far, case.baseline, 1)
    ig = attribute(case.policy, far, case.baseline, 1)
    assert ig.method is Method.INTEGRATED_GRADIENTS and ig.complete


def test_methods_and_inputs_are_refused_clearly() -> None:
    rule = score_function(RulePolicy(BANDIT.schema, rules.by_age))
    x, b = _encode(USER), _encode(OTHER)
    with pytest.raises(ValidationError, match="method: the probability score is not linear"):
        linear_attribution(rule, x, b, 0)
    with pytest.raises(ValidationError, match="method: the probability score has no gradient"):
        integrated_gradients(rule, x, b, 0)
    with pytest.raises(ValidationError, match="method: 'magic' is not a method"):
        attribute(rule, x, b, 0, method="magic")
    with pytest.raises(ValidationError, match=r"x: expected an encoded context of shape \(10,\)"):
        attribute(rule, x[:3], b, 0)
    with pytest.raises(ValidationError, match="baseline: holds NaN"):
        attribute(rule, x, np.full(10, np.nan), 0)
    with pytest.raises(ValidationError, match="action: 'nope' is not one of the scored actions"):
        attribute(rule, x, b, "nope")
    with pytest.raises(ValidationError, match=r"action: expected an action name or an index in \[0, 5\)"):
        attribute(rule, x, b, 7)
    with pytest.raises(ValidationError, match="versus: is the explained action itself"):
        attribute(rule, x, b, 1, versus=rule.actions[1])
    with pytest.raises(ValidationError, match="budget: expected a number of score evaluations"):
        shapley_sampling(rule, x, b, 0, budget=0)
    with pytest.raises(ValidationError, match=r"x\.age: 200\.0 is above the maximum"):
        attribute(rule, {**USER, "age": 200.0}, b, 0)


def test_raw_contexts_are_accepted_as_x_and_baseline() -> None:
    policy = _linucb_trained()
    a = attribute(policy, USER, OTHER, 0)
    np.testing.assert_array_equal(a.x, _encode(USER))
    np.testing.assert_array_equal(a.baseline, _encode(OTHER))


def test_baseline_from_a_reference_profile_is_its_mean_with_category_frequencies() -> None:
    contexts = BANDIT.sample_contexts(500, np.random.default_rng(1))
    matrix = BANDIT.schema.encode([BANDIT.schema.validate_context(c) for c in contexts])
    profile = ReferenceProfile.build(BANDIT.schema, contexts)
    baseline = baseline_from_profile(profile, BANDIT.schema)
    np.testing.assert_allclose(baseline, matrix.mean(axis=0), rtol=1e-12, atol=1e-15)
    assert baseline[1:4].sum() == pytest.approx(1.0)  # device frequencies
    restored = ReferenceProfile.from_dict(profile.to_dict())
    np.testing.assert_allclose(baseline_from_profile(restored, BANDIT.schema), baseline, rtol=1e-12)
    other = Schema.model_validate({"features": [{"name": "u", "type": "float"}],
                                   "actions": {"type": "discrete", "names": ["a"]}})
    with pytest.raises(ValidationError, match="baseline: the reference profile's columns"):
        baseline_from_profile(profile, other)


def test_baseline_from_a_context_is_validated_and_ignores_pii() -> None:
    schema = Schema.model_validate({**BANDIT.schema.to_dict(), "pii": {"email": "hash"}})
    encoded = baseline_from_context(schema, {**OTHER, "email": "a@b.c"})
    np.testing.assert_array_equal(encoded, _encode(OTHER))
    with pytest.raises(ValidationError, match=r"baseline\.device: 'fax' is not in the vocabulary"):
        baseline_from_context(schema, {**OTHER, "device": "fax"})
    with pytest.raises(ValidationError, match=r"baseline\.colour: unknown field"):
        baseline_from_context(schema, {**OTHER, "colour": "red"})


def test_to_dict_is_json_ready() -> None:
    import json

    a = attribute(_linucb_trained(), USER, OTHER, 0, versus=1)
    data = json.loads(json.dumps(a.to_dict()))
    assert data["method"] == "exact" and data["complete"] is True
    assert set(data["features"]) == {"age", "device", "returning", "activity", "taste"}
    assert math.isclose(data["sum"], data["delta"], abs_tol=1e-9)
    assert data["columns"]["device=tablet"] == a.by_column["device=tablet"]  # type: ignore[index]
    sampled = json.loads(json.dumps(shapley_sampling(score_function(_linucb_trained()), USER, OTHER, 0,
                                                     budget=40).to_dict()))
    assert sampled["columns"] is None and set(sampled["standard_errors"]) == set(data["features"])


def test_an_advantage_is_the_difference_of_the_two_scores_attributions() -> None:
    policy = _linucb_trained()
    x, b = _encode(USER), _encode(OTHER)
    sf = score_function(policy, kind="ucb")
    one = integrated_gradients(sf, x, b, 3)
    two = integrated_gradients(sf, x, b, 1)
    adv = integrated_gradients(sf, x, b, 3, versus=1)
    assert adv.delta == pytest.approx(one.delta - two.delta, rel=1e-12)
    np.testing.assert_allclose(adv.feature_attributions, one.feature_attributions - two.feature_attributions,
                               atol=5e-3 * max(1.0, abs(adv.delta)))
