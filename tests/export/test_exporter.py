"""Exports: preprocessing baked into the graph exactly, a complete manifest, byte-stable files, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from rlops.edge.layout import RawLayout
from rlops.edge.manifest import INPUT, manifest_path, sha256_file
from rlops.errors import NotFoundError, ValidationError
from rlops.export import export_deployment, export_policy
from rlops.export.preprocess import preprocessing_model
from rlops.home import Home
from rlops.policies import LinUCB, PolicyInput, RulePolicy, UniformRandom, VWPolicy
from rlops.schema import Schema
from tests.export.cases import BOX, CASES, DISCRETE, contexts
from tests.policies import rules
from tests.policies.factories import BANDIT, CANDIDATES

# ---- preprocessing ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("schema", [DISCRETE, BANDIT.schema], ids=["mixed", "synthetic-bandit"])
def test_the_graphs_preprocessing_is_schema_encode_exactly(schema: Schema) -> None:
    from rlops.edge.contexts import ContextEncoder

    layout = RawLayout.from_schema(schema)
    batch = contexts(5_000, seed=1) if schema is DISCRETE else BANDIT.sample_contexts(5_000, np.random.default_rng(1))
    encoder = ContextEncoder(schema, layout)
    raw, _ = encoder.encode_rows(batch)
    expected = schema.encode([schema.validate_context(c) for c in batch])
    session = onnxruntime.InferenceSession(preprocessing_model(layout).SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    in_graph = session.run(None, {INPUT: raw})[0]
    np.testing.assert_array_equal(in_graph, expected)  # bit for bit, not approximately
    np.testing.assert_array_equal(layout.encode(raw), expected)  # the numpy twin the docs describe


def test_raw_layout_describes_each_feature() -> None:
    columns = {c.feature: c for c in RawLayout.from_schema(DISCRETE).columns}
    assert [(c.kind.value, c.start, c.width) for c in columns.values()] == [
        ("number", 0, 1), ("code", 1, 1), ("bool", 2, 1), ("number", 3, 1), ("vector", 4, 3)]
    assert columns["device"].vocabulary == ["mobile", "desktop", "tablet"] and columns["device"].unknown_code == 3


def test_a_schema_without_categoricals_feeds_its_raw_input_straight_to_the_model(tmp_path: Path) -> None:
    schema = Schema.model_validate({"features": [{"name": "u", "type": "float"}, {"name": "v", "type": "int"}],
                                    "actions": {"type": "discrete", "names": ["x", "y"]}})
    result = export_policy(UniformRandom(schema), tmp_path / "u.onnx", policy_version="u@r1")
    ops = [node.op_type for node in onnx.load(result.model_path).graph.node]
    assert "Equal" not in ops and ops[0] == "Identity"


# ---- what is written ----------------------------------------------------------------------------------------------


def test_manifest_holds_everything_the_runtime_needs(tmp_path: Path) -> None:
    policy = CASES["linucb_epsilon"]()
    result = export_policy(policy, tmp_path / "out" / "model.onnx", policy_version="pricing@r3",
                           deployment="pricing", content_hash="abc")
    assert result.manifest_path == tmp_path / "out" / "model.manifest.json" == manifest_path(result.model_path)
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["format"] == "rlops.edge" and manifest["format_version"] == 1
    assert (manifest["deployment"], manifest["policy_version"]) == ("pricing", "pricing@r3")
    assert manifest["source"] == {"kind": "linucb", "config": {"alpha": 0.5, "l2": 1.0, "epsilon": 0.2},
                                  "content_hash": "abc"}
    assert manifest["model"]["file"] == "model.onnx" and manifest["model"]["input"] == "context"
    assert manifest["model"]["sha256"] == sha256_file(result.model_path)
    assert Schema.from_dict(manifest["schema"]) == DISCRETE and manifest["actions"] == ["a", "b", "c", "d"]
    assert manifest["exploration"] == {"rule": "epsilon_greedy", "epsilon": 0.2}
    assert [c["feature"] for c in manifest["preprocessing"]["columns"]["columns"]] == [
        "age", "device", "returning", "visits", "taste"]
    assert "gathered" in manifest["preprocessing"]["in_graph"]
    # the graph's outputs are exactly what the rule reads
    graph = onnx.load(result.model_path).graph
    assert [i.name for i in graph.input] == ["context"] and [o.name for o in graph.output] == ["scores"]


@pytest.mark.parametrize(("name", "rule", "outputs"), [
    ("linucb", {"rule": "greedy"}, ["scores"]),
    ("linear_thompson", {"rule": "thompson", "v": 0.3, "n_samples": 32}, ["mean", "variance"]),
    ("softmax_ridge", {"rule": "softmax", "temperature": 0.2, "min_probability": 0.02}, ["scores"]),
    ("uniform", {"rule": "softmax", "temperature": 1.0, "min_probability": 0.0}, ["scores"]),
    ("sb3_ppo_discrete", {"rule": "categorical"}, ["probabilities"]),
    ("sb3_dqn", {"rule": "epsilon_greedy", "epsilon": 0.1}, ["scores"]),
    ("sb3_sac", {"rule": "squashed_gaussian", "low": [-1.0, 0.0], "high": [1.0, 4.0], "deterministic": False},
     ["mean", "log_std"]),
    ("sb3_td3_mean", {"rule": "actor_noise", "low": [-1.0, 0.0], "high": [1.0, 4.0], "deterministic": True,
                      "noise_std": 0.1}, ["mean"]),
])
def test_each_policy_kind_names_its_rule_and_outputs(name: str, rule: dict[str, object], outputs: list[str],
                                                     tmp_path: Path) -> None:
    result = export_policy(CASES[name](), tmp_path / "p.onnx", policy_version="p@r1")
    assert result.manifest.exploration.model_dump(mode="json") == rule
    assert [o.name for o in onnx.load(result.model_path).graph.output] == outputs


@pytest.mark.parametrize("name", ["linucb", "sb3_ppo_discrete"])
def test_exporting_twice_writes_the_same_bytes(name: str, tmp_path: Path) -> None:
    policy = CASES[name]()
    first = export_policy(policy, tmp_path / "a.onnx", policy_version="p@r1")
    second = export_policy(policy, tmp_path / "b.onnx", policy_version="p@r1")
    assert first.manifest.model.sha256 == second.manifest.model.sha256


def test_the_ucb_bonus_is_in_the_graph(tmp_path: Path) -> None:
    """LinUCB exports its upper confidence bound, not only the mean: exploration survives the export."""
    policy = CASES["linucb"]()
    assert isinstance(policy, LinUCB)
    result = export_policy(policy, tmp_path / "p.onnx", policy_version="p@r1")
    ops = {node.op_type for node in onnx.load(result.model_path).graph.node}
    assert {"Sqrt", "ReduceSum"} <= ops
    batch = PolicyInput.from_contexts(DISCRETE, contexts(500))
    mean, var = policy.model.disjoint_moments(batch.x)
    from rlops.edge import EdgePolicy

    edge = EdgePolicy.load(result.model_path)
    raw, _ = edge._encoder.encode_rows(contexts(500))
    scores = edge.outputs(raw)["scores"]
    np.testing.assert_allclose(scores, mean + policy.alpha * np.sqrt(var), rtol=1e-12, atol=1e-12)
    assert np.abs(scores - mean).max() > 0.01  # the bonus matters for these contexts


# ---- refusals -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("make", "why"), [
    (lambda: VWPolicy(DISCRETE, epsilon=0.2), "'vw_cb_adf' cannot be exported"),
    (lambda: RulePolicy(BANDIT.schema, rules.by_age), "'rule' cannot be exported"),
    (lambda: LinUCB(CANDIDATES), "'candidates' actions cannot be exported"),
    (lambda: UniformRandom(BOX), "box actions cannot be exported"),
])
def test_unsupported_policies_are_refused_saying_what_is_supported(make: object, why: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as error:
        export_policy(make(), tmp_path / "p.onnx", policy_version="p@r1")  # type: ignore[operator]
    message = str(error.value)
    assert message.startswith("policy.kind: ") and why in message
    assert "exportable to ONNX: linucb, linear_thompson" in message and "sb3 (PPO, A2C, DQN, SAC, TD3, DDPG)" in message
    assert not (tmp_path / "p.onnx").exists()


def test_the_output_must_be_an_onnx_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"must end in \.onnx"):
        export_policy(UniformRandom(DISCRETE), tmp_path / "model.bin", policy_version="p@r1")


def test_exporting_an_unknown_deployment_says_so(tmp_path: Path) -> None:
    from rlops.engine import Engine

    home = Home.resolve(tmp_path / "home")
    Engine(home).close()
    with pytest.raises(NotFoundError, match="deployment 'nope' does not exist"):
        export_deployment(home, "nope", tmp_path / "p.onnx")
