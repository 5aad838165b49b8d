"""The conformance suite: the same checks on every policy (as river's check_estimator does for estimators)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlops.errors import ConfigError, ValidationError
from rlops.policies import ActResult, PolicyInput, content_hash, load_policy, save_policy
from tests.policies.factories import FACTORIES

NAMES = sorted(FACTORIES)


def _rows(result: ActResult, n: int) -> list[np.ndarray | None]:
    return [result.row_probabilities(i) for i in range(n)]


def _assert_same(a: ActResult, b: ActResult) -> None:
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.propensity, b.propensity)
    for pa, pb in zip(_rows(a, len(a.action)), _rows(b, len(b.action)), strict=True):
        if pa is None:
            assert pb is None
        else:
            np.testing.assert_array_equal(pa, pb)


@pytest.fixture(params=NAMES)
def case(request: pytest.FixtureRequest) -> tuple[str, object, object]:
    policy, make_batch = FACTORIES[request.param]()
    return request.param, policy, make_batch


def test_propensities_and_probabilities_are_truthful(case: tuple[str, object, object]) -> None:
    _name, policy, make_batch = case
    batch = make_batch(np.random.default_rng(1), 64)  # type: ignore[operator]
    result = policy.act(batch, np.random.default_rng(2))  # type: ignore[attr-defined]
    assert result.propensity.shape == (64,)
    assert np.all(np.isfinite(result.propensity)) and np.all(result.propensity > 0)
    if policy.schema.is_continuous:  # type: ignore[attr-defined]
        space = policy.schema.actions  # type: ignore[attr-defined]
        assert result.action.shape == (64, space.dim)
        assert result.probabilities is None
        assert np.all(result.action >= np.array(space.low) - 1e-9)
        assert np.all(result.action <= np.array(space.high) + 1e-9)
        return
    assert np.all(result.propensity <= 1.0 + 1e-12)
    counts = batch.n_actions(policy.schema)  # type: ignore[attr-defined]
    for i, probs in enumerate(_rows(result, 64)):
        assert probs is not None and probs.shape == (counts[i],)
        assert np.all(probs >= 0)
        assert probs.sum() == pytest.approx(1.0, abs=1e-9)
        assert 0 <= result.action[i] < counts[i]
        assert result.propensity[i] == pytest.approx(probs[result.action[i]], rel=1e-12)


def test_sampled_frequencies_match_stated_probabilities(case: tuple[str, object, object]) -> None:
    """The propensity is what the policy really used: over many draws on one context, frequencies match it."""
    _name, policy, make_batch = case
    if policy.schema.is_continuous:  # type: ignore[attr-defined]
        pytest.skip("continuous actions: densities are checked against independent computations elsewhere")
    one = make_batch(np.random.default_rng(5), 1)  # type: ignore[operator]
    n = 4000
    repeated = PolicyInput(x=np.repeat(one.x, n, axis=0), contexts=list(one.contexts) * n,
                           candidates=None if one.candidates is None else list(one.candidates) * n)
    result = policy.act(repeated, np.random.default_rng(6))  # type: ignore[attr-defined]
    probs = np.vstack(_rows(result, n))  # type: ignore[arg-type]
    expected = probs.mean(axis=0)  # E[1{a_i = k}] = E[p_i(k)], also when p_i varies between draws
    observed = np.bincount(result.action, minlength=probs.shape[1]) / n
    tolerance = 4.5 * np.sqrt(expected * (1 - expected) / n) + 1e-9
    assert np.all(np.abs(observed - expected) <= tolerance), (observed, expected)


def test_same_seed_same_decisions(case: tuple[str, object, object]) -> None:
    _name, policy, make_batch = case
    batch = make_batch(np.random.default_rng(1), 32)  # type: ignore[operator]
    first = policy.act(batch, np.random.default_rng(7))  # type: ignore[attr-defined]
    second = policy.act(batch, np.random.default_rng(7))  # type: ignore[attr-defined]
    _assert_same(first, second)


def test_save_load_round_trip(case: tuple[str, object, object], tmp_path: Path) -> None:
    _name, policy, make_batch = case
    folder = save_policy(policy, tmp_path / "p")  # type: ignore[arg-type]
    loaded = load_policy(folder)
    assert loaded.kind == policy.kind  # type: ignore[attr-defined]
    assert loaded.config() == policy.config()  # type: ignore[attr-defined]
    batch = make_batch(np.random.default_rng(1), 32)  # type: ignore[operator]
    _assert_same(policy.act(batch, np.random.default_rng(3)),  # type: ignore[attr-defined]
                 loaded.act(batch, np.random.default_rng(3)))
    # saving the loaded policy again gives the same content
    again = save_policy(loaded, tmp_path / "q")
    assert content_hash(again) == content_hash(folder)


def test_bad_context_is_rejected_before_reaching_the_policy(case: tuple[str, object, object]) -> None:
    """Policies never see raw input: every path in builds a PolicyInput from the policy's own schema, which refuses
    a bad context with the field named (policies themselves assume a well-formed batch)."""
    _name, policy, _ = case
    schema = policy.schema  # type: ignore[attr-defined]
    first = schema.features[0]
    bad_value = "not-a-valid-value" if first.type != "categorical" else 12345
    with pytest.raises(ValidationError) as info:
        PolicyInput.from_contexts(schema, [{first.name: bad_value}])
    assert info.value.field.startswith("contexts[0].")


def test_tampered_folder_is_refused(case: tuple[str, object, object], tmp_path: Path) -> None:
    _name, policy, _ = case
    folder = save_policy(policy, tmp_path / "p")  # type: ignore[arg-type]
    data_files = [p for p in folder.iterdir() if p.name != "manifest.json"]
    if not data_files:
        pytest.skip("this policy has no state files to tamper with")
    with data_files[0].open("ab") as f:
        f.write(b"tampered")
    with pytest.raises(ConfigError, match="does not match its hash"):
        load_policy(folder)
