"""Score functions: every policy kind gives scores that are the policy's own, with correct linear forms and
gradients, and clear errors for what it cannot score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlops.errors import ValidationError
from rlops.explain.scores import (
    FeatureLayout,
    ScoreKind,
    decode_rows,
    score_function,
    score_kinds,
    snap_to_schema,
)
from rlops.policies import (
    ActResult,
    BasePolicy,
    EpsilonGreedy,
    LinearScorer,
    LinUCB,
    MLPPolicy,
    PolicyInput,
    RulePolicy,
    SB3Policy,
    UniformRandom,
)
from rlops.policies.preprocessed import Preprocessed
from rlops.policies.preprocessing import Transform
from tests.explain.cases import CASES
from tests.policies import rules
from tests.policies.factories import BANDIT, BOX, CANDIDATES, bandit_batch, trained


class _NoisyBox(BasePolicy):
    """A box policy of a kind the explainer does not know: it samples, with no deterministic action."""

    kind = "noisy_box"

    def act(self, batch: PolicyInput, rng: np.random.Generator) -> ActResult:
        return ActResult(action=rng.uniform(-0.5, 0.5, (batch.n, 2)), propensity=np.ones(batch.n))


KIND_CASES = [(name, kind) for name in sorted(CASES) for kind in score_kinds(CASES[name]()[0])]


def _rows(name: str, n: int = 6, seed: int = 3) -> tuple[object, np.ndarray, np.ndarray | None]:
    policy, make_batch = CASES[name]()
    batch = make_batch(np.random.default_rng(seed), n)
    return policy, batch.x, None if batch.candidates is None else batch.candidates[0]


@pytest.mark.parametrize(("name", "kind"), KIND_CASES)
def test_scores_are_finite_one_per_action_and_the_linear_form_and_gradient_match(name: str, kind: ScoreKind
                                                                                   ) -> None:
    policy, x, candidates = _rows(name)
    sf = score_function(policy, kind=kind, candidates=candidates)  # type: ignore[arg-type]
    scores = sf(x)
    assert sf.kind is kind
    assert scores.shape == (len(x), len(sf.actions)) and np.isfinite(scores).all()
    assert sf.layout.columns == tuple(policy.schema.column_names)  # type: ignore[attr-defined]
    if sf.linear is not None:
        inside = [row for row in x if sf.linear.holds_at(row)]
        assert inside, "the test rows should lie where the linear form holds"
        np.testing.assert_allclose(sf(np.array(inside)), np.array(inside) @ sf.linear.weights.T + sf.linear.bias,
                                   rtol=1e-10, atol=1e-10)
    if sf.grad is None or policy.kind == "sb3":  # type: ignore[attr-defined]
        return  # float32 networks: their gradients are checked through completeness in test_attributions
    c = np.random.default_rng(0).normal(size=len(sf.actions))
    g = sf.grad(x, c)
    eps = 1e-6
    numeric = np.empty_like(x)
    for j in range(x.shape[1]):
        step = np.zeros(x.shape[1])
        step[j] = eps
        numeric[:, j] = (sf(x + step) @ c - sf(x - step) @ c) / (2 * eps)
    np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-6)


def test_linear_bandit_scores_are_its_reward_model_and_ucb_ranks_as_it_acts() -> None:
    policy, x, _ = _rows("linucb_greedy", n=200)
    assert isinstance(policy, LinUCB)
    batch = PolicyInput(x=x)
    np.testing.assert_allclose(score_function(policy)(x), policy.expected_rewards(batch), rtol=1e-12)
    ucb = score_function(policy, kind="ucb")(x)
    mean, var = policy.model.disjoint_moments(x)
    np.testing.assert_allclose(ucb, mean + policy.alpha * np.sqrt(var), rtol=1e-10)
    np.testing.assert_array_equal(np.argmax(ucb, axis=1), policy.act(batch, np.random.default_rng(0)).action)


def test_candidate_scores_hold_the_candidate_set_fixed() -> None:
    policy, make_batch = CASES["linucb_candidates"]()
    assert isinstance(policy, LinUCB)
    batch = make_batch(np.random.default_rng(2), 5)
    for i in range(batch.n):
        sf = score_function(policy, candidates=batch.candidates[i], candidate_ids=[f"c{j}" for j in
                                                                                  range(len(batch.candidates[i]))])
        _, mean, var = policy.model.shared_moments(batch.x[i], batch.candidates[i])
        np.testing.assert_allclose(sf(batch.x[i])[0], mean, rtol=1e-10, atol=1e-12)
        ucb = score_function(policy, kind=ScoreKind.UCB, candidates=batch.candidates[i])
        np.testing.assert_allclose(ucb(batch.x[i])[0], mean + policy.alpha * np.sqrt(var), rtol=1e-10)
        assert sf.actions[0] == "c0"


def test_scorer_policies_score_with_their_scorer() -> None:
    for name in ("epsilon_greedy_linear", "softmax_ridge"):
        policy, x, _ = _rows(name, n=50)
        assert isinstance(policy, EpsilonGreedy) or policy.kind == "softmax"
        np.testing.assert_allclose(score_function(policy)(x), policy.scorer.scores(PolicyInput(x=x)),  # type: ignore[attr-defined]
                                   rtol=1e-12)
    assert score_function(CASES["softmax_ridge"]()[0]).kind is ScoreKind.EXPECTED_REWARD
    assert score_function(CASES["epsilon_greedy_linear"]()[0]).kind is ScoreKind.SCORE


def test_probability_scores_are_the_policys_distribution() -> None:
    for name in ("linucb", "mlp_softmax", "rule_epsilon", "vw_epsilon", "sb3_ppo_discrete", "sb3_dqn"):
        policy, make_batch = CASES[name]()
        batch = make_batch(np.random.default_rng(4), 20)
        expected = policy.act(batch, np.random.default_rng(9)).probabilities
        got = score_function(policy, kind=ScoreKind.PROBABILITY)(batch.x)
        np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-6, atol=1e-7, err_msg=name)


def test_mlp_scores_are_its_outputs_or_its_mean_action() -> None:
    policy, x, _ = _rows("mlp8", n=30)
    assert isinstance(policy, MLPPolicy)
    np.testing.assert_allclose(score_function(policy)(x), policy.outputs(x), rtol=1e-12)
    box, xb, _ = _rows("mlp_box", n=30)
    assert isinstance(box, MLPPolicy)
    sf = score_function(box)
    assert sf.kind is ScoreKind.ACTION_MEAN and sf.actions == ["action[0]", "action[1]"]
    np.testing.assert_allclose(sf(xb), box.mean_action(xb), rtol=1e-12)


@pytest.mark.parametrize("name", ["sb3_ppo_trained", "sb3_ppo_discrete"])
def test_sb3_logits_are_the_actors_logits(name: str) -> None:
    policy, x, _ = _rows(name, n=40)
    assert isinstance(policy, SB3Policy)
    logits = score_function(policy)(x)
    with torch.no_grad():
        probs = policy.model.policy.get_distribution(torch.as_tensor(x, dtype=torch.float32)).distribution.probs
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(softmax / softmax.sum(axis=1, keepdims=True), probs.numpy(), rtol=1e-5, atol=1e-6)


def test_sb3_q_values_and_box_means() -> None:
    policy, x, _ = _rows("sb3_dqn_trained", n=40)
    assert isinstance(policy, SB3Policy)
    with torch.no_grad():
        q = policy.model.q_net(torch.as_tensor(x, dtype=torch.float32)).numpy()
    sf = score_function(policy)
    assert sf.kind is ScoreKind.Q_VALUE
    np.testing.assert_allclose(sf(x), q, rtol=1e-6)
    for name in ("sb3_sac", "sb3_td3"):
        box, xb, _ = _rows(name, n=40)
        assert isinstance(box, SB3Policy)
        deterministic = SB3Policy(box.schema, box.model, deterministic=True)
        served = deterministic.act(PolicyInput(x=xb), np.random.default_rng(0)).action
        np.testing.assert_allclose(score_function(box)(xb), served, rtol=1e-5, atol=1e-6, err_msg=name)


def test_sb3_gradients_do_not_touch_the_models_parameters() -> None:
    policy, x, _ = _rows("sb3_ppo_trained", n=5)
    assert isinstance(policy, SB3Policy)
    sf = score_function(policy)
    assert sf.grad is not None
    params = list(policy.model.policy.parameters())
    before = [None if p.grad is None else p.grad.clone() for p in params]
    weights = [p.detach().clone() for p in params]
    sf.grad(x, np.array([1.0, -1.0, 0.0]))
    for p, g, w in zip(params, before, weights, strict=True):
        assert (p.grad is None and g is None) or torch.equal(p.grad, g)
        assert torch.equal(p.detach(), w)


def test_a_standardised_linear_model_stays_linear_inside_the_clip_box() -> None:
    policy, x, _ = _rows("preprocessed_linucb", n=50)
    assert isinstance(policy, Preprocessed)
    sf = score_function(policy)
    assert sf.linear is not None and sf.linear.lower is not None
    assert any(c.transform is Transform.STANDARDIZE for c in policy.preprocessor.columns)
    np.testing.assert_allclose(sf(x), policy.inner.expected_rewards(policy.features(PolicyInput(x=x))),  # type: ignore[arg-type]
                               rtol=1e-12, atol=1e-12)
    far = x[0].copy()
    far[0] = 1e6  # clipped at 6 standard deviations: outside the linear region
    assert not sf.linear.holds_at(far)


def test_a_box_cox_preprocessor_is_not_linear_but_has_a_chained_gradient() -> None:
    policy, _, _ = _rows("preprocessed_mlp_boxcox")
    assert isinstance(policy, Preprocessed)
    assert any(c.transform is Transform.BOXCOX for c in policy.preprocessor.columns)
    sf = score_function(policy)
    assert sf.linear is None and sf.grad is not None


def test_rules_read_contexts_and_decoding_round_trips_valid_contexts() -> None:
    contexts = BANDIT.sample_contexts(50, np.random.default_rng(0))
    x = BANDIT.schema.encode([BANDIT.schema.validate_context(c) for c in contexts])
    decoded = decode_rows(BANDIT.schema, x)
    np.testing.assert_array_equal(BANDIT.schema.encode(decoded), x)
    mean = x.mean(axis=0)
    snapped = snap_to_schema(BANDIT.schema, mean)[0]
    device = slice(1, 4)
    assert sorted(snapped[device].tolist()) == [0.0, 0.0, 1.0] and snapped[4] in (0.0, 1.0)
    sf = score_function(RulePolicy(BANDIT.schema, rules.by_age))
    assert sf.reads_contexts and sf.kind is ScoreKind.PROBABILITY and sf.grad is None and sf.linear is None
    probs = sf(x)
    assert set(np.unique(probs)) <= {0.0, 1.0}


def test_kinds_and_candidates_are_refused_clearly() -> None:
    mlp = CASES["mlp_greedy"]()[0]
    with pytest.raises(ValidationError, match=r"kind: policy kind 'mlp' has no 'ucb' score; it offers"):
        score_function(mlp, kind="ucb")
    with pytest.raises(ValidationError, match="kind: 'banana' is not a score kind"):
        score_function(mlp, kind="banana")
    linucb = trained(LinUCB(CANDIDATES), CASES["linucb_candidates"]()[1])
    with pytest.raises(ValidationError, match="candidates: a candidate action space is scored with the decision"):
        score_function(linucb)
    with pytest.raises(ValidationError, match="candidates: this schema has fixed discrete actions"):
        score_function(trained(LinUCB(BANDIT.schema), bandit_batch), candidates=np.ones((2, 3)))
    with pytest.raises(ValidationError, match=r"candidates: expected shape \(k >= 1, 3\)"):
        score_function(linucb, candidates=np.ones((2, 5)))
    with pytest.raises(ValidationError, match="kind: policy kind 'noisy_box' samples box actions"):
        score_function(_NoisyBox(BOX))
    uniform_box = score_function(UniformRandom(BOX))
    assert uniform_box.kind is ScoreKind.ACTION_MEAN and uniform_box.linear is not None
    linear = EpsilonGreedy(BANDIT.schema, LinearScorer(np.ones((5, BANDIT.schema.width))))
    with pytest.raises(ValidationError, match="x: expected encoded contexts of shape"):
        score_function(linear)(np.ones((2, 3)))


def test_layout_groups_one_hot_columns_into_their_feature() -> None:
    layout = FeatureLayout.of_schema(BANDIT.schema)
    assert layout.features == ("age", "device", "returning", "activity", "taste")
    assert layout.owner.tolist() == [0, 1, 1, 1, 2, 3, 4, 4, 4, 4]
    np.testing.assert_array_equal(layout.per_feature(np.arange(10.0)), [0, 6, 4, 5, 30])
