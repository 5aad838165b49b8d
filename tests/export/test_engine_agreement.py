"""A deployment served by the engine and the same deployment exported to the edge give the same probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlops.edge import EdgePolicy
from rlops.engine import Engine
from tests.edge.homes import deploy_and_export
from tests.export.cases import contexts


@pytest.mark.parametrize("case", ["softmax_ridge", "linucb_epsilon", "linear_thompson", "sb3_ppo_discrete",
                                  "sb3_dqn"])
def test_edge_and_engine_agree_on_action_probabilities(case: str, tmp_path: Path) -> None:
    home, export = deploy_and_export(tmp_path / "home", case, tmp_path / "p.onnx")
    batch = contexts(300, seed=8)
    edge = EdgePolicy.load(export.model_path).decide_batch(batch)
    with Engine(home) as engine:
        served = [engine.decide("shop", context, f"u{i}") for i, context in enumerate(batch[:150])]
        served += engine.decide_batch("shop", batch[150:], [f"u{i}" for i in range(150, 300)])
    assert all(d.policy_version == "shop@r1" for d in served) and export.manifest.policy_version == "shop@r1"
    engine_probabilities = np.array([list(d.probabilities.values()) for d in served])  # type: ignore[union-attr]
    assert edge.probabilities is not None
    if case == "linear_thompson":  # sampled distributions: the engine's and the edge's draws differ
        # 32 samples per decision: the empirical distributions agree in their mean over many contexts
        assert np.abs(edge.probabilities.mean(axis=0) - engine_probabilities.mean(axis=0)).max() < 0.05
        return
    assert np.abs(edge.probabilities - engine_probabilities).max() <= 1e-5
