"""Retraining sweeps on Ray: every candidate's score, the winner and its weights are the local backend's, for a
network learner (CQL) and, through `rlops retrain --sweep 3 --backend ray`, for bandits on two actors; a bad sweep
fails before Ray is asked for."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import rlops.scale
from rlops.engine import DeploymentSpec, Engine
from rlops.errors import DependencyNotInstalled, ValidationError
from rlops.home import Home
from rlops.policies import BasePolicy, PolicyInput, UniformRandom
from rlops.registry import Registry
from rlops.scale import Backend
from rlops.scenarios import SyntheticBandit
from rlops.training.offline import CQLConfig, MLPPolicy, SweepResult, sweep_retrain
from tests.rollout.test_loop import REWARD, World
from tests.training.offline.logs import CHAIN_GAMMA, bandit_log, chain_log, chain_schema

WORLD = SyntheticBandit(seed=0)


def _assert_same(local: SweepResult, on_ray: SweepResult, batch: PolicyInput) -> None:
    """Same table (every score to the last bit), same winner, same weights, same decisions."""
    np.testing.assert_equal(on_ray.to_dict(), local.to_dict())  # exact floats; NaN equals NaN (imitation's ess)
    assert on_ray.winner == local.winner and on_ray.best.method is local.best.method
    a, b = on_ray.best.policy.state(), local.best.policy.state()
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    _assert_same_decisions(on_ray.best.policy, local.best.policy, batch)


def _assert_same_decisions(a: BasePolicy, b: BasePolicy, batch: PolicyInput) -> None:
    x, y = a.act(batch, np.random.default_rng(4)), b.act(batch, np.random.default_rng(4))
    np.testing.assert_array_equal(x.action, y.action)
    np.testing.assert_array_equal(x.propensity, y.propensity)


@pytest.fixture
def ray_maps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int | None]]:
    """``(method, tasks, workers)`` of every map over Ray actors while the test runs (proof that Ray did the work)."""
    calls: list[tuple[str, int, int | None]] = []
    real = rlops.scale.actor_map

    def spy(factory: Callable[[], Any], method: str, tasks: Sequence[tuple[Any, ...]], **kwargs: Any) -> None:
        calls.append((method, len(tasks), kwargs.get("workers")))
        real(factory, method, tasks, **kwargs)

    monkeypatch.setattr(rlops.scale, "actor_map", spy)
    return calls


def test_a_cql_sweep_on_ray_gives_the_local_scores_winner_and_weights(
        ray_local: ModuleType, ray_maps: list[tuple[str, int, int | None]]) -> None:
    chain = chain_log(120, seed=1)
    cql = CQLConfig(gamma=CHAIN_GAMMA, steps=300, hidden=(32,))
    local = sweep_retrain(chain, chain_schema(), sweep=4, cql=cql, seed=0)
    assert ray_maps == []  # the local backend does not use Ray
    seen: list[int] = []
    # one actor runs the four fits one after another (what two actors do is in the retrain test below; each
    # actor's start costs seconds here)
    on_ray = sweep_retrain(chain, chain_schema(), sweep=4, cql=cql, seed=0, backend=Backend.RAY, workers=1,
                           on_candidate=lambda c, done, total: seen.append(done))
    cells = PolicyInput.from_contexts(chain_schema(), [{"cell": f"c{s}"} for s in range(4)] * 25)
    assert ray_maps == [("fit", 4, 1)]  # one task per candidate
    _assert_same(local, on_ray, cells)
    assert isinstance(on_ray.best.policy, MLPPolicy) and on_ray.candidates[3].point.seed == 1
    assert len({c.value for c in local.candidates}) >= 3  # different greedy policies among the candidates
    assert seen == [1, 2, 3, 4]
    assert ray_local.is_initialized()  # the sweep used the fixture's Ray and left it running


def test_a_bad_sweep_fails_before_ray_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    news_log = bandit_log(WORLD, UniformRandom(WORLD.schema), 100, seed=2)
    monkeypatch.setitem(sys.modules, "ray", None)  # reaching Ray would raise DependencyNotInstalled instead
    with pytest.raises(ValidationError, match=r"^holdout: leaves 21 rows to fit and 9 to evaluate"):
        sweep_retrain(news_log.slice(0, 30), WORLD.schema, sweep=2, kind="bandit", backend=Backend.RAY)
    with pytest.raises(ValidationError, match=r"^sweep: a bandit sweep has 12"):
        sweep_retrain(news_log, WORLD.schema, sweep=13, kind="bandit", backend=Backend.RAY)
    with pytest.raises(ValidationError, match=r"^reward: column is missing"):
        sweep_retrain(news_log.drop_columns(["reward"]), WORLD.schema, kind="bandit", backend=Backend.RAY)
    with pytest.raises(DependencyNotInstalled, match=r"pip install 'rlops\[ray\]'"):
        sweep_retrain(news_log, WORLD.schema, sweep=2, kind="bandit", backend=Backend.RAY)


def test_retrain_with_a_sweep_on_ray_keeps_the_local_candidate(
        ray_local: ModuleType, ray_maps: list[tuple[str, int, int | None]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from rlops.cli.main import main

    with Engine(tmp_path / "home", fsync=False) as engine:
        engine.apply(DeploymentSpec.from_dict({"name": "news", "schema": WORLD.schema.to_dict(), "reward": REWARD,
                                              "policy": {"kind": "uniform"}, "all_outcomes_reported": True}))
        World(engine).traffic(1500)
    records, digests = {}, {}
    for backend in ("local", "ray"):
        home = tmp_path / backend
        shutil.copytree(tmp_path / "home", home)  # the same logged interactions for both
        code = main(["retrain", "news", "--kind", "bandit", "--sweep", "3", "--backend", backend,
                     "--stop-after", "register", "--home", str(home)])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "candidate 3/3" in out and "best of 3 by held-out dr lower bound" in out and "registered news@1" in out
        records[backend] = json.loads((home / "loops" / "news.json").read_text())["sweep"]
        with Registry(Home.resolve(home)) as registry:
            digests[backend] = registry.get("news", 1).content_hash
    assert ray_maps == [("fit", 3, None)]  # only the ray run, one task per candidate, on the cluster's 2 CPUs
    np.testing.assert_equal(records["ray"], records["local"])
    assert [row["method"] for row in records["ray"]["candidates"]] == ["dr", "ips", "dm"]
    assert len({row["value"] for row in records["ray"]["candidates"]}) == 3  # three different candidates
    assert digests["ray"] == digests["local"]  # the same policy files, byte for byte
