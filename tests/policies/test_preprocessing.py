"""Fitted preprocessing: the transforms against scipy, storage with the policy, and identical matrices in training
and in serving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from rlops.engine import DeploymentSpec, Engine
from rlops.errors import ConfigError, ValidationError
from rlops.policies import LearningBatch, LinUCB, OnlineLearner, PolicyInput, UniformRandom, load_policy, save_policy
from rlops.policies.preprocessed import Preprocessed, unwrap, with_preprocessing
from rlops.policies.preprocessing import Preprocessor, Transform
from rlops.scenarios import SyntheticBandit

WORLD = SyntheticBandit(seed=0)
SCHEMA = WORLD.schema


def _matrix(n: int = 2000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.lognormal(0.0, 1.0, n),  # positive, right-skewed: Box-Cox
                            rng.normal(5.0, 2.0, n),  # symmetric: standardise
                            rng.integers(0, 2, n).astype(float),  # binary: leave alone
                            np.full(n, 3.0)])  # constant: leave alone


def test_each_column_gets_the_transform_its_distribution_calls_for() -> None:
    x = _matrix()
    pre = Preprocessor.fit(x, ["skewed", "normal", "flag", "constant"])
    assert [c.transform for c in pre.columns] == [Transform.BOXCOX, Transform.STANDARDIZE, Transform.IDENTITY,
                                                  Transform.IDENTITY]
    y = pre.transform(x)
    assert np.allclose(y[:, :2].mean(axis=0), 0.0, atol=1e-9) and np.allclose(y[:, :2].std(axis=0), 1.0, atol=0.01)
    assert np.array_equal(y[:, 2:], x[:, 2:])
    # Against scipy, an independent implementation: the same lambda and the same transformed values.
    expected, lmbda = stats.boxcox(x[:, 0])
    assert pre.columns[0].lmbda == pytest.approx(lmbda, rel=1e-6)
    assert np.allclose(y[:, 0], (expected - expected.mean()) / expected.std(), atol=1e-6)
    assert abs(stats.skew(y[:, 0])) < 0.1 < stats.skew(x[:, 0])


def test_wild_and_unseen_values_are_clipped_and_stay_finite() -> None:
    pre = Preprocessor.fit(_matrix(), ["skewed", "normal", "flag", "constant"], clip=4.0)
    wild = np.array([[-5.0, 1e9, 1.0, 3.0], [0.0, -1e9, 0.0, 3.0]])  # Box-Cox never saw values <= 0
    y = pre.transform(wild)
    assert np.isfinite(y).all()
    assert y[0, 1] == 4.0 and y[1, 1] == -4.0
    assert y[0, 0] == y[1, 0] == pre.transform(np.array([[pre.columns[0].floor, 5.0, 0.0, 3.0]]))[0, 0]


def test_round_trip_and_bad_files() -> None:
    pre = Preprocessor.fit(_matrix(), ["skewed", "normal", "flag", "constant"])
    again = Preprocessor.from_dict(pre.to_dict())
    assert again == pre
    bad = pre.to_dict()
    bad["columns"][1]["std"] = 0.0
    with pytest.raises(ConfigError, match="std > 0"):
        Preprocessor.from_dict(bad)
    with pytest.raises(ConfigError, match="malformed"):
        Preprocessor.from_dict({"columns": [{"name": "a", "transform": "cube-root"}]})
    with pytest.raises(ValidationError) as info:
        Preprocessor.fit(np.array([[1.0, np.nan], [2.0, 3.0]]), ["a", "b"])
    assert info.value.field == "x"
    with pytest.raises(ValidationError):
        pre.transform(np.zeros((2, 3)))


def test_the_wrapper_keeps_the_learner_protocol() -> None:
    pre = Preprocessor.fit(SCHEMA.encode(WORLD.sample_contexts(200, np.random.default_rng(0))), SCHEMA.column_names)
    assert isinstance(with_preprocessing(LinUCB(SCHEMA), pre), OnlineLearner)
    assert not isinstance(with_preprocessing(UniformRandom(SCHEMA), pre), OnlineLearner)
    assert with_preprocessing(LinUCB(SCHEMA), None).kind == "linucb"


def test_served_and_trained_preprocessing_give_identical_matrices(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    logged = WORLD.sample_contexts(500, rng)
    encoded = SCHEMA.encode([SCHEMA.validate_context(c) for c in logged])
    pre = Preprocessor.fit(encoded, SCHEMA.column_names)
    assert any(c.transform is not Transform.IDENTITY for c in pre.columns)
    # Train from logs through the wrapper; record every matrix LinUCB itself is given.
    seen: list[np.ndarray] = []
    real_act, real_update = LinUCB.act, LinUCB.update
    monkeypatch.setattr(LinUCB, "update", lambda self, b: seen.append(b.inputs.x) or real_update(self, b))
    policy = with_preprocessing(LinUCB(SCHEMA, alpha=0.5), pre)
    actions = rng.integers(0, len(WORLD.schema.action_names()), len(logged))
    policy.update(LearningBatch(PolicyInput.from_contexts(SCHEMA, logged), actions,  # type: ignore[attr-defined]
                                rng.random(len(logged)), np.full(len(logged), 0.2)))
    trained = seen.pop()
    assert np.array_equal(trained, pre.transform(encoded))
    save_policy(policy, tmp_path / "policy")
    loaded = load_policy(tmp_path / "policy")
    assert isinstance(loaded, Preprocessed) and unwrap(loaded)[1] == pre

    monkeypatch.setattr(LinUCB, "act", lambda self, b, r: seen.append(b.x) or real_act(self, b, r))
    with Engine(tmp_path / "home") as engine:
        engine.apply(DeploymentSpec.from_dict({
            "name": "news", "schema": SCHEMA.to_dict(), "policy": {"path": str(tmp_path / "policy")},
            "reward": {"name": "click", "version": 1, "expression": "clicked", "fields": {"clicked": {}},
                       "window": "1h", "missing": 0.0}}))
        for context in logged[:50]:
            engine.decide("news", context, "u")
    served = np.vstack(seen)
    assert np.array_equal(served, trained[:50])  # bit for bit, the rows training saw



def test_a_preprocessor_for_other_columns_is_refused() -> None:
    x = SCHEMA.encode(WORLD.sample_contexts(200, np.random.default_rng(0)))
    names = list(SCHEMA.column_names)
    swapped = [names[1], names[0], *names[2:]]  # same width, another column order
    with pytest.raises(ValidationError, match="another column order"):
        with_preprocessing(LinUCB(SCHEMA), Preprocessor.fit(x, swapped))
